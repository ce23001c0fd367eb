# BITSWEEP_WITH_CUDA: compiles the CUDA-only code paths (device discovery, streams, guards,
# pinned staging) of every torch-using target, which see BITSWEEP_WITH_CUDA=1 through
# bitsweep_torch.
#   AUTO (default): ON when libtorch is a CUDA build and the CUDA toolkit is found, else OFF.
#   ON:  requires the CUDA toolkit (cuda_runtime.h, libcudart). With a CPU-only libtorch (Debian's
#        libtorch-dev 1.13) every translation unit still compiles, against libtorch's c10/cuda and
#        ATen/cuda headers, but nothing can be linked: libtorch_cuda.so and libc10_cuda.so are
#        missing. Such a build is compile-only: executables and shared libraries are replaced by a
#        stub that says so when run (cmake/compile_only_link.sh), and tests are not registered.
#   OFF: the CPU build.
# Sets BITSWEEP_CUDA_ENABLED and BITSWEEP_CUDA_COMPILE_ONLY for the rest of the tree.
set(BITSWEEP_WITH_CUDA AUTO CACHE STRING "Compile the CUDA code paths: AUTO, ON or OFF")
set_property(CACHE BITSWEEP_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set(BITSWEEP_CUDA_ENABLED OFF)
set(BITSWEEP_CUDA_COMPILE_ONLY OFF)

# Is this libtorch a CUDA build? Its CUDA libraries sit beside libtorch.so.
# (TorchConfig.cmake finds libtorch.so into TORCH_LIBRARY.)
if(TORCH_LIBRARY)
  get_filename_component(_bitsweep_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
else()
  set(_bitsweep_torch_lib_dir "${TORCH_INSTALL_PREFIX}/lib")
endif()
set(BITSWEEP_TORCH_CUDA_MISSING "")
foreach(_lib torch_cuda c10_cuda)
  find_library(BITSWEEP_${_lib}_LIBRARY ${_lib} HINTS "${_bitsweep_torch_lib_dir}" NO_DEFAULT_PATH)
  if(NOT BITSWEEP_${_lib}_LIBRARY)
    list(APPEND BITSWEEP_TORCH_CUDA_MISSING "lib${_lib}.so")
  endif()
endforeach()

if(NOT BITSWEEP_WITH_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(BITSWEEP_WITH_CUDA STREQUAL "ON" AND NOT CUDAToolkit_FOUND)
    message(FATAL_ERROR "BITSWEEP_WITH_CUDA=ON: no CUDA toolkit found (cuda_runtime.h and "
                        "libcudart; set CUDAToolkit_ROOT, e.g. /usr/local/cuda)")
  endif()
  if(CUDAToolkit_FOUND AND (BITSWEEP_WITH_CUDA STREQUAL "ON" OR NOT BITSWEEP_TORCH_CUDA_MISSING))
    set(BITSWEEP_CUDA_ENABLED ON)
    if(BITSWEEP_TORCH_CUDA_MISSING)
      set(BITSWEEP_CUDA_COMPILE_ONLY ON)
    endif()
  endif()
endif()

if(BITSWEEP_CUDA_ENABLED)
  target_compile_definitions(bitsweep_torch INTERFACE BITSWEEP_WITH_CUDA=1)
  target_include_directories(bitsweep_torch SYSTEM INTERFACE ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(bitsweep_torch INTERFACE CUDA::cudart)
  if(BITSWEEP_CUDA_COMPILE_ONLY)
    string(REPLACE ";" ", " _missing "${BITSWEEP_TORCH_CUDA_MISSING}")
    message(WARNING
      "bitsweep: BITSWEEP_WITH_CUDA=ON against a CPU-only libtorch (${_bitsweep_torch_lib_dir}): "
      "${_missing} not found, so this build is COMPILE-ONLY. Every translation unit compiles "
      "with the CUDA code paths; executables and shared libraries are stubs that exit 1 "
      "(cmake/compile_only_link.sh) and no tests are registered. To link, point Torch_DIR or "
      "CMAKE_PREFIX_PATH at a CUDA libtorch (e.g. python3 -c 'import torch; "
      "print(torch.utils.cmake_prefix_path)').")
    set(_note "libtorch in ${_bitsweep_torch_lib_dir} lacks ${_missing}")
    # A CPU libtorch's c10/cuda headers lack the one its CUDA build generates.
    set(_have_macros OFF)
    foreach(_dir IN LISTS TORCH_INCLUDE_DIRS)
      if(EXISTS "${_dir}/c10/cuda/impl/cuda_cmake_macros.h")
        set(_have_macros ON)
      endif()
    endforeach()
    if(NOT _have_macros)
      target_include_directories(bitsweep_torch SYSTEM INTERFACE
        "${CMAKE_CURRENT_LIST_DIR}/cuda-compat-include")
    endif()
    set_property(GLOBAL PROPERTY RULE_LAUNCH_LINK
      "${PROJECT_SOURCE_DIR}/cmake/compile_only_link.sh '${_note}'")
  else()
    message(STATUS "bitsweep: CUDA code paths ON (CUDA ${CUDAToolkit_VERSION}, "
                   "libtorch CUDA libraries in ${_bitsweep_torch_lib_dir})")
  endif()
else()
  message(STATUS "bitsweep: CUDA code paths OFF (BITSWEEP_WITH_CUDA=${BITSWEEP_WITH_CUDA})")
endif()
