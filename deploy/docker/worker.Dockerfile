# syntax=docker/dockerfile:1
# bitsweep-worker image, CPU (Debian's libtorch 1.13 with OpenBLAS/OpenMP). Build from the
# repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t bitsweep/worker-cpu:TAG .
# Carries bitsweep-worker (the entry point; it re-executes itself as `bitsweep-worker run-job`
# for each job) and the `bitsweep` command (eval, quantize, and the coordinator's client).

FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN ./scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITSWEEP_WITH_NCCL=OFF \
 && cmake --build build --target bitsweep-worker bitsweep -j "$(nproc)"

FROM debian:12
# libopenblas0-openmp: without it Debian's libtorch falls back to the reference BLAS (~15x
# slower). The rest are the binaries' shared libraries (ldd, by Debian package).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libtorch1.13 libopenblas0-openmp libgrpc++1.51 libprotobuf32 \
      libabsl20220623 libprometheus-cpp-core1.0 libyaml-cpp0.7 libssl3 libpcre2-8-0 \
      libutf8proc2 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bitsweep
COPY --from=build /src/build/worker/bitsweep-worker /usr/local/bin/bitsweep-worker
COPY --from=build /src/build/cli/bitsweep /usr/local/bin/bitsweep
RUN ! ldd /usr/local/bin/bitsweep-worker /usr/local/bin/bitsweep | grep "not found" \
 && /usr/local/bin/bitsweep-worker --help >/dev/null
USER 10001:10001
# 9465 Prometheus /metrics (--metrics-listen 0.0.0.0:9465 with --metrics-tls-cert/--metrics-tls-key
# for HTTPS, or --insecure-allow-remote for plain HTTP).
EXPOSE 9465
ENTRYPOINT ["/usr/local/bin/bitsweep-worker"]
CMD ["--help"]
