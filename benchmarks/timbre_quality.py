"""Note quality, judged by tools that are not the model: pitch (pYIN), timbre identity (an instrument
classifier trained on real notes), diversity (NDB) and interpolation smoothness.

    python -m benchmarks.timbre_quality --real /tmp/gm_notes                 # real notes: the ceilings
    python -m benchmarks.timbre_quality --real /tmp/gm_notes --model runs/timbre/timbre-gm-16k.safetensors
    python -m benchmarks.timbre_quality --real /tmp/gm_notes --model default --image docs/images/timbre_notes.png
    python -m benchmarks.timbre_quality --real /tmp/gm_notes --model default --swap-phase   # magnitude or IF?
    python -m benchmarks.timbre_quality --real /tmp/gm_notes --ceilings    # what each representation keeps
    python -m benchmarks.timbre_quality --model default --instruments drawbar_organ flute   # pitch, a few only

- Pitch: on pitch when the median pYIN f0 over voiced frames (first 2.5 s) is within ±50 cents. Target >= 95 %.
- Timbre identity: logistic regression on per-note log-mel statistics, trained on the real notes of
  velocities other than the held-out one, scored on the held-out velocity (ceiling) and on generated notes.
- NDB (Richardson & Weiss 2018, as in GANSynth): k-means bins of real notes' features; the number of bins
  whose share of generated notes differs from the real share (two-proportion z-test, p < 0.05).
- Velocity: whether a note made at velocity 75 or 127 is nearer the real note of its own velocity.
- Interpolation: the spectral-centroid path of an 8-step slerp, share of steps moving monotonically
  (2 pairs at pitch 60, as first reported; and 9 pairs at pitches 48/60/72).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from audiogan.timbre.notes_data import load_examples


def cents_off(audio: np.ndarray, pitch: int, rate: int = 16000) -> float:
    import warnings

    import librosa

    # librosa warns that 31.25 Hz is at the edge of a 1024-sample frame; it is: MIDI 24 is 32.7 Hz.
    warnings.filterwarnings("ignore", message="With fmin")
    f0, voiced, _ = librosa.pyin(audio[: int(2.5 * rate)], fmin=31.25, fmax=2500, sr=rate, frame_length=1024)
    if not np.any(voiced):
        return float("inf")
    target = 440.0 * 2 ** ((pitch - 69) / 12)
    return float(1200 * np.log2(np.nanmedian(f0[voiced]) / target))


def features(audio: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Mean and spread over time of the log-mel: a timbre fingerprint for the classifier and NDB."""
    import librosa

    mel = np.log(librosa.feature.melspectrogram(y=audio[: 3 * rate], sr=rate, n_mels=64) + 1e-6)
    return np.concatenate([mel.mean(1), mel.std(1)])


