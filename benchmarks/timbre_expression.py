"""Pitch expression in timbre conversion and MIDI rendering: does the output follow the performance's pitch
as it moves (vibrato, bends, glides, intonation), or only its semitones?

    python -m benchmarks.timbre_expression                  # bundled note model, target flute
    python -m benchmarks.timbre_expression --to violin --model runs/timbre/timbre-gm-16k.safetensors

Inputs, at 16 kHz:
- synthetic: a harmonic melody tuned to A = 432 Hz (-32 cents) with a 5.5 Hz, +-35 cent vibrato and a
  one-semitone glide up at the end of its last note;
- fluidsynth violin: FluidR3's violin playing a melody, with vibrato and a bend sent as pitch-bend messages;
- MIDI: a MIDI file with pitch bends (RPN range 12 semitones) and the modulation wheel, rendered by
  ``render_midi``; its target contour is exact, from the file.

Judge: pYIN (librosa, 10 cents a bin) on input and output, frames voiced in both and at least 60 ms from a
note's onset or offset (for MIDI, the output against the file's exact contour). Columns: mean |f0 error|
in cents; the correlation of the two contours after removing each note's mean (the vibrato and bends;
1 = followed exactly); the standard deviation of the output's within-note movement relative to the
input's (1 = as deep); the correlation of the vibrato alone (the movement less its 0.24 s running mean).
Each row is run with the contours (``convert``) and without (``flat=True``; for
MIDI, the file without its bends), the behaviour before contours were kept.

``--legato``: glides and slurs. Inputs: a steady harmonic tone gliding up 7 semitones in 0.5 s and down 5 in
0.3 s between held notes, and one slurring C4-E4-G4-C5 with no break. Each is converted with its legato
notes crossfaded (as ``convert`` does) and re-attacked (the same notes with ``legato`` cleared, as before
legato was kept). Columns: notes found (legato ones); dips, the places where the output's frame level
falls over 4 dB below its maximum of the 0.2 s around while the input's level is steady, and the deepest;
the mean |f0 error| in cents (pYIN, as above) over the frames voiced in both.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

RATE = 16000
HOP = 256
MELODY = [(62, 0.0, 0.9), (66, 1.0, 1.9), (69, 2.0, 2.9), (74, 3.0, 4.4)]  # pitch, onset, offset (seconds)
VIBRATO_HZ, VIBRATO_CENTS = 5.5, 35.0


SHAPES = ("crescendo", "tremolo", "diminuendo", "swell")  # the dynamics of MELODY's four notes


def shape_db(shape: str, t: np.ndarray, length: float) -> np.ndarray:
    """A note's level in dB over its time ``t`` (seconds): 18 dB ramps, a 4 Hz +-5 dB tremolo, a 12 dB swell."""
    x = t / length
    return {"crescendo": -18 + 18 * x, "tremolo": 5 * np.sin(2 * np.pi * 4 * t) - 5,
            "diminuendo": -18 * x, "swell": -12 + 12 * np.sin(np.pi * x)}[shape]


def f0_cents(wave: np.ndarray) -> np.ndarray:
    """pYIN f0 in cents relative to MIDI 0, NaN where unvoiced."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f0, voiced, _ = librosa.pyin(wave, fmin=60, fmax=2000, sr=RATE, frame_length=1024, hop_length=HOP)
    return np.where(voiced, 100 * librosa.hz_to_midi(np.nan_to_num(f0, nan=1.0)), np.nan)


def synthetic() -> np.ndarray:
    wave = np.zeros(int(4.8 * RATE))
    for i, (pitch, start, end) in enumerate(MELODY):
        t = np.arange(int((end - start) * RATE)) / RATE
        cents = -32 + VIBRATO_CENTS * np.sin(2 * np.pi * VIBRATO_HZ * t)
        if i == len(MELODY) - 1:
            cents += 100 * np.clip((t - 0.8) / 0.3, 0, 1)  # glide up a semitone
        freq = 440 * 2 ** ((pitch - 69 + cents / 100) / 12)
        phase = 2 * np.pi * np.cumsum(freq) / RATE
        tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * np.minimum(1, t / 0.02) * np.exp(-0.8 * t)
        wave[int(start * RATE):int(start * RATE) + len(t)] += 0.25 * tone
    return wave.astype(np.float32)


def synthetic_dynamics() -> np.ndarray:
    """Steady harmonic tones at MELODY's pitches, each with one of SHAPES as its loudness."""
    wave = np.zeros(int(4.8 * RATE))
    for (pitch, start, end), shape in zip(MELODY, SHAPES, strict=True):
        t = np.arange(int((end - start) * RATE)) / RATE
        f = 440 * 2 ** ((pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6)) * np.minimum(1, t / 0.02)
        wave[int(start * RATE):int(start * RATE) + len(t)] += 0.25 * tone * 10 ** (shape_db(shape, t, end - start) / 20)
    return wave.astype(np.float32)


