"""Exit 0 when the server at TARGET reports SERVING over grpc.health.v1 (Docker HEALTHCHECK, probes).

    python -m audiogan_server.healthcheck [TARGET]

TARGET defaults to 127.0.0.1:$AUDIOGAN_PORT (50051 when unset). With AUDIOGAN_TLS_CA naming a PEM file (the CA
that signed the server's certificate, or a self-signed certificate itself) the probe speaks TLS; set
AUDIOGAN_TLS_NAME to the name the certificate carries when it does not cover the target's host.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def channel(target: str) -> grpc.Channel:
    ca = os.environ.get("AUDIOGAN_TLS_CA")
    if not ca:
        return grpc.insecure_channel(target)
    name = os.environ.get("AUDIOGAN_TLS_NAME")
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(Path(ca).read_bytes()), options)


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else f"127.0.0.1:{os.environ.get('AUDIOGAN_PORT') or 50051}"
    try:
        with channel(target) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3).status
    except grpc.RpcError as err:
        sys.exit(f"{target}: {err.code().name}")
    except OSError as err:  # an unreadable AUDIOGAN_TLS_CA
        sys.exit(f"{target}: {err}")
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)


if __name__ == "__main__":
    main()
