"""Copy-synthesis quality on held-out speech: PESQ-wb, STOI, mel L1, V/UV F1, periodicity and pitch error.

    python benchmarks/vocoder_quality.py                       # bundled default vs Griffin-Lim
    python benchmarks/vocoder_quality.py --models default runs/x/snapshots/*.safetensors griffin-lim

The held-out clips are the validation set of configs/vocoder/istft_16k.yaml (LibriSpeech speakers never
seen in training, plus a few clips of the other sets). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torchaudio
from tqdm import tqdm

from audiogan import Vocoder, load_audio, metrics
from audiogan.audio.mel import MelSpectrogram
from audiogan.weights import resolve
from benchmarks.common import SHARED_SPEECH, held_out_clips


class GriffinLim:
    """The floor: invert the same log-mel by least squares, then Griffin-Lim phase retrieval."""

    def __init__(self, vocoder: Vocoder, n_iter: int = 64) -> None:
        c = vocoder.config.mel
        self.config = c
        self.inv = torchaudio.transforms.InverseMelScale(c.n_fft // 2 + 1, c.n_mels, c.sample_rate, c.f_min,
                                                         c.f_max, norm="slaney", mel_scale="slaney")
        self.gl = torchaudio.transforms.GriffinLim(c.n_fft, n_iter, c.win_length, c.hop_length, power=1.0)

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        mag = self.inv(mel.exp())
        wave = self.gl(mag)
        # torchaudio centres frame t on t*hop; audiogan's mel centres it on t*hop + hop/2.
        return torch.nn.functional.pad(wave, (self.config.hop_length // 2, 0))[: mel.shape[-1] * self.config.hop_length]


def evaluate(name: str, synth, mel_fn: MelSpectrogram, clips: list[torch.Tensor], sr: int,
             pitch: bool) -> dict[str, float | str]:
    rows = []
    for wave in tqdm(clips, desc=name, leave=False):
        with torch.inference_mode():
            out = synth(mel_fn(wave)).float()
        ref = wave[: out.numel()].numpy()
        deg = out.numpy()
        row = {"pesq_wb": metrics.pesq_wb(ref, deg, sr), "stoi": metrics.stoi(ref, deg, sr),
               "mel_l1": float((mel_fn(out) - mel_fn(torch.from_numpy(ref))).abs().mean())}
        if pitch:
            row.update(metrics.pitch_metrics(ref, deg, sr))
        rows.append(row)
    keys = rows[0].keys()
    return {"model": name, **{k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["default", "griffin-lim"],
                   help="bundled names, .safetensors paths, or griffin-lim")
    p.add_argument("--data", nargs="+", type=Path, default=sorted(SHARED_SPEECH.iterdir()) if SHARED_SPEECH.is_dir()
                   else [], help="data folders holding the held-out clips (default: ../shared/data/speech/*)")
    p.add_argument("--no-pitch", action="store_true", help="skip pYIN V/UV and periodicity (slow)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="write the rows here")
    p.add_argument("--write-card", action="store_true", help="store the figures in each model's JSON card")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    files = held_out_clips(args.data)
    if not files:
        raise SystemExit("no held-out clips found: pass --data with the shared speech folders")
    base = Vocoder.load("default", device="cpu")
    sr = base.sample_rate
    clips = [load_audio(f, sr)[0] for f in files]
    mel_fn = base.mel_transform
    results = []
    for name in args.models:
        synth = GriffinLim(base) if name == "griffin-lim" else Vocoder.load(name, device="cpu")
        row = evaluate(name, synth, mel_fn, clips, sr, not args.no_pitch)
        if name != "griffin-lim":
            card = synth.card
            row.update(steps=card["training"]["steps"], device_minutes=card["training"]["device_minutes"])
            if args.write_card:
                path = resolve(name, "vocoder").with_suffix(".json")
                card["validation"] = {
                    **{k: round(v, 4) for k, v in row.items() if isinstance(v, float) and k != "device_minutes"},
                    "clips": len(clips), "date": date.today().isoformat(),
                    "command": "python -m benchmarks.vocoder_quality --write-card",
                }
                path.write_text(json.dumps(card, indent=2) + "\n")
        results.append(row)
    cols = [c for c in ("pesq_wb", "stoi", "mel_l1", "vuv_f1", "periodicity_rmse", "pitch_rmse_cents")
            if c in results[0]]
    print(f"\nCopy-synthesis of {len(clips)} held-out clips at {sr} Hz (CPU, torch {torch.__version__})\n")
    print("| model | steps | device min | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in results:
        print(f"| {r['model']} | {r.get('steps', '-')} | {r.get('device_minutes', '-')} | "
              + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
