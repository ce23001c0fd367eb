#pragma once

// What libtorch's build generates as c10/cuda/impl/cuda_cmake_macros.h (the same in 1.13 and
// 2.x). Debian's CPU-only libtorch-dev 1.13 ships the other c10/cuda headers but not this one;
// cmake/Cuda.cmake adds this folder to the include path only for such a compile-only build.
#define C10_CUDA_BUILD_SHARED_LIBS
