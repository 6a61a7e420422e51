"""Learned text-to-mel alignment (the unsupervised aligner of RAD-TTS / FastPitch, Badlani et al. 2021).

A small aligner scores every (mel frame, phoneme) pair; a CTC forward-sum loss teaches it that the phonemes
occur in order; monotonic alignment search (Glow-TTS) turns its soft scores into hard durations, which train
the duration predictor and drive the length regulator. None of the shared data ships alignments.
"""

from __future__ import annotations

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

    log_probs [B, T, N] -> hard alignment [B, T, N] of 0/1. Dynamic programming over frames, vectorised over
    the batch and phonemes: value[t, n] = lp[t, n] + max(value[t-1, n], value[t-1, n-1]).
    """
    b, t_max, n_max = log_probs.shape
    device = log_probs.device
    neg = torch.tensor(-1e9, device=device)
    lp = log_probs.float().masked_fill(
        (torch.arange(n_max, device=device)[None, None, :] >= text_lens[:, None, None]), -1e9)
    value = torch.full((b, n_max), -1e9, device=device)
    value[:, 0] = lp[:, 0, 0]
    came_diagonal = torch.zeros((b, t_max, n_max), dtype=torch.bool, device=device)
    for t in range(1, t_max):
        shifted = torch.cat([neg.expand(b, 1), value[:, :-1]], dim=1)
        diagonal = shifted > value
        came_diagonal[:, t] = diagonal
        value = torch.where(diagonal, shifted, value) + lp[:, t]
    # Backtrack from the last phoneme at each item's last frame.
    path = torch.zeros((b, t_max, n_max), device=device)
    index = (text_lens - 1).clone()
    rows = torch.arange(b, device=device)
    for t in range(t_max - 1, -1, -1):
        active = t < mel_lens
        path[rows[active], t, index[active]] = 1.0
        step = came_diagonal[rows, t, index] & active & (index > 0)
        index = index - step.long()
    return path