def timbre_scores(real_dir: str, held_velocity: int, model_path: str | None, pitch_step: int,
                  comb: bool = True, phase_lock: bool = True, swap_phase: bool = False,
                  ceilings: bool = False) -> None:
    import soundfile as sf
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    notes = [r for r in load_examples(real_dir) if r.pitch % pitch_step == 0]
    held = np.array([r.velocity == held_velocity for r in notes])
    held_waves: dict[Path, np.ndarray] = {}  # kept for --swap-phase and --ceilings, which re-encode them
    rows = []
    for r, h in zip(notes, held, strict=True):
        wave = sf.read(r.path, dtype="float32")[0]
        if h and (swap_phase or ceilings):
            held_waves[r.path] = wave
        rows.append(features(wave))
    x = np.stack(rows)
    y = np.array([r.instrument for r in notes])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[~held], y[~held])
    print(f"instrument classifier ({len(set(y))} classes, {int((~held).sum())} training notes): "
          f"{100 * classifier.score(x[held], y[held]):.1f} % on real notes of held-out velocity {held_velocity}")
    if ceilings:
        held_notes = [r for r, h in zip(notes, held, strict=True) if h]
        representation_ceilings(classifier, held_notes, [held_waves[r.path] for r in held_notes])
    if not model_path:
        return
    from audiogan.timbre import TimbreModel

    model = TimbreModel.load(model_path, device="cpu", comb=comb, phase_lock=phase_lock)
    lo, hi = model.cfg.pitch_min, model.cfg.pitch_max
    real = [(r.pitch, r.instrument) for r, h in zip(notes, held, strict=True)
            if h and r.instrument in model.instruments and lo <= r.pitch <= hi]
    audio = np.concatenate([model.generate([p for p, _ in real[i:i + 32]], [n for _, n in real[i:i + 32]],
                                           seeds=list(range(i, min(i + 32, len(real)))))
                            for i in range(0, len(real), 32)])
    g = np.stack([features(a) for a in audio])
    print(f"instrument classifier on {len(g)} generated notes (same pitches and instruments): "
          f"{100 * classifier.score(g, [n for _, n in real]):.1f} %")
    if swap_phase:
        waves = [held_waves[r.path] for r, h in zip(notes, held, strict=True)
                 if h and r.instrument in model.instruments and lo <= r.pitch <= hi]
        swapped_phase_scores(model, classifier, waves, real)
    bins = KMeans(n_clusters=50, n_init=4, random_state=0).fit(x)
    real_share = np.bincount(bins.labels_, minlength=50) / len(x)
    gen_share = np.bincount(bins.predict(g), minlength=50) / len(g)
    pooled = (real_share * len(x) + gen_share * len(g)) / (len(x) + len(g))
    z = (gen_share - real_share) / np.sqrt(pooled * (1 - pooled) * (1 / len(x) + 1 / len(g)) + 1e-12)
    print(f"NDB: {int((np.abs(z) > 1.96).sum())} of 50 bins differ (p < 0.05)")
    import librosa

    def monotone_steps(a: str, b: str, pitch: int) -> list[bool]:
        steps, _ = model.interpolate(a, b, pitch=pitch, steps=8)
        path = [float(librosa.feature.spectral_centroid(y=s, sr=16000).mean()) for s in steps]
        direction = np.sign(path[-1] - path[0])
        return [np.sign(q - p) == direction for p, q in itertools.pairwise(path)]

    names = model.instruments
    first = [monotone_steps(a, b, 60) for a, b in ((names[0], names[-1]), (names[1], names[-2]))]
    print(f"interpolation, 2 pairs at pitch 60: {100 * np.mean(first):.0f} % of slerp steps move the spectral "
          "centroid monotonically from a to b")
    # Fourteen steps tell little; pairs across the whole list and three octaves tell more.
    broad = [monotone_steps(names[i], names[(i + len(names) // 2) % len(names)], pitch)
             for i in range(0, len(names), 4) for pitch in (48, 60, 72)]
    print(f"interpolation, {len(broad)} pairs x pitches: {100 * np.mean(broad):.0f} % of "
          f"{sum(map(len, broad))} slerp steps monotone")


def representation_ceilings(classifier: Any, notes: list[Any], waves: list[np.ndarray]) -> None:
    """The classifier (and pYIN, on the notes of every 16th pitch) on real held-out notes after each way a
    generator's output becomes audio: encoded and decoded as linear IF and as IF-Mel (bin by bin and
    phase-locked), and as a log-mel copy-synthesized by the bundled (speech) vocoder, the alternative to
    an IF output."""
    import torch

    from audiogan.timbre.spectral import NoteSpectrogram, SpectralConfig, fit_length
    from audiogan.vocoder.inference import Vocoder

    labels = [r.instrument for r in notes]
    checked = [i for i, r in enumerate(notes) if r.pitch % 16 == 0]  # pYIN is the slow part
    ways: dict[str, list[np.ndarray]] = defaultdict(list)
    for scale in ("linear", "mel"):  # at the bundled model's STFT (gm_notes_cpu.yaml: hop 512, 128 frames)
        spec = NoteSpectrogram(SpectralConfig(hop_length=512, frames=128, frequency_scale=scale))
        n = spec.cfg.samples
        for i in range(0, len(waves), 32):
            batch = torch.stack([fit_length(torch.from_numpy(w), n) for w in waves[i:i + 32]])
            features_ = spec.encode(batch)
            for lock in (False, True):
                name = f"{'IF-Mel' if scale == 'mel' else 'linear IF'}, {'locked' if lock else 'bin by bin'}"
                ways[name] += list(spec.decode(features_, lock_phase=lock).numpy())
    vocoder = Vocoder.load("default", device="cpu")
    ways[f"log-mel, vocoded by {vocoder.card.get('name', 'the bundled vocoder')}"] = [
        vocoder.copy_synthesize(w).numpy().ravel()[: len(w)] for w in waves]
    print(f"| real held-out notes, decoded as | instrument classifier | pitch within ±50 cents ({len(checked)}) |"
          "\n|---|---|---|")
    for name, audio in [("recorded (no decoding)", waves), *ways.items()]:
        identity = 100 * classifier.score(np.stack([features(a) for a in audio]), labels)
        on_pitch = np.mean([abs(cents_off(audio[i], notes[i].pitch)) <= 50 for i in checked])
        print(f"| {name} | {identity:.1f} % | {100 * on_pitch:.1f} % |")


def swapped_phase_scores(model: Any, classifier: Any, waves: list[np.ndarray],
                         conditions: list[tuple[int, str]]) -> None:
    """Where identity is lost: the classifier on real and generated log-magnitude and IF mixed, each decoded
    bin by bin and phase-locked (no comb, so that only the spectrogram's parts differ)."""
    import torch

    from audiogan.timbre.inference import seed_noise

    n = model.cfg.spectral.samples
    scores: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(0, len(waves), 32):
        clips = [torch.from_numpy(w[:n]) for w in waves[i:i + 32]]
        real = model.spectral.encode(torch.stack([torch.nn.functional.pad(w, (0, n - len(w))) for w in clips]))
        batch = conditions[i:i + 32]
        z = seed_noise(range(i, i + len(batch)), model.cfg.latent_dim)  # the noise generate() gives these seeds
        with torch.inference_mode():
            fake = model.G(z, torch.tensor([p for p, _ in batch]), torch.stack([model.timbre(t) for _, t in batch]),
                           torch.full((len(batch),), 100)).float()
        for mag_name, mag in (("real", real), ("generated", fake)):
            for if_name, inst in (("real", real), ("generated", fake)):
                spec = torch.stack([mag[:, 0], inst[:, 1]], dim=1)
                for lock in (False, True):
                    audio = model.spectral.decode(spec, lock_phase=lock).numpy()
                    scores[f"{mag_name} magnitude, {if_name} IF, {'locked' if lock else 'bin by bin'}"] += [
                        features(a) for a in audio]
    labels = [t for _, t in conditions]
    print("| log-magnitude, IF, decoding | instrument classifier |\n|---|---|")
    for name, rows in scores.items():
        print(f"| {name} | {100 * classifier.score(np.stack(rows), labels):.1f} % |")


def velocity_scores(real_dir: str, model: Any, pitch_step: int, soft: int = 75, loud: int = 127) -> None:
    """Does the timbre follow velocity? For each instrument and pitch, the note generated at one velocity
    should be nearer (log-mel mean) to the real note of that velocity than to the real note of the other.
    A generator without a velocity input makes the same note at both, which scores exactly 50 %."""
    import soundfile as sf

    lo, hi = model.cfg.pitch_min, model.cfg.pitch_max
    real = {(r.instrument, r.pitch, r.velocity): r.path for r in load_examples(real_dir)
            if r.pitch % pitch_step == 0 and r.velocity in (soft, loud) and lo <= r.pitch <= hi}
    keys = sorted({(i, p) for i, p, _ in real if (i, p, soft) in real and (i, p, loud) in real
                   and i in model.instruments})
    if not keys:
        print(f"velocity: no real notes of both velocities {soft} and {loud}")
        return

    def fingerprint(audio: np.ndarray) -> np.ndarray:  # at one peak level: generated level follows velocity
        return features(audio / max(float(np.abs(audio).max()), 1e-6))[:64]

    nearer, real_shift, fake_shift = [], [], []
    same = 0
    for i in range(0, len(keys), 32):
        batch = keys[i:i + 32]
        seeds = list(range(i, i + len(batch)))
        made = {v: model.generate([p for _, p in batch], [n for n, _ in batch], [v] * len(batch), seeds)
                for v in (soft, loud)}
        for j, (name, pitch) in enumerate(batch):
            r = {v: fingerprint(sf.read(real[(name, pitch, v)], dtype="float32")[0]) for v in (soft, loud)}
            g = {v: fingerprint(made[v][j]) for v in (soft, loud)}
            if np.allclose(r[soft], r[loud], atol=1e-3):  # a preset without velocity layers: nothing to follow
                same += 1
                continue
            for v, other in ((soft, loud), (loud, soft)):
                nearer.append(np.linalg.norm(g[v] - r[v]) < np.linalg.norm(g[v] - r[other]))
            real_shift.append(float(np.mean(r[loud] - r[soft])))
            fake_shift.append(float(np.mean(g[loud] - g[soft])))
    if not nearer:
        print(f"velocity: the real notes at {soft} and {loud} are the same note for all {same} pairs")
        return
    # The layers are peak-normalised, so the mean log-mel change from soft to loud is one of shape and
    # envelope (a brighter, denser loud note), not of level.
    corr = np.corrcoef(real_shift, fake_shift)[0, 1] if np.std(fake_shift) > 0 else float("nan")
    print(f"velocity {soft} vs {loud}, {len(keys) - same} instrument x pitch pairs "
          f"({same} more whose real layers are the same note): the generated note is nearer the "
          f"real note of its own velocity in {100 * np.mean(nearer):.1f} % of {len(nearer)} cases (50 % = no "
          f"velocity timbre); soft-to-loud log-mel change, real vs generated: r = {corr:.2f}, mean "
          f"{np.mean(real_shift):+.3f} vs {np.mean(fake_shift):+.3f}")


def plot_notes(path: str, real_dir: str, model_path: str, instruments: list[str], pitch: int = 60,
               comb: bool = True, phase_lock: bool = True) -> None:
    """Real (top) and generated (bottom) log-magnitude spectrograms of one pitch for a few instruments."""
    import matplotlib
    import soundfile as sf
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiogan.timbre import TimbreModel

    model = TimbreModel.load(model_path, device="cpu", comb=comb, phase_lock=phase_lock)
    real = {r.instrument: r.path for r in load_examples(real_dir) if r.pitch == pitch and r.velocity == 50}
    generated = model.generate([pitch] * len(instruments), instruments, [100] * len(instruments))
    bin_hz = model.sample_rate / model.cfg.spectral.n_fft
    shown = min(model.cfg.spectral.bins, int(4000 / bin_hz))  # 0-4 kHz, where the partials are
    fig, axes = plt.subplots(2, len(instruments), figsize=(3 * len(instruments), 5), sharex=True, sharey=True)
    for col, name in enumerate(instruments):
        wave = sf.read(real[name], dtype="float32")[0]
        for row, audio in enumerate((wave, generated[col])):
            spec = model.spectral.encode(torch.from_numpy(np.ascontiguousarray(audio))[None])[0, 0]
            axes[row, col].imshow(spec[:shown].numpy(), origin="lower", aspect="auto", vmin=-0.6, vmax=0.8,
                                  cmap="magma")
        axes[0, col].set_title(name, fontsize=9)
    axes[0, 0].set_ylabel(f"real (held-out velocity)\nbin ({bin_hz:.1f} Hz)")
    axes[1, 0].set_ylabel(f"{model.card.get('name')}\nbin ({bin_hz:.1f} Hz)")
    for ax in axes[1]:
        ax.set_xlabel(f"frame ({1000 * model.cfg.spectral.hop_length // model.sample_rate} ms)")
    fig.suptitle(f"MIDI pitch {pitch}, 0-{shown * bin_hz / 1000:.0f} kHz", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def report(rows: list[tuple[str, int, float]], label: str) -> None:
    hits = [abs(c) <= 50 for _, _, c in rows]
    print(f"{label}: {sum(hits)}/{len(hits)} notes within ±50 cents = {100 * np.mean(hits):.1f} %")
    by_octave: dict[int, list[bool]] = defaultdict(list)
    by_family: dict[str, list[bool]] = defaultdict(list)
    for (family, pitch, _), hit in zip(rows, hits, strict=True):
        by_octave[pitch // 12 - 1].append(hit)
        by_family[family].append(hit)
    print("| octave | notes | on pitch % |\n|---|---|---|")
    for octave, h in sorted(by_octave.items()):
        print(f"| {octave} | {len(h)} | {100 * np.mean(h):.1f} |")
    print("| family | notes | on pitch % |\n|---|---|---|")
    for family, h in sorted(by_family.items()):
        print(f"| {family} | {len(h)} | {100 * np.mean(h):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", help="NSynth-format folder of real notes (the ceiling)")
    parser.add_argument("--model", help="timbre model .safetensors to judge")
    parser.add_argument("--pitch-step", type=int, default=4, help="every Nth pitch (default: %(default)s)")
    parser.add_argument("--velocity", type=int, default=100)
    parser.add_argument("--image", help="with --real and --model: write a PNG of real and generated notes")
    parser.add_argument("--instruments", nargs="+", metavar="NAME",
                        help="check the pitch of these instruments only, and skip the other measures (quick)")
    parser.add_argument("--no-comb", action="store_true", help="judge the notes without the half-harmonic comb")
    parser.add_argument("--no-lock", action="store_true", help="decode the notes without phase locking")
    parser.add_argument("--swap-phase", action="store_true",
                        help="with --real: also score real and generated magnitude and IF mixed (a diagnosis)")
    parser.add_argument("--ceilings", action="store_true",
                        help="with --real: score real notes decoded from linear IF, IF-Mel and the vocoder's log-mel")
    args = parser.parse_args()
    options = {"comb": not args.no_comb, "phase_lock": not args.no_lock}
    if args.real:
        import soundfile as sf

        notes = [r for r in load_examples(args.real) if r.velocity == args.velocity and r.pitch % args.pitch_step == 0
                 and (not args.instruments or r.instrument in args.instruments)]
        rows = [(r.family, r.pitch, cents_off(sf.read(r.path, dtype="float32")[0], r.pitch)) for r in notes]
        report(rows, f"real notes in {args.real} (velocity {args.velocity})")
    if args.model:
        from audiogan.timbre import TimbreModel

        model = TimbreModel.load(args.model, device="cpu", **options)
        family = dict(zip(model.instruments, model.cfg.families or model.instruments, strict=True))
        pitches = [p for p in range(model.cfg.pitch_min, model.cfg.pitch_max + 1) if p % args.pitch_step == 0]
        rows = []
        for name in map(model.instrument_name, args.instruments or model.instruments):
            audio = model.generate(pitches, [name] * len(pitches), [args.velocity] * len(pitches))
            rows += [(family[name], p, cents_off(a, p)) for p, a in zip(pitches, audio, strict=True)]
        report(rows, f"generated by {model.card.get('name')}")
    if args.real and not args.instruments:
        timbre_scores(args.real, 50, args.model, args.pitch_step, swap_phase=args.swap_phase,
                      ceilings=args.ceilings, **options)
    if args.real and args.model and not args.instruments:
        velocity_scores(args.real, model, args.pitch_step)
    if args.image and args.real and args.model:
        plot_notes(args.image, args.real, args.model, ["acoustic_grand_piano", "violin", "flute", "trumpet"],
                   **options)
    if not (args.real or args.model):
        parser.error("give --real and/or --model")
    print(json.dumps({"note": "pYIN fmin 31.25 Hz, fmax 2500 Hz, frame 1024"}))


if __name__ == "__main__":
    main()
