# syntax=docker/dockerfile:1
# bitsweep-worker image for NVIDIA GPUs. Build from the repository root.
#
# Debian's libtorch is CPU-only, so the builder supplies a CUDA build of libtorch: PyTorch's
# "libtorch, C++ cxx11 ABI, CUDA 12.x, shared-with-deps" archive (it bundles cuDNN and NCCL),
# unpacked into the build context and named by LIBTORCH_DIR (the folder holding
# share/cmake/Torch):
#   unzip libtorch-cxx11-abi-shared-with-deps-<ver>+cu124.zip -d deploy/docker/third_party
#   docker build -f deploy/docker/worker-cuda.Dockerfile \
#     --build-arg LIBTORCH_DIR=deploy/docker/third_party/libtorch -t bitsweep/worker-cuda:TAG .
# CUDA_VERSION must be the CUDA version that libtorch was built for.
#
# The CUDA toolkit (needed by TorchConfig.cmake at configure time) and the CUDA runtime
# libraries come from NVIDIA's nvidia/cuda images; the build and the runtime stay on Debian 12,
# because the project's gRPC, protobuf, abseil and prometheus-cpp are Debian 12's packages and
# nvidia/cuda has no Debian 12 flavour (its Ubuntu 22.04 carries other, ABI-incompatible
# versions). The driver (libcuda.so.1) is mounted by the NVIDIA container toolkit at run time.
# NOTE: bitsweep is developed against Debian's libtorch 1.13; a newer CUDA libtorch must keep
# the ATen API the code uses. This image has not been built in CI (no Docker there).

ARG CUDA_VERSION=12.4.1
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:${CUDA_VERSION}-devel-ubuntu22.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu22.04

FROM ${CUDA_DEVEL_IMAGE} AS cuda-devel
FROM ${CUDA_RUNTIME_IMAGE} AS cuda-runtime

FROM debian:12 AS build
ARG LIBTORCH_DIR
WORKDIR /src
COPY scripts/setup scripts/setup
RUN test -n "${LIBTORCH_DIR}" \
 && ./scripts/setup && rm -rf /var/lib/apt/lists/*
COPY --from=cuda-devel /usr/local/cuda /usr/local/cuda
COPY ${LIBTORCH_DIR} /opt/libtorch
COPY . .
ENV PATH=/usr/local/cuda/bin:${PATH} CUDA_HOME=/usr/local/cuda
# CMAKE_PREFIX_PATH makes find_package(Torch) take the CUDA libtorch, not Debian's CPU one.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/opt/libtorch \
 && cmake --build build --target bitsweep-worker bitsweep -j "$(nproc)"

FROM debian:12
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libgomp1 libgrpc++1.51 libprotobuf32 libabsl20220623 \
      libprometheus-cpp-core1.0 libyaml-cpp0.7 libssl3 libpcre2-8-0 libutf8proc2 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bitsweep
COPY --from=cuda-runtime /usr/local/cuda/lib64/ /usr/local/cuda/lib64/
COPY --from=build /opt/libtorch/lib/ /opt/libtorch/lib/
COPY --from=build /src/build/worker/bitsweep-worker /usr/local/bin/bitsweep-worker
COPY --from=build /src/build/cli/bitsweep /usr/local/bin/bitsweep
ENV LD_LIBRARY_PATH=/opt/libtorch/lib:/usr/local/cuda/lib64 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Every shared library but the driver's libcuda.so.1 must resolve inside the image.
RUN ! ldd /usr/local/bin/bitsweep-worker /usr/local/bin/bitsweep | grep "not found" \
      | grep -v "libcuda.so" | grep .
USER 10001:10001
EXPOSE 9465
ENTRYPOINT ["/usr/local/bin/bitsweep-worker"]
CMD ["--help"]
