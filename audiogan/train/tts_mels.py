"""Teacher-forced mels of a TTS checkpoint, for fine-tuning the vocoder on what TTS will feed it.

A vocoder trained on mels of real recordings sounds metallic on an acoustic model's smoother mels. The
classic fix (HiFi-GAN's fine-tuning on Tacotron 2 output) trains it further on the acoustic model's own
mels, frame-aligned with the recordings: the aligner's durations and the recorded pitch and energy are
forced, so frame t of the predicted mel covers the same samples as frame t of the real one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiogan.train.checkpoint import load_checkpoint
from audiogan.train.tts_data import build_features, split
from audiogan.train.tts_trainer import model_from_checkpoint, training_batch

log = logging.getLogger(__name__)


@torch.no_grad()
def write_predicted_mels(checkpoint: str | Path, data_dirs: list[str], out_dir: str | Path,
                         device: str = "cpu", batch_size: int = 8) -> int:
    """Write ``<out_dir>/<clip id>.npy`` (float32 [n_mels, frames]) for every training clip; returns the count.

    Needs the training checkpoint, not exported weights: the aligner that fixes the durations is
    training-only and left out of exports.
    """
    dev = torch.device(device)
    ck = load_checkpoint(checkpoint, dev, "tts")
    cfg, table, model = model_from_checkpoint(ck)
    model.to(dev).eval()
    # Only the acoustic model's training clips: a vocoder fine-tuned on them then has not heard the held-out
    # sentences either, so the intelligibility benchmark's held-out row stays unseen.
    train, held_out = split(build_features(data_dirs, cfg.data, cfg.model.mel, table), cfg.data)
    utterances = sorted((u for u in train if u.speed == 1.0), key=lambda u: u.mel.shape[-1])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for first in tqdm(range(0, len(utterances), batch_size), desc="teacher-forced mels", unit="batch"):
        items = utterances[first:first + batch_size]
        batch = training_batch(items, ck["stats"], dev)
        pred = model(batch["tokens"], batch["mel"], batch["mel_lens"], batch["pitch"], batch["energy"],
                     batch["voiced"], batch["prior"], batch["speakers"])["mel"].float().cpu()
        for i, u in enumerate(items):
            target = out / f"{u.id}.npy"
            tmp = target.with_name(f".{target.stem}.tmp.npy")
            np.save(tmp, pred[i, :, : u.mel.shape[-1]].numpy())
            tmp.replace(target)
    log.info("wrote %d teacher-forced mels to %s (the %d held-out clips left out)", len(utterances), out,
             len(held_out))
    return len(utterances)
