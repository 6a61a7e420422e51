"""Exit 0 when the server at TARGET reports SERVING over grpc.health.v1 (Docker HEALTHCHECK, probes).

    python -m audiogan_server.healthcheck [127.0.0.1:50051]
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    try:
        with grpc.insecure_channel(target) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3).status
    except grpc.RpcError as err:
        sys.exit(f"{target}: {err.code().name}")
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)


if __name__ == "__main__":
    main()
