"""Copy-synthesis quality on held-out speech: PESQ-wb, STOI, mel L1, level, V/UV F1, periodicity, pitch error.

    python benchmarks/vocoder_quality.py                       # bundled default vs Griffin-Lim
    python benchmarks/vocoder_quality.py --models default runs/x/snapshots/*.safetensors griffin-lim
    python benchmarks/vocoder_quality.py --oracle-phase     # + each iSTFT model's magnitude with the true phase
    python benchmarks/vocoder_quality.py --phase-iterations 0 4 8   # the default with fast Griffin-Lim refinement
    python benchmarks/vocoder_quality.py --phase network rtpghi     # the phase head against phase from magnitude
    python benchmarks/vocoder_quality.py --phase-sources    # + a harmonic-phase model's harmonic or free phase alone
    python benchmarks/vocoder_quality.py --dnsmos           # + DNSMOS, the recordings' own scores as the ceiling

The held-out clips are the validation set of configs/vocoder/istft_16k.yaml (LibriSpeech speakers never
seen in training, plus a few clips of the other sets). Prints a Markdown table and, for two or more models,
each one's per-clip differences from the first named, with a 95 % interval: whether the clips show them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torchaudio
from tqdm import tqdm

from audiogan import Vocoder, load_audio, metrics
from audiogan.audio.mel import MelSpectrogram
from audiogan.vocoder.phases import INFERENCE_PHASES
from audiogan.weights import resolve
from benchmarks.common import SHARED_SPEECH, held_out_clips, phase_label


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


class OraclePhase:
    """An iSTFT vocoder's predicted magnitude with the recording's own phase: how much of the remaining
    error is phase. Needs the recording, so it is a diagnosis, not a vocoder."""

    def __init__(self, vocoder: Vocoder) -> None:
        self.vocoder = vocoder

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        g = self.vocoder.generator
        log_mag, _ = g.spectrum(g.condition(self.vocoder.mel(wave)[None]))
        phase = torch.angle(g.stft(wave[None, : wave.numel() // g.hop * g.hop]))[..., : log_mag.shape[-1]]
        return g.synthesize(log_mag, phase)[0].clamp(-1, 1)


class PhaseSource:
    """A harmonic-phase vocoder with its gate forced open ("harmonic") or shut ("free"): what each phase
    is worth alone. ``shares`` collects the gate's energy-weighted mean per clip: how much of what one
    hears the trained gate gives to the harmonic phase."""

    def __init__(self, vocoder: Vocoder, source: str) -> None:
        self.vocoder, self.source, self.shares = vocoder, source, []

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        g = self.vocoder.generator
        log_mag, harm, free, gate = g.phase_parts(g.condition(self.vocoder.mel(wave)[None]))
        energy = torch.exp(2 * log_mag)
        self.shares.append(float((gate * energy).sum() / energy.sum()))
        return g.synthesize(log_mag, harm if self.source == "harmonic" else free)[0].clamp(-1, 1)


def evaluate(name: str, render, mel_fn: MelSpectrogram, clips: list[torch.Tensor], sr: int,
             pitch: bool, mos: bool = False) -> dict[str, float | str]:
    """``render``: recording -> its copy-synthesis; ``mos`` adds DNSMOS's overall and P.808 scores."""
    rows = []
    for wave in tqdm(clips, desc=name, leave=False):
        with torch.inference_mode():
            out = render(wave).float()
        ref = wave[: out.numel()].numpy()
        deg = out.numpy()
        row = {"pesq_wb": metrics.pesq_wb(ref, deg, sr), "stoi": metrics.stoi(ref, deg, sr),
               "mel_l1": float((mel_fn(out) - mel_fn(torch.from_numpy(ref))).abs().mean()),
               # PESQ and STOI are blind to level; a vocoder that comes out quieter must show somewhere.
               "level_db": float(10 * np.log10(np.mean(deg ** 2) / max(np.mean(ref ** 2), 1e-12)))}
        if pitch:
            row.update(metrics.pitch_metrics(ref, deg, sr))
        if mos:
            scores = metrics.dnsmos(deg, sr)
            if scores is None:
                raise SystemExit("--dnsmos needs speechmos and onnxruntime: pip install -e .[bench]")
            row.update(dnsmos_ovrl=scores["ovrl_mos"], dnsmos_p808=scores["p808_mos"])
        rows.append(row)
    keys = rows[0].keys()
    return {"model": name, **{k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys},
            "per_clip": rows}


# Which way is better, for the paired comparison: +1 higher, -1 lower.
BETTER = {"pesq_wb": 1, "stoi": 1, "mel_l1": -1, "vuv_f1": 1, "dnsmos_ovrl": 1, "dnsmos_p808": 1}


def paired_table(base: dict, others: list[dict]) -> list[str]:
    """Each model against ``base`` on the same clips: mean per-clip difference with its 95 % t-interval, and
    in how many clips it is better. A difference whose interval spans 0 is not shown by these clips."""
    from scipy import stats

    cols = [c for c in BETTER if c in base]
    lines = [f"\nPer-clip differences from {base['model']} (mean [95 % interval], clips better)\n",
             "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for other in others:
        cells = []
        for c in cols:
            d = np.array([o[c] - b[c] for o, b in zip(other["per_clip"], base["per_clip"], strict=True)
                          if o.get(c) is not None and b.get(c) is not None])
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}], "
                         f"{int((np.sign(d) == BETTER[c]).sum())}/{len(d)}")
        lines.append(f"| {other['model']} | " + " | ".join(cells) + " |")
    return lines


