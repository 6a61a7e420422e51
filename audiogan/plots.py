"""Spectrogram pictures for people (matplotlib is an optional dependency: the 'train' extra)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from audiogan.audio.mel import MelConfig


def plot_mels(mels: dict[str, torch.Tensor], path: str | Path, config: MelConfig, ylabel: str = "mel bin",
              top: float | None = None, words: list[tuple[str, float, float]] | None = None) -> Path:
    """Stack log-mels [n_mels, T] (or other log spectra, with ``ylabel`` and the top row's value ``top``)
    vertically with a shared colour scale and a time axis in seconds; ``words`` (text, start, end in
    seconds) are marked on the bottom one."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ValueError("plotting needs matplotlib: pip install 'audiogan[train]'") from exc
    arrays = {k: v.detach().float().cpu().numpy() for k, v in mels.items()}
    lo = min(a.min() for a in arrays.values())
    hi = max(a.max() for a in arrays.values())
    fig, axes = plt.subplots(len(arrays), 1, figsize=(10, 2.6 * len(arrays)), squeeze=False,
                             layout="constrained")
    for ax, (title, a) in zip(axes[:, 0], arrays.items(), strict=True):
        seconds = a.shape[-1] * config.hop_length / config.sample_rate
        im = ax.imshow(a, origin="lower", aspect="auto", vmin=lo, vmax=hi,
                       extent=(0, seconds, 0, a.shape[0] if top is None else top))
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    axes[-1, 0].set_xlabel("time (s)")
    for n, (text, start, end) in enumerate(words or []):
        ax = axes[-1, 0]
        row = 0.965 - 0.07 * (n % 2)  # alternate rows, so that short neighbours' labels do not overprint
        ax.axvspan(start, end, ymin=row - 0.035, ymax=row + 0.035, color="white", alpha=0.4, linewidth=0)
        ax.axvline(start, color="white", linewidth=0.6, alpha=0.8)
        ax.text((start + end) / 2, row, text, transform=ax.get_xaxis_transform(), ha="center", va="center",
                fontsize=7, color="black", clip_on=True)
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="log magnitude")
    # Whole or not at all, into a folder made if missing, as the audio beside it is written: savefig
    # failed on a missing folder after the audio was written, and Ctrl-C could leave half a picture.
    from audiogan.audio.io import write_atomic

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=path.suffix.lstrip(".").lower() or None)
    plt.close(fig)
    return write_atomic(path, buffer.getvalue())
