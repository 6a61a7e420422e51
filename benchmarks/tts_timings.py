"""How exact are the word timings? Against an independent forced aligner.

Each of the benchmark's sentences (benchmarks/data/tts_sentences.txt) is synthesized with its timings,
then pocketsphinx (its en-us acoustic model, never trained by us) aligns the sentence's words to that
audio. Reported: the absolute difference between our and the aligner's word starts and ends, and the
same for a naive estimate that spreads the words over the sentence by their letter counts (what a caption
tool without durations would do).

    python -m benchmarks.tts_timings --voice default
"""

from __future__ import annotations

import argparse
import itertools
import re

import numpy as np

from audiogan import TTS
from benchmarks.tts_intelligibility import SENTENCES, words


def align(decoder, text_words: list[str], audio: np.ndarray) -> list[tuple[float, float]] | None:
    """pocketsphinx forced alignment: (start, end) seconds per word, or None if it found another count."""
    decoder.set_align_text(" ".join(text_words))
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    spans = [(s.start_frame / 100, (s.end_frame + 1) / 100) for s in decoder.seg()
             if not s.word.startswith(("<", "[")) and re.sub(r"\(\d+\)$", "", s.word) != "sil"]
    return spans if len(spans) == len(text_words) else None


def naive(text_words: list[str], start: float, end: float) -> list[tuple[float, float]]:
    """Words spread over [start, end] in proportion to their letters."""
    edges = np.concatenate([[0], np.cumsum([len(w) for w in text_words])]) / sum(len(w) for w in text_words)
    times = start + edges * (end - start)
    return [(float(a), float(b)) for a, b in itertools.pairwise(times)]


def main() -> None:
    from pocketsphinx import Decoder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", default="default")
    args = parser.parse_args()
    tts = TTS.load(args.voice, device="cpu")
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    errors: dict[str, list[float]] = {"ours start": [], "ours end": [], "naive start": [], "naive end": []}
    skipped = 0
    sentences = [t.strip() for t in SENTENCES.read_text().splitlines() if t.strip()]
    for text in sentences:
        speech = tts.synthesize(text)
        # Our spans, one per written word (a run-together pair shares its span).
        ours = [(w.start, w.end) for w in speech.timings.words for _ in words(w.text)]
        said = [x for w in speech.timings.words for x in words(w.text)]
        reference = align(decoder, said, speech.wave)
        if reference is None or len(ours) != len(said):
            skipped += 1
            continue
        guess = naive(said, speech.timings.words[0].start, speech.timings.words[-1].end)
        for name, spans in (("ours", ours), ("naive", guess)):
            errors[f"{name} start"] += [abs(a - r) for (a, _), (r, _) in zip(spans, reference, strict=True)]
            errors[f"{name} end"] += [abs(b - r) for (_, b), (_, r) in zip(spans, reference, strict=True)]
    n = len(errors["ours start"])
    print(f"{tts.name}: {len(sentences) - skipped} of {len(sentences)} sentences aligned, {n} words "
          f"(pocketsphinx forced alignment, 10 ms frames)\n")
    print("| boundary | median error | mean | 90th percentile | within 50 ms | within 100 ms |")
    print("|---|---|---|---|---|---|")
    for name, values in errors.items():
        v = np.array(values) * 1000
        print(f"| {name} | {np.median(v):.0f} ms | {v.mean():.0f} ms | {np.percentile(v, 90):.0f} ms | "
              f"{(v <= 50).mean():.0%} | {(v <= 100).mean():.0%} |")


if __name__ == "__main__":
    main()
