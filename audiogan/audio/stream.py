"""Resampling audio that arrives in pieces, with the same result as resampling it whole."""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

from audiogan.audio.io import check_rate, kernel_rates


class StreamResampler:
    """``push()`` pieces, then ``flush()``; the outputs concatenated equal ``torchaudio``'s
    ``resample(whole, orig_sr, target_sr)`` up to float rounding.

    torchaudio's sinc resampler works in blocks: with p = orig/g and q = target/g (g = gcd), output block b
    (q samples) reads input [b*p - w, b*p + w + p) where w is the kernel half-width. A block is emitted once
    its whole input window has arrived, computed from a buffer that starts on a block boundary with w
    samples of history, so every emitted sample sees exactly the inputs the whole-signal resample saw.
    """

    def __init__(self, orig_sr: int, target_sr: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> None:
        check_rate(orig_sr, "orig_sr")
        check_rate(target_sr, "target_sr")
        self.orig_sr, self.target_sr = orig_sr, target_sr
        # An odd pair (16000 -> 44101 Hz) would need a kernel of gigabytes: a nearby ratio stands in.
        self.kernel_in, self.kernel_out = kernel_rates(orig_sr, target_sr)
        g = math.gcd(self.kernel_in, self.kernel_out)
        self.p, self.q = self.kernel_in // g, self.kernel_out // g
        # torchaudio's half-width, in input samples (same formula as its kernel builder).
        self.width = math.ceil(lowpass_filter_width * self.p / (min(self.p, self.q) * rolloff))
        self.history_blocks = math.ceil(self.width / self.p)
        self.buffer = torch.zeros(0)
        self.buffer_start = 0  # input index of buffer[0]; always a multiple of p
        self.next_block = 0
        self.total_in = 0

    def _resample(self, piece: torch.Tensor) -> torch.Tensor:
        return AF.resample(piece, self.kernel_in, self.kernel_out)

    def _emit(self, last_block: int, final: bool) -> torch.Tensor:
        """Output blocks [next_block, last_block), from a buffer window that starts on a block boundary."""
        if last_block <= self.next_block:
            return torch.zeros(0, dtype=self.buffer.dtype)
        first_in = max(0, (self.next_block - self.history_blocks) * self.p)
        piece = self.buffer[first_in - self.buffer_start:]
        if not final:
            piece = piece[: last_block * self.p + self.width + self.p - first_in]
        out = self._resample(piece)
        skip = (self.next_block - first_in // self.p) * self.q
        out = out[skip: skip + (last_block - self.next_block) * self.q]
        self.next_block = last_block
        # Keep only the history the next block needs.
        keep_from = max(0, (self.next_block - self.history_blocks) * self.p)
        self.buffer = self.buffer[keep_from - self.buffer_start:]
        self.buffer_start = keep_from
        return out

    def push(self, piece: torch.Tensor) -> torch.Tensor:
        if self.p == self.q:
            self.total_in += piece.numel()
            return piece
        self.buffer = torch.cat([self.buffer.to(piece.dtype), piece])
        self.total_in += piece.numel()
        # Blocks whose full input window [b*p - w, b*p + w + p) has arrived.
        ready = (self.total_in - self.width - self.p) // self.p + 1
        return self._emit(max(ready, self.next_block), final=False)

    def flush(self) -> torch.Tensor:
        if self.p == self.q:
            return torch.zeros(0)
        total_out = math.ceil(self.q * self.total_in / self.p)
        emitted_before = self.next_block * self.q
        out = self._emit(math.ceil(total_out / self.q), final=True)
        out = out[: max(0, total_out - emitted_before)]
        if (self.kernel_in, self.kernel_out) != (self.orig_sr, self.target_sr):
            # A stand-in ratio: end where the exact one ends, as ``resample`` does, so that a stream is as
            # long as the whole (8001 Hz: 40,448 samples against 40,454 before).
            exact = -(-self.total_in * self.target_sr // self.orig_sr) - emitted_before
            out = torch.nn.functional.pad(out, (0, max(0, exact - out.numel())))[: max(0, exact)]
        return out
