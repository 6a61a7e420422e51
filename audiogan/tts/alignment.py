"""Learned text-to-mel alignment (the unsupervised aligner of RAD-TTS / FastPitch, Badlani et al. 2021).

A small aligner scores every (mel frame, phoneme) pair; a CTC forward-sum loss teaches it that the phonemes
occur in order; monotonic alignment search (Glow-TTS) turns its soft scores into hard durations, which train
the duration predictor and drive the length regulator. None of the shared data ships alignments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Aligner(nn.Module):
    def __init__(self, text_dim: int, n_mels: int, dim: int = 80, temperature: float = 0.0005) -> None:
        super().__init__()
        self.temperature = temperature
        self.keys = nn.Sequential(nn.Conv1d(text_dim, 2 * text_dim, 3, padding=1), nn.ReLU(),
                                  nn.Conv1d(2 * text_dim, dim, 1))
        self.queries = nn.Sequential(nn.Conv1d(n_mels, 2 * n_mels, 3, padding=1), nn.ReLU(),
                                     nn.Conv1d(2 * n_mels, n_mels, 1), nn.ReLU(), nn.Conv1d(n_mels, dim, 1))

    def forward(self, mel: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                prior: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, T], text embeddings [B, D, N], text_mask [B, N] -> log-probs [B, T, N]."""
        q = self.queries(mel)  # [B, A, T]
        k = self.keys(text)    # [B, A, N]
        dist = (q.pow(2).sum(1)[:, :, None] - 2 * torch.einsum("bat,ban->btn", q, k) + k.pow(2).sum(1)[:, None, :])
        logits = -self.temperature * dist
        logits = logits.masked_fill(~text_mask[:, None, :], -1e4)
        return F.log_softmax(logits, dim=-1) + torch.log(prior + 1e-8)


def beta_binomial_prior(text_lens: torch.Tensor, mel_lens: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """[B, T, N] prior favouring the diagonal: frame t of T over phonemes 0..N-1 ~ BetaBinomial(N-1, a, b)
    with a = scale * (t + 1), b = scale * (T - t). Padded entries are 0."""
    n_max, t_max = int(text_lens.max()), int(mel_lens.max())
    device = text_lens.device
    k = torch.arange(n_max, device=device, dtype=torch.float32)[None, None, :]
    t = torch.arange(t_max, device=device, dtype=torch.float32)[None, :, None]
    n = (text_lens.float() - 1)[:, None, None]
    big_t = mel_lens.float()[:, None, None]
    a, b = scale * (t + 1), scale * (big_t - t).clamp(min=1)
    log_choose = torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma((n - k).clamp(min=0) + 1)
    log_beta = lambda x, y: torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)  # noqa: E731
    log_pmf = log_choose + log_beta(k + a, (n - k).clamp(min=0) + b) - log_beta(a, b)
    valid = (k < text_lens[:, None, None]) & (t < mel_lens[:, None, None])
    return torch.where(valid, log_pmf.exp(), torch.zeros((), device=device))


def forward_sum_loss(log_probs: torch.Tensor, text_lens: torch.Tensor, mel_lens: torch.Tensor,
                     blank_log_prob: float = -1.0) -> torch.Tensor:
    """CTC over the aligner's scores: every phoneme, in order, must be reached by some frame."""
    b, _, n = log_probs.shape
    x = F.pad(log_probs, (1, 0), value=blank_log_prob)
    columns = torch.arange(n + 1, device=x.device)
    x = x.masked_fill(columns[None, None, :] > text_lens[:, None, None], -1e4)
    x = F.log_softmax(x, dim=-1).transpose(0, 1)  # [T, B, N+1]
    targets = torch.arange(1, n + 1, device=x.device).expand(b, n)
    return F.ctc_loss(x.float(), targets, mel_lens, text_lens, blank=0, reduction="mean", zero_infinity=True)


@torch.no_grad()
def monotonic_alignment_search(log_probs: torch.Tensor, text_lens: torch.Tensor,
                               mel_lens: torch.Tensor) -> torch.Tensor:
    """The best monotonic path: each frame takes one phoneme, phonemes in order, each at least one frame.

    log_probs [B, T, N] -> hard alignment [B, T, N] of 0/1 on the same device. Dynamic programming over
    frames, value[t, n] = lp[t, n] + max(value[t-1, n], value[t-1, n-1]), in float32 as the scores are.
    It runs compiled on the CPU: as a torch loop over frames it launched several kernels per frame and
    synchronised with the host once per frame of the backtrack (hundreds of times per training step on a
    GPU), and took 66 ms for a batch of 16 on 2 CPU cores against 3 ms this way (benchmarks/RESULTS.md,
    "alignment search compiled").
    """
    lp = log_probs.detach().float().cpu().numpy()
    path = np.zeros(lp.shape, dtype=np.float32)
    _search_kernel()(lp, text_lens.cpu().numpy().astype(np.int64), mel_lens.cpu().numpy().astype(np.int64), path)
    return torch.from_numpy(path).to(log_probs.device)


@functools.cache
def _search_kernel() -> Callable[..., None]:
    import numba  # librosa's dependency, so installed with audiogan; compiled once per process (~1 s)

    @numba.njit(nogil=True)
    def search(lp: np.ndarray, text_lens: np.ndarray, mel_lens: np.ndarray, path: np.ndarray) -> None:
        neg = np.float32(-1e9)
        for b in range(lp.shape[0]):
            phones, frames = text_lens[b], mel_lens[b]
            value = np.full(phones, neg, dtype=np.float32)
            value[0] = lp[b, 0, 0]
            came_diagonal = np.zeros((frames, phones), dtype=np.bool_)
            for t in range(1, frames):
                for n in range(phones - 1, -1, -1):  # downwards, so value[n - 1] still holds frame t - 1
                    diagonal = value[n - 1] if n > 0 else neg
                    if diagonal > value[n]:
                        came_diagonal[t, n] = True
                        value[n] = diagonal + lp[b, t, n]
                    else:
                        value[n] = value[n] + lp[b, t, n]
            n = phones - 1  # backtrack from the last phoneme at the last frame
            for t in range(frames - 1, -1, -1):
                path[b, t, n] = 1.0
                if n > 0 and came_diagonal[t, n]:
                    n -= 1

    return search
