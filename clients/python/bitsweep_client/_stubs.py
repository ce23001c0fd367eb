"""The gRPC stubs generated from proto/ at build time (build/clients/python/bitsweep/v1)."""

try:
    import grpc  # noqa: F401  (Debian python3-grpcio)
except ImportError as e:  # pragma: no cover
    raise ImportError(
        "bitsweep_client needs gRPC for Python: apt-get install python3-grpcio python3-protobuf "
        "(scripts/setup installs them)") from e

try:
    from bitsweep.v1 import coordinator_pb2, coordinator_pb2_grpc, types_pb2
except ImportError as e:  # pragma: no cover
    raise ImportError(
        "bitsweep_client: the generated stubs (package bitsweep.v1) are missing: build bitsweep "
        "(./scripts/build generates them) and import the package from build/clients/python "
        f"(PYTHONPATH=build/clients/python): {e}") from e

__all__ = ["coordinator_pb2", "coordinator_pb2_grpc", "types_pb2"]
