# BITSWEEP_DEPS_ROOT: Debian 12 packages unpacked with dpkg-deb -x (scripts/gpu-check --fetch puts
# them in third_party/gpu-deps) for a machine that has a compiler, CMake, a CUDA toolkit and
# PyTorch but not these libraries. Their CMake package files find themselves relative to the
# folder; pcre2 and utf8proc (pkg-config only) are linked statically from their .a files.
set(_root "${BITSWEEP_DEPS_ROOT}/usr")
if(NOT EXISTS "${_root}/include")
  message(FATAL_ERROR "BITSWEEP_DEPS_ROOT=${BITSWEEP_DEPS_ROOT} holds no unpacked packages "
                      "(run scripts/gpu-check --fetch on a machine with Debian's apt)")
endif()
set(_libdir "${_root}/lib/x86_64-linux-gnu")
list(PREPEND CMAKE_PREFIX_PATH "${_root}" "${_libdir}/cmake" "${_root}/lib/cmake"
     "${_root}/share/cmake")
# OpenSSL (libssl-dev): static libcrypto; its configuration.h sits in the multiarch folder.
set(OPENSSL_ROOT_DIR "${_root}")
set(OPENSSL_INCLUDE_DIR "${_root}/include")
set(OPENSSL_CRYPTO_LIBRARY "${_libdir}/libcrypto.a")
set(OPENSSL_SSL_LIBRARY "${_libdir}/libssl.a")
set(OPENSSL_USE_STATIC_LIBS TRUE)
find_package(OpenSSL REQUIRED)
set_property(TARGET OpenSSL::Crypto APPEND PROPERTY
  INTERFACE_INCLUDE_DIRECTORIES "${_root}/include/x86_64-linux-gnu")
foreach(_dep "PCRE2;pcre2-8;pcre2.h" "UTF8PROC;utf8proc;utf8proc.h")
  list(GET _dep 0 _name)
  list(GET _dep 1 _lib)
  list(GET _dep 2 _header)
  if(NOT EXISTS "${_libdir}/lib${_lib}.a" OR NOT EXISTS "${_root}/include/${_header}")
    message(FATAL_ERROR "BITSWEEP_DEPS_ROOT: lib${_lib}.a or ${_header} missing under ${_root}")
  endif()
  add_library(PkgConfig::${_name} STATIC IMPORTED)
  set_target_properties(PkgConfig::${_name} PROPERTIES
    IMPORTED_LOCATION "${_libdir}/lib${_lib}.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_root}/include")
endforeach()
set_property(TARGET PkgConfig::PCRE2 APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS PCRE2_STATIC)
set_property(TARGET PkgConfig::UTF8PROC APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS UTF8PROC_STATIC)