def fluidsynth_violin(soundfont: str, dynamics: bool = False) -> np.ndarray:
    from audiogan.timbre.notes_data import NoteRenderer, RenderSpec, _write_float

    renderer = NoteRenderer(RenderSpec(soundfont, RATE))
    synth, block = renderer.synth, 160  # pitch-bend messages at 100 Hz
    synth.program_select(0, renderer.sfid, 0, 40)
    pieces = []
    try:
        for i, (pitch, start, end) in enumerate(MELODY):
            synth.noteon(0, pitch, 100)
            for b in range(int((end - start) * RATE / block)):
                t = b * block / RATE
                cents = VIBRATO_CENTS * np.sin(2 * np.pi * VIBRATO_HZ * t) * min(1.0, t / 0.3)
                if i == len(MELODY) - 1:
                    cents += 100 * np.clip((t - 0.8) / 0.3, 0, 1)
                if dynamics:  # expression (CC 11) follows the note's shape instead of the vibrato
                    # The judge measures the input's loudness from its audio, so CC 11's curve need not be exact.
                    level = 10 ** (shape_db(SHAPES[i], np.array([t]), end - start)[0] / 40)
                    synth.cc(0, 11, int(np.clip(127 * level, 1, 127)))
                    cents = 0.0
                synth.pitch_bend(0, round(cents / 100 * 4096))  # default range: 2 semitones = 8192
                pieces.append(_write_float(synth, block))
            synth.noteoff(0, pitch)
            synth.pitch_bend(0, 0)
            pieces.append(_write_float(synth, int(0.1 * RATE)))
    finally:
        renderer.close()
    wave = np.concatenate(pieces)
    return (0.9 * wave / np.abs(wave).max()).astype(np.float32)


def midi_file(path: str, bends: bool) -> np.ndarray:
    """Write the test MIDI file; return its exact target contour (cents from MIDI 0 per frame, NaN off)."""
    import pretty_midi

    from audiogan.timbre.midi import VIBRATO_CENTS as WHEEL_CENTS
    from audiogan.timbre.midi import VIBRATO_HZ as WHEEL_HZ

    midi = pretty_midi.PrettyMIDI()
    track = pretty_midi.Instrument(program=73)
    track.notes = [pretty_midi.Note(velocity=100, pitch=p, start=a, end=b) for p, a, b in MELODY]
    frames = int(4.9 * RATE / HOP)
    target = np.full(frames, np.nan)
    times = np.arange(frames) * HOP / RATE
    bend = np.zeros(frames)
    if bends:
        track.control_changes = [pretty_midi.ControlChange(101, 0, 0.0), pretty_midi.ControlChange(100, 0, 0.0),
                                 pretty_midi.ControlChange(6, 12, 0.0)]  # bend range: 12 semitones
        for t in np.arange(0, 1.0, 0.01):  # the second note bends down 3 semitones and back
            value = -300 * np.sin(np.pi * t)
            track.pitch_bends.append(pretty_midi.PitchBend(round(value / 1200 * 8192), 1.0 + t))
            bend[(times >= 1.0 + t) & (times < 1.01 + t)] = value
        track.pitch_bends.append(pretty_midi.PitchBend(0, 1.995))
        track.control_changes += [pretty_midi.ControlChange(1, 127, 3.0), pretty_midi.ControlChange(1, 0, 4.4)]
    for pitch, start, end in MELODY:
        on = (times >= start) & (times < end)
        target[on] = 100 * pitch + bend[on]
        if bends and start == 3.0:
            target[on] += WHEEL_CENTS * np.sin(2 * np.pi * WHEEL_HZ * (times[on] - start))
    midi.instruments.append(track)
    midi.write(path)
    return target


