"""How far a voice follows its controls: asked speed, pitch shift and volume against what comes out.

Each control is given as SSML ``<prosody>`` around whole sentences (the same code path as ``tts(text,
speed=, pitch_shift=)``). Measured on the benchmark's own sentences (benchmarks/data/tts_sentences.txt):

- duration: length of the audio against the neutral reading (the pauses between sentences excluded);
- pitch: median f0 of voiced frames (pYIN, an independent tracker), in semitones from the neutral reading;
- level: RMS in dB from the neutral reading.

    python -m benchmarks.tts_prosody --voice default --sentences 10
"""

from __future__ import annotations

import argparse

import numpy as np

from audiogan import TTS
from benchmarks.tts_intelligibility import SENTENCES

PITCHES = ("-6st", "-4st", "-2st", "+2st", "+4st", "+6st")
RATES = ("50%", "80%", "125%", "200%")
VOLUMES = ("-12dB", "-6dB", "+6dB")


def median_f0(wave: np.ndarray, rate: int) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(wave, fmin=50, fmax=400, sr=rate, frame_length=1024)
    return float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan")


def decibels(wave: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(wave.astype(np.float64) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", default="default")
    parser.add_argument("--sentences", type=int, default=10, help="how many of the benchmark's sentences")
    args = parser.parse_args()
    tts = TTS.load(args.voice, device="cpu")
    texts = [t.strip() for t in SENTENCES.read_text().splitlines() if t.strip()][: args.sentences]
    rate = tts.sample_rate

    def say(attribute: str) -> list[np.ndarray]:
        return [tts(f'<speak><prosody {attribute}>{t}</prosody></speak>' if attribute else t)[0] for t in texts]

    neutral = say("")
    f0 = [median_f0(w, rate) for w in neutral]
    print(f"{tts.name}, {len(texts)} sentences, neutral median f0 {np.nanmean(f0):.1f} Hz\n")
    print("| asked | measured | per sentence (min .. max) |\n|---|---|---|")
    for pitch in PITCHES:
        waves = say(f'pitch="{pitch}"')
        shifts = [12 * np.log2(median_f0(w, rate) / base) for w, base in zip(waves, f0, strict=True)]
        print(f"| pitch {pitch} | {np.nanmean(shifts):+.2f} st | "
              f"{np.nanmin(shifts):+.2f} .. {np.nanmax(shifts):+.2f} |")
    for speed in RATES:
        ratios = [len(w) / len(n) for w, n in zip(say(f'rate="{speed}"'), neutral, strict=True)]
        print(f"| rate {speed} | duration ×{np.mean(ratios):.3f} (asked ×{100 / float(speed[:-1]):.3f}) | "
              f"{min(ratios):.3f} .. {max(ratios):.3f} |")
    for volume in VOLUMES:
        gains = [decibels(w) - decibels(n) for w, n in zip(say(f'volume="{volume}"'), neutral, strict=True)]
        print(f"| volume {volume} | {np.mean(gains):+.2f} dB | {min(gains):+.2f} .. {max(gains):+.2f} |")


if __name__ == "__main__":
    main()
