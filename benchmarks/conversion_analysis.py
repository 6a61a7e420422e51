"""Conversion's pitch analysis: audiogan's pYIN (``audiogan.audio.pitch``, banded Viterbi, a piece at a
time) against ``librosa.pyin`` at the same settings (conversion's: 2048-sample frames, hop 256, 20-cent
bins, MIDI 23-97), on the same audio: do they decode the same, and how long does each take?

    python -m benchmarks.conversion_analysis
    python -m benchmarks.conversion_analysis --speech ../shared/data/speech --clips 40
    python -m benchmarks.conversion_analysis --abandoned 300   # a server, a call gone mid-analysis

Inputs, at 16 kHz: a 60 s melody of random harmonic notes (MIDI 30-89) with noise bursts between some;
the synthetic and FluidR3 violin performances of ``benchmarks.timbre_expression`` (the violin needs
fluidsynth and its soundfont); and speech clips from the shared data (pitched, unlike a melody between
its words: the hardest case for an HMM's voicing). Both trackers are run once to compile before timing.

``--voicing``: the refusal of polyphonic input. FluidR3 renders single notes of 12 instruments (MIDI 24-60,
every 2nd) and dyads, triads and octaves on piano, strings and guitar (roots 28-64, every 4th); the table
gives pYIN's median voicing probability over the single notes' loud frames by pitch (conversion's curve
``CLEAN_VOICING`` comes from it), then how many of each the analysis refuses as polyphonic, judged by the
plain mean probability (the rule before) and against that curve (now).

``--abandoned S``: what an abandoned conversion costs the next one. A server with the bundled note model
(one conversions thread) gets an S-second melody whose caller gives up after 1 s, then at once the 4.8 s
synthetic performance; its time is compared with the same conversion alone (median of 3).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED_SPEECH
from benchmarks.timbre_expression import RATE, fluidsynth_violin, synthetic

FMIN, FMAX = 32.70, 2217.46  # MIDI 23 and 97: conversion's pitch range 24-96 and a semitone either side


def random_melody(seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * RATE)) / RATE
    parts = []
    while sum(map(len, parts)) < seconds * RATE:
        freq = 440 * 2 ** ((rng.integers(30, 90) - 69) / 12)
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5))
        parts.append(0.3 * tone * np.minimum(1, (0.4 - t) * 20))
        if rng.random() < 0.15:
            parts.append(rng.normal(0, 0.01, 2000))
    return np.concatenate(parts)[: int(seconds * RATE)].astype(np.float32)


def speech_clips(folder: Path, count: int) -> list[tuple[str, np.ndarray]]:
    import librosa

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".flac", ".wav"})
    picked = np.random.default_rng(1).choice(len(files), min(count, len(files)), replace=False) if files else []
    return [(f"speech {files[i].parent.parent.name}/{files[i].stem}",
             librosa.load(files[i], sr=RATE, mono=True)[0]) for i in sorted(picked)]


def compare(wave: np.ndarray) -> tuple[int, int, int, float, float]:
    """Frames, frames voiced differently, frames voiced in both with another f0, seconds (librosa, ours)."""
    import librosa

    from audiogan.audio.pitch import pyin
    from audiogan.timbre.analysis import HOP, PYIN_RESOLUTION

    started = time.perf_counter()
    theirs = librosa.pyin(wave, fmin=FMIN, fmax=FMAX, sr=RATE, frame_length=2048, hop_length=HOP,
                          resolution=PYIN_RESOLUTION)
    middle = time.perf_counter()
    ours = pyin(wave, RATE, FMIN, FMAX, 2048, HOP, PYIN_RESOLUTION)
    ended = time.perf_counter()
    both = theirs[1] & ours[1]
    return (len(ours[0]), int((theirs[1] != ours[1]).sum()), int((theirs[0][both] != ours[0][both]).sum()),
            middle - started, ended - middle)


def abandoned(seconds: float) -> None:
    import io

    import grpc
    import soundfile as sf
    from audiogan_client import AudioGanClient
    from audiogan_server.process import launch

    def upload(wave: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, wave, RATE, format="WAV")
        return buffer.getvalue()

    long, short = upload(random_melody(seconds)), upload(synthetic())
    with launch("--voice", "none") as server, AudioGanClient(server.target, timeout=600, retries=0) as client:
        alone = []
        for _ in range(4):  # the first compiles
            started = time.perf_counter()
            client.convert(short, to="flute")
            alone.append(time.perf_counter() - started)
        with AudioGanClient(server.target, timeout=1.0, retries=0) as hasty:
            try:
                hasty.convert(long, to="flute")
                raise SystemExit(f"the {seconds:g} s conversion finished within its 1 s deadline: pick a longer one")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
        started = time.perf_counter()
        client.convert(short, to="flute")
        behind = time.perf_counter() - started
    print(f"4.8 s conversion alone: {float(np.median(alone[1:])):.2f} s (median of 3); right after a {seconds:g} s "
          f"conversion abandoned at 1 s: {behind:.2f} s")


VOICING_PROGRAMS = {32: "acoustic bass", 33: "finger bass", 38: "synth bass", 42: "cello", 43: "contrabass",
                    71: "clarinet", 70: "bassoon", 57: "trombone", 58: "tuba", 0: "piano", 19: "church organ",
                    24: "nylon guitar"}
CHORDS = {"minor third": (0, 3), "major third": (0, 4), "fourth": (0, 5), "fifth": (0, 7), "major triad": (0, 4, 7),
          "minor triad": (0, 3, 7), "octave": (0, 12)}


def refusals(soundfont: str) -> None:
    from audiogan.timbre.analysis import POLYPHONY_THRESHOLD, Analysis, clear_pitch_share
    from audiogan.timbre.expression import frame_rms
    from audiogan.timbre.notes_data import NoteRenderer, RenderSpec

    def measured(wave: np.ndarray) -> tuple[float, float, float]:
        """(mean probability over the loud frames, the same judged against CLEAN_VOICING, median MIDI)."""
        wave = (0.5 * wave / np.abs(wave).max()).astype(np.float32)
        analysis = Analysis(wave, RATE)
        while not analysis.step():
            pass
        f0, voiced, probability = analysis.tracker.result()
        active = frame_rms(wave)[: len(f0)]
        active = active > active.max() * 10 ** (-35 / 20)
        midi = 69 + 12 * np.log2(np.nan_to_num(f0[active & voiced], nan=440.0) / 440)
        return (float(probability[active].mean()), clear_pitch_share(wave, RATE, f0, voiced, probability, active),
                float(np.median(midi)) if len(midi) else float("nan"))

    renderer = NoteRenderer(RenderSpec(soundfont, RATE))
    try:
        singles = {(name, pitch): measured(renderer.note(program, pitch, 100)[: 2 * RATE])
                   for program, name in VOICING_PROGRAMS.items() for pitch in range(24, 62, 2)
                   if np.abs(renderer.note(program, pitch, 100)).max() > 1e-3}
        chords = {(name, program, root): measured(sum(renderer.note(program, root + i, 100)[: 2 * RATE] for i in iv))
                  for name, iv in CHORDS.items() for program in (0, 48, 24) for root in range(28, 66, 4)}
    finally:
        renderer.close()
    print("| MIDI | periods in pYIN's frame | median probability, single notes | lowest (instrument) |")
    print("|---|---|---|---|")
    for pitch in range(24, 62, 2):
        row = {name: v[0] for (name, p), v in singles.items() if p == pitch and name != "piano"}
        low = min(row, key=row.get)
        print(f"| {pitch} | {2048 * 440 * 2 ** ((pitch - 69) / 12) / RATE:.1f} | {np.median(list(row.values())):.2f} | "
              f"{row[low]:.2f} ({low}) |")
    print(f"\nrefused as polyphonic (threshold {POLYPHONY_THRESHOLD}):\n")
    print("| input | count | mean probability (before) | against the clean curve (now) |")
    print("|---|---|---|---|")
    groups = {"single notes, 11 instruments": [v for k, v in singles.items() if k[0] != "piano"],
              "single notes, piano": [v for k, v in singles.items() if k[0] == "piano"],
              "dyads and triads": [v for k, v in chords.items() if k[0] != "octave"],
              "octaves": [v for k, v in chords.items() if k[0] == "octave"]}
    for name, values in groups.items():
        before = sum(v[0] < POLYPHONY_THRESHOLD for v in values)
        now = sum(v[1] < POLYPHONY_THRESHOLD for v in values)
        print(f"| {name} | {len(values)} | {before} | {now} |")
    passed = sorted((k, v) for k, v in chords.items() if k[0] != "octave" and v[1] >= POLYPHONY_THRESHOLD)
    print("\nchords let through now (instrument program, root; probability, judged, tracked MIDI): "
          + "; ".join(f"{k[0]} {k[1]}/{k[2]} {v[0]:.2f} {v[1]:.2f} {v[2]:.0f}" for k, v in passed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speech", type=Path, default=SHARED_SPEECH, help="a folder of speech clips (recursive)")
    parser.add_argument("--clips", type=int, default=25, help="how many speech clips, picked at random (seeded)")
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2")
    parser.add_argument("--abandoned", type=float, metavar="S",
                        help="instead: the next conversion's time after an S-second one abandoned (a server)")
    parser.add_argument("--voicing", action="store_true",
                        help="instead: which single notes and chords are refused as polyphonic (FluidSynth)")
    args = parser.parse_args()
    if args.voicing:
        return refusals(args.soundfont)
    if args.abandoned:
        return abandoned(args.abandoned)
    warnings.filterwarnings("ignore")
    inputs = [("random melody, 60 s", random_melody()), ("synthetic performance", synthetic())]
    if Path(args.soundfont).is_file():
        inputs.append(("FluidR3 violin performance", fluidsynth_violin(args.soundfont)))
    if args.speech.is_dir():
        inputs += speech_clips(args.speech, args.clips)
    compare(inputs[1][1][:RATE])  # compile both
    print("| input | seconds | frames | voicing differs | f0 differs | librosa.pyin (s) | audiogan (s) |")
    print("|---|---|---|---|---|---|---|")
    totals = np.zeros(6)
    for name, wave in inputs:
        frames, voicing, f0, theirs, ours = compare(wave)
        seconds = len(wave) / RATE
        totals += (seconds, frames, voicing, f0, theirs, ours)
        if not name.startswith("speech") or voicing or f0:
            print(f"| {name} | {seconds:.1f} | {frames} | {voicing} | {f0} | {theirs:.2f} | {ours:.2f} |")
    seconds, frames, voicing, f0, theirs, ours = totals
    print(f"| **all {len(inputs)} inputs** | {seconds:.1f} | {int(frames)} | {int(voicing)} | {int(f0)} | "
          f"{theirs:.2f} | {ours:.2f} |")
    print(f"\nper minute of audio: librosa.pyin {60 * theirs / seconds:.2f} s, audiogan {60 * ours / seconds:.2f} s "
          f"({theirs / ours:.1f}x); speech clips with no difference are left out of the rows, not the totals")


if __name__ == "__main__":
    main()
