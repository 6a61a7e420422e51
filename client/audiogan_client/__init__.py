"""Thin client for the audiogan gRPC service: grpcio, protobuf and numpy; no torch."""

from typing import Any

from audiogan_client.audio import decode, write_audio, write_wav

__version__ = "0.1.0"
__all__ = ["AudioGanClient", "AudioResult", "CallFailed", "ServerBusy", "StreamBroken", "TimedAudio", "decode",
           "write_audio", "write_wav"]
_CLIENT = ("AudioGanClient", "AudioResult", "CallFailed", "ServerBusy", "StreamBroken", "TimedAudio")


def __getattr__(name: str) -> Any:
    # The client (and grpc with it) on first use, not at import: the command line quiets gRPC's own logging
    # before grpc is first imported, which is when grpc reads that setting.
    if name in _CLIENT:
        from audiogan_client import client
        return getattr(client, name)
    raise AttributeError(f"module 'audiogan_client' has no attribute {name!r}")
