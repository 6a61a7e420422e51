"""Thin client for the audiogan gRPC service: grpcio, protobuf and numpy; no torch."""

from audiogan_client.audio import decode, write_audio, write_wav
from audiogan_client.client import AudioGanClient, AudioResult, StreamBroken, TimedAudio

__version__ = "0.1.0"
__all__ = ["AudioGanClient", "AudioResult", "StreamBroken", "TimedAudio", "decode", "write_audio", "write_wav"]