def running_mean(x: np.ndarray, frames: int = 15) -> np.ndarray:
    return np.convolve(np.pad(x, frames // 2, mode="edge"), np.ones(frames) / frames, mode="valid")


def score(reference: np.ndarray, output: np.ndarray) -> tuple[float, float, float, float]:
    """(mean |error| cents, correlation of the within-note movement, output / input movement depth,
    correlation of the vibrato: the movement less its 0.24 s running mean)."""
    n = min(len(reference), len(output))
    reference, output = reference[:n], output[:n]
    times = np.arange(n) * HOP / RATE
    keep = np.isfinite(reference) & np.isfinite(output)
    keep &= np.any([(times >= a + 0.06) & (times <= b - 0.06) for _, a, b in MELODY], axis=0)
    ref_moves, out_moves, ref_vib, out_vib = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for _, a, b in MELODY:
        note = keep & (times >= a) & (times <= b)
        if note.sum() > 3:
            ref_moves[note] = reference[note] - reference[note].mean()
            out_moves[note] = output[note] - output[note].mean()
            ref_vib[note] = ref_moves[note] - running_mean(ref_moves[note])
            out_vib[note] = out_moves[note] - running_mean(out_moves[note])
    error = float(np.mean(np.abs(reference[keep] - output[keep])))
    corr = correlation(ref_moves[keep], out_moves[keep])
    depth = float(out_moves[keep].std() / max(ref_moves[keep].std(), 1e-9))
    return error, corr, depth, correlation(ref_vib[keep], out_vib[keep])


def level_score(reference: np.ndarray, output: np.ndarray) -> tuple[float, float, float]:
    """Loudness within notes: (mean |dB error| after removing each note's mean, correlation, output range
    over input range as standard deviations), on frames within 30 dB of the input's peak."""
    from audiogan.timbre.expression import frame_rms

    ref, out = (20 * np.log10(np.maximum(frame_rms(w), 1e-6)) for w in (reference, output))
    n = min(len(ref), len(out))
    ref, out = ref[:n], out[:n]
    times = np.arange(n) * HOP / RATE
    ref_moves, out_moves, keep = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    for _, a, b in MELODY:
        note = (times >= a + 0.06) & (times <= b - 0.06) & (ref > ref.max() - 30)
        if note.sum() > 3:
            ref_moves[note], out_moves[note] = ref[note] - ref[note].mean(), out[note] - out[note].mean()
            keep |= note
    error = float(np.mean(np.abs(ref_moves[keep] - out_moves[keep])))
    return error, correlation(ref_moves[keep], out_moves[keep]), float(out_moves[keep].std() / ref_moves[keep].std())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def glide_tone(segments: list[tuple[float, float, float]]) -> np.ndarray:
    """A steady harmonic tone along ``segments`` of (seconds, MIDI from, MIDI to), one after the other."""
    midi = np.concatenate([np.linspace(a, b, int(seconds * RATE)) for seconds, a, b in segments])
    phase = 2 * np.pi * np.cumsum(440 * 2 ** ((midi - 69) / 12)) / RATE
    t = np.arange(len(midi)) / RATE
    envelope = np.minimum(1, t / 0.02) * np.minimum(1, (t[-1] - t) / 0.05)
    return (0.25 * envelope * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def level_dips(output: np.ndarray, length: int) -> list[float]:
    """Depths (dB) of the places where ``output``'s frame level falls over 4 dB below the maximum of the
    0.2 s around it, 0.1 s clear of the input's start and 0.15 s of its end (``length`` samples)."""
    from scipy.ndimage import maximum_filter1d

    from audiogan.timbre.expression import frame_rms

    level = 20 * np.log10(np.maximum(frame_rms(output), 1e-6))
    below = maximum_filter1d(level, 13) - level
    times = np.arange(len(level)) * HOP / RATE
    dipped = np.flatnonzero((times > 0.1) & (times < length / RATE - 0.15) & (below > 4))
    runs = np.split(dipped, np.flatnonzero(np.diff(dipped) > 1) + 1) if len(dipped) else []
    return [float(below[run].max()) for run in runs]


def legato(model_name: str, instruments: list[str]) -> None:
    from dataclasses import replace

    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import Conversion

    model = TimbreModel.load(model_name, device="cpu")
    inputs = {"glide": glide_tone([(0.6, 60, 60), (0.5, 60, 67), (0.6, 67, 67), (0.3, 67, 62), (0.5, 62, 62)]),
              "slur": glide_tone([(0.5, 60, 60), (0.5, 64, 64), (0.5, 67, 67), (0.5, 72, 72)])}
    print(f"model {model.card.get('name')}\n")
    print("| input | played by | notes (legato) | entries | dips > 4 dB | deepest (dB) | f0 error (cents) |")
    print("|---|---|---|---|---|---|---|")
    for name, wave in inputs.items():
        reference = f0_cents(wave)
        for instrument in instruments:
            for tied in (False, True):
                conversion = Conversion.plan(model, wave, RATE, model.timbre(instrument))
                if not tied:
                    conversion.events = [replace(e, legato=False) for e in conversion.events]
                mix = conversion.mixdown(model.sample_rate)
                for start, end in conversion.passes(model):
                    conversion.play(model, 0, start, end, mix)
                out = conversion.level(mix)
                dips = level_dips(out, len(wave))
                output = f0_cents(out)[: len(reference)]
                keep = np.isfinite(reference[: len(output)]) & np.isfinite(output)
                error = float(np.mean(np.abs(reference[: len(output)][keep] - output[keep])))
                print(f"| {name} | {instrument} | {len(conversion.events)} "
                      f"({sum(e.legato for e in conversion.events)}) | {'crossfaded' if tied else 're-attacked'} | "
                      f"{len(dips)} | {max(dips, default=0.0):.1f} | {error:.0f} |")


def time_conversion(model_name: str, to: str, soundfont: str, repeats: int) -> None:
    import time

    import torch

    from audiogan.timbre import TimbreModel
    from audiogan.timbre.analysis import analyse
    from audiogan.timbre.convert import convert

    torch.set_num_threads(2)
    model = TimbreModel.load(model_name, device="cpu")
    wave = np.tile(fluidsynth_violin(soundfont), repeats)
    seconds = len(wave) / RATE
    print(f"{seconds:.1f} s of the violin performance, {len(analyse(wave, RATE))} notes, played by {to}\n")
    print("| pitch | convert, median of 3 (s) | x real time |")
    print("|---|---|---|")
    for flat in (True, False):
        convert(model, wave, RATE, to, flat=flat)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            convert(model, wave, RATE, to, flat=flat)
            runs.append(time.perf_counter() - start)
        median = float(np.median(runs))
        print(f"| {'semitones only' if flat else 'contour'} | {median:.2f} | {seconds / median:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="timbre model name or .safetensors path")
    parser.add_argument("--to", default="flute", help="the instrument that plays the performances")
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2")
    parser.add_argument("--speed", type=int, metavar="N", default=0,
                        help="instead: time the conversion of the violin performance repeated N times, 3 runs")
    parser.add_argument("--legato", action="store_true",
                        help="instead: glides and slurs, crossfaded or re-attacked (see above)")
    parser.add_argument("--instruments", nargs="+", default=["flute", "violin", "cello", "clarinet",
                                                             "string_ensemble", "acoustic_grand_piano"],
                        help="with --legato: the instruments that play the inputs")
    args = parser.parse_args()
    if args.legato:
        legato(args.model, args.instruments)
        return
    if args.speed:
        time_conversion(args.model, args.to, args.soundfont, args.speed)
        return

    import tempfile
    from pathlib import Path

    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import convert
    from audiogan.timbre.midi import render_midi

    model = TimbreModel.load(args.model, device="cpu")
    rows = []
    for name, wave in (("synthetic", synthetic()), ("fluidsynth violin", fluidsynth_violin(args.soundfont))):
        reference = f0_cents(wave)
        for flat in (True, False):
            out = convert(model, wave, RATE, args.to, flat=flat)
            rows.append((f"convert {name}", "semitones only" if flat else "contour", *score(reference,
                                                                                            f0_cents(out))))
    with tempfile.TemporaryDirectory() as tmp:
        target = midi_file(str(Path(tmp) / "bent.mid"), bends=True)
        midi_file(str(Path(tmp) / "plain.mid"), bends=False)
        for flat in (True, False):
            out = render_midi(model, Path(tmp) / ("plain.mid" if flat else "bent.mid"), args.to)
            rows.append(("render-midi", "bends dropped" if flat else "bends + wheel", *score(target, f0_cents(out))))
    print(f"model {model.card.get('name')}, played by {args.to}\n")
    print("| input | pitch | mean abs error (cents) | movement correlation | movement depth | vibrato correlation |")
    print("|---|---|---|---|---|---|")
    for name, mode, error, corr, depth, vibrato in rows:
        print(f"| {name} | {mode} | {error:.0f} | {corr:.2f} | {depth:.2f} | {vibrato:.2f} |")
    print("\n| input (dynamics) | loudness | mean abs error (dB) | correlation | range |")
    print("|---|---|---|---|---|")
    for name, wave in (("synthetic", synthetic_dynamics()), ("fluidsynth violin, CC 11",
                                                            fluidsynth_violin(args.soundfont, dynamics=True))):
        for flat in (True, False):
            error, corr, spread = level_score(wave, convert(model, wave, RATE, args.to, flat=flat))
            print(f"| {name} | {'as the model plays (flat)' if flat else 'followed'} | {error:.1f} | {corr:.2f} | "
                  f"{spread:.2f} |")


if __name__ == "__main__":
    main()
