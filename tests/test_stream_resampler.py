"""Resampling a stream piece by piece gives the whole-signal result: streamed speech has no seams."""

from __future__ import annotations

import pytest
import torch
import torchaudio.functional as AF

from audiogan.audio.stream import StreamResampler


@pytest.mark.parametrize(("orig", "target"), [(16000, 22050), (16000, 8000), (16000, 48000), (22050, 16000),
                                              (16000, 16000)])
@pytest.mark.parametrize("length", [1, 333, 37123])
def test_pieces_equal_the_whole(orig, target, length):
    signal = torch.randn(length, generator=torch.Generator().manual_seed(length))
    whole = AF.resample(signal, orig, target) if orig != target else signal
    resampler = StreamResampler(orig, target)
    sizes = torch.randint(1, 3000, (length,), generator=torch.Generator().manual_seed(1)).tolist()
    pieces, start = [], 0
    for size in sizes:
        if start >= length:
            break
        pieces.append(resampler.push(signal[start:start + size]))
        start += size
    pieces.append(resampler.flush())
    streamed = torch.cat(pieces)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=2e-6, rtol=0)


def test_output_comes_out_while_input_arrives():
    resampler = StreamResampler(16000, 22050)
    out = resampler.push(torch.randn(4000))
    assert out.numel() >= 4000 * 22050 // 16000 - 2 * 441  # at most the kernel's look-ahead is held back


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(16000, 0)


def test_an_odd_rate_streams_with_a_small_kernel_and_equals_the_whole_file_path():
    from audiogan.audio.io import resample

    # 16000 -> 44101 Hz exactly would need a kernel of 7e8 taps (gigabytes); a nearby ratio stands in.
    signal = torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000)
    resampler = StreamResampler(16000, 44101)
    streamed = torch.cat([resampler.push(signal[:7000]), resampler.push(signal[7000:]), resampler.flush()])
    whole = resample(signal, 16000, 44101)
    assert streamed.numel() == whole.numel() == 44101  # the exact ratio's length, as the whole file's
    torch.testing.assert_close(streamed, whole, atol=2e-6, rtol=0)
    peak = torch.fft.rfft(streamed).abs().argmax().item() * 44101 / streamed.numel()
    assert abs(peak - 1000) < 2  # still a 1 kHz tone
