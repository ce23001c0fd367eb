# BITSWEEP_SANITIZE and BITSWEEP_FUZZ (top-level CMakeLists.txt): compiler and linker flags for
# every target configured after this file is included.
if(BITSWEEP_SANITIZE)
  # -fno-sanitize-recover: an undefined-behaviour report fails the test or the fuzz run instead of
  # scrolling past. vptr needs RTTI for every polymorphic type, which Debian's prebuilt libraries
  # (gRPC, protobuf) do not all give the checker; it is left out.
  set(_bitsweep_san -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all
                    -fno-omit-frame-pointer)
  add_compile_options(${_bitsweep_san})
  add_link_options(-fsanitize=address,undefined -fno-sanitize=vptr)
endif()
if(BITSWEEP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "BITSWEEP_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++ (scripts/test-sanitizers does)")
  endif()
  # Coverage instrumentation for everything the harnesses reach; fuzz/ links the libFuzzer driver.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