def write_image(waves: dict[str, torch.Tensor], path: Path, vocoder: Vocoder) -> None:
    """Log-magnitude 0-2 kHz, where harmonics show whether their phase advances coherently."""
    from audiogan.plots import plot_mels
    from audiogan.vocoder.istft import FramedSTFT

    c = vocoder.config.mel
    stft = FramedSTFT(c.n_fft, c.hop_length)
    top_bin = int(2000 / (c.sample_rate / c.n_fft))
    spectra = {}
    for name, w in waves.items():
        n = w.numel() // c.hop_length * c.hop_length
        spectra[name] = torch.log(stft(w[None, :n]).abs().clamp(min=1e-4))[0, :top_bin]
    plot_mels(spectra, path, c, ylabel="Hz", top=2000)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["default", "griffin-lim"],
                   help="bundled names, .safetensors paths, or griffin-lim")
    p.add_argument("--data", nargs="+", type=Path, default=sorted(SHARED_SPEECH.iterdir()) if SHARED_SPEECH.is_dir()
                   else [], help="data folders holding the held-out clips (default: ../shared/data/speech/*)")
    p.add_argument("--no-pitch", action="store_true", help="skip pYIN V/UV and periodicity (slow)")
    p.add_argument("--oracle-phase", action="store_true",
                   help="also score each iSTFT model's magnitude with the recording's phase (a diagnosis)")
    p.add_argument("--phase-sources", action="store_true",
                   help="also score each harmonic-phase model with its harmonic or its free phase alone (a diagnosis)")
    p.add_argument("--image", type=Path, help="write a PNG: 0-2 kHz spectrogram of 3 s of the first clip per model")
    p.add_argument("--phase-iterations", type=int, nargs="+", default=[None], metavar="N",
                   help="score iSTFT models with these fast Griffin-Lim refinements (default: as configured)")
    p.add_argument("--phase", nargs="+", default=[None], choices=INFERENCE_PHASES,
                   help="score iSTFT models with the phase from these sources (default: as configured)")
    p.add_argument("--dnsmos", action="store_true",
                   help="also judge each output by DNSMOS (no reference: the recordings get a row of their own)")
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
    if args.dnsmos:  # the ceiling of a reference-free judge: what it thinks of the recordings themselves
        results.append(evaluate("recordings", lambda wave: wave, mel_fn, clips, sr, False, mos=True))
    pictures: dict[str, torch.Tensor] = {"recording": clips[0][: 3 * sr]}
    runs = [(name, source, n) for name in args.models
            for source in ([None] if name == "griffin-lim" else args.phase)
            for n in ([None] if name == "griffin-lim" else args.phase_iterations)]
    for name, source, n in runs:
        synth = (GriffinLim(base) if name == "griffin-lim"
                 else Vocoder.load(name, device="cpu", phase_iterations=n, phase=source))
        label = phase_label(Path(name).stem if name.endswith(".safetensors") else name, n, source)
        def render(wave: torch.Tensor, synth=synth) -> torch.Tensor:
            return synth(mel_fn(wave))

        row = evaluate(label, render, mel_fn, clips, sr, not args.no_pitch, args.dnsmos)
        if args.image:
            with torch.inference_mode():
                pictures[label] = render(pictures["recording"]).float()
        if name != "griffin-lim":
            card = synth.card
            row.update(steps=card["training"]["steps"], device_minutes=card["training"]["device_minutes"])
            istft = card["config"]["generator"].get("istft", {})
            own = istft.get("phase_iterations", 0)
            own_source = istft.get("inference_phase", "network")
            if args.write_card and n in (None, own) and source in (None, own_source):  # the card's own setting
                path = resolve(name, "vocoder").with_suffix(".json")
                card["validation"] = {
                    **{k: round(v, 4) for k, v in row.items() if isinstance(v, float) and k != "device_minutes"},
                    "clips": len(clips), "date": date.today().isoformat(),
                    "command": " ".join(["python -m benchmarks.vocoder_quality", *sys.argv[1:]]),
                }
                path.write_text(json.dumps(card, indent=2) + "\n")
        results.append(row)
        own_setting = name != "griffin-lim" and n is None and source is None
        if args.oracle_phase and own_setting and hasattr(synth.generator, "spectrum"):
            oracle = evaluate(f"{label}, true phase", OraclePhase(synth), mel_fn, clips, sr, not args.no_pitch)
            results.append(oracle)
        if args.phase_sources and own_setting and getattr(synth.generator, "pitch", None) is not None:
            for part in ("harmonic", "free"):
                alone = PhaseSource(synth, part)
                row = evaluate(f"{label}, {part} phase alone", alone, mel_fn, clips, sr, not args.no_pitch)
                if part == "harmonic":
                    print(f"{label}: the gate gives the harmonic phase {np.mean(alone.shares):.1%} of the energy")
                results.append(row)
    cols = [c for c in ("pesq_wb", "stoi", "mel_l1", "level_db", "vuv_f1", "periodicity_rmse", "pitch_rmse_cents",
                        "dnsmos_ovrl", "dnsmos_p808") if c in results[-1]]
    print(f"\nCopy-synthesis of {len(clips)} held-out clips at {sr} Hz (CPU, torch {torch.__version__})\n")
    print("| model | steps | device min | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in results:
        print(f"| {r['model']} | {r.get('steps', '-')} | {r.get('device_minutes', '-')} | "
              + " | ".join(f"{r[c]:.3f}" if c in r else "-" for c in cols) + " |")
    models = [r for r in results if r["model"] != "recordings"]
    if len(models) > 1:
        print("\n".join(paired_table(models[0], models[1:])))
    if args.image:
        write_image(pictures, args.image, base)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
