# Every third-party dependency comes from a Debian package installed by scripts/setup (or, for
# BITSWEEP_NUMERICS_ONLY on a GPU machine, unpacked by scripts/gpu-check into BITSWEEP_DEPS_ROOT).
if(BITSWEEP_DEPS_ROOT)
  include(${CMAKE_CURRENT_LIST_DIR}/DepsRoot.cmake)
endif()
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
if(NOT BITSWEEP_NUMERICS_ONLY)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_package(prometheus-cpp CONFIG REQUIRED)  # core + pull (the coordinator's /metrics)
endif()
find_package(yaml-cpp CONFIG REQUIRED)  # Debian's target: yaml-cpp
find_package(OpenSSL REQUIRED)          # OpenSSL::Crypto for SHA-256 job keys
if(NOT TARGET PkgConfig::PCRE2)  # (DepsRoot.cmake defines both from the unpacked packages)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
  pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
endif()
if(NOT BITSWEEP_NUMERICS_ONLY)
  # cpp-httplib (libcpp-httplib-dev, built with OpenSSL): the coordinator's dashboard server.
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
endif()

if(NOT BITSWEEP_TORCH_FREE)
  # Debian's libtorch 1.13 (CPU, with c10d Gloo). Its config sets TORCH_LIBRARIES/TORCH_CXX_FLAGS.
  find_package(Torch CONFIG REQUIRED)
  # A thin interface target so that folders link torch PRIVATE like any other dependency.
  add_library(bitsweep_torch INTERFACE)
  target_link_libraries(bitsweep_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(bitsweep_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  # BITSWEEP_WITH_CUDA (AUTO|ON|OFF): the CUDA code paths of every torch-using target.
  include(${CMAKE_CURRENT_LIST_DIR}/Cuda.cmake)
endif()

if(BITSWEEP_BUILD_TESTS)
  find_package(Catch2 REQUIRED)
endif()
