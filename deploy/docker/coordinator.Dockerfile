# syntax=docker/dockerfile:1
# bitsweep-coordinator image. Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t bitsweep/coordinator:TAG .
# The builder runs the project's own scripts/setup (Debian packages) and CMake, and builds only
# the coordinator (which never links libtorch, so the runtime image carries no torch).

FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN ./scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITSWEEP_WITH_NCCL=OFF \
 && cmake --build build --target bitsweep-coordinator -j "$(nproc)"

FROM debian:12
# The coordinator's shared libraries (ldd of the binary, by Debian package).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libgrpc++1.51 libprotobuf32 libabsl20220623 libpqxx-6.4 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libyaml-cpp0.7 libssl3 \
      libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bitsweep
COPY --from=build /src/build/server/bitsweep-coordinator /usr/local/bin/bitsweep-coordinator
# Fails the image build if a shared library is missing.
RUN ! ldd /usr/local/bin/bitsweep-coordinator | grep "not found" \
 && /usr/local/bin/bitsweep-coordinator --help >/dev/null
USER 10001:10001
# 50051 gRPC (bitsweep.v1 + grpc.health.v1 + reflection), 9464 Prometheus /metrics,
# 8080 the dashboard (--http-listen); 8081 plaintext grpc.health.v1 only, when given
# --health-listen (the production overlay's probes).
EXPOSE 50051 9464 8080 8081
ENTRYPOINT ["/usr/local/bin/bitsweep-coordinator"]
CMD ["--help"]
