"""The wire side of audio: requested formats checked, model output resampled and encoded."""

from __future__ import annotations

import torch
from audiogan_client._proto import audiogan_pb2 as pb

from audiogan.audio.io import encode_audio, float32_le, pcm16, resample
from audiogan_server.config import Limits
from audiogan_server.errors import invalid

RAW = (pb.PCM16, pb.FLOAT32)


def check_format(fmt: pb.AudioFormat, limits: Limits, field: str = "format", stream: bool = False) -> None:
    if fmt.encoding not in pb.AudioEncoding.values():
        raise invalid(f"{field}.encoding", f"unknown encoding {fmt.encoding}")
    if stream and fmt.encoding not in (*RAW, pb.AUDIO_ENCODING_UNSPECIFIED):
        raise invalid(f"{field}.encoding", "streamed audio is raw PCM16 or FLOAT32; WAV and FLAC are whole files")
    rate = fmt.sample_rate_hz
    if rate != 0 and not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise invalid(f"{field}.sample_rate_hz",
                      f"{rate} Hz is out of range {limits.min_sample_rate}..{limits.max_sample_rate} (0 = native)")


def output_rate(fmt: pb.AudioFormat, native: int) -> int:
    return fmt.sample_rate_hz or native


def encode_raw(wave: torch.Tensor, encoding: int) -> bytes:
    if encoding == pb.FLOAT32:
        return float32_le(wave)
    return pcm16(wave)


def encode(wave: torch.Tensor, native_rate: int, fmt: pb.AudioFormat) -> pb.Audio:
    """Whole audio at the model's rate -> an ``Audio`` message in the requested rate and encoding."""
    rate = output_rate(fmt, native_rate)
    wave = resample(wave.detach().float().cpu(), native_rate, rate)
    encoding = fmt.encoding or pb.PCM16
    if encoding in RAW:
        data = encode_raw(wave, encoding)
    else:
        data = encode_audio(wave, rate, ".wav" if encoding == pb.WAV else ".flac")
    return pb.Audio(audio=data, encoding=encoding, sample_rate_hz=rate, num_samples=wave.numel(),
                    duration_seconds=wave.numel() / rate)
