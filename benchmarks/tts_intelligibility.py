"""TTS intelligibility, judged by an ASR we did not train (pocketsphinx's bundled en-us model).

    python -m benchmarks.tts_intelligibility --voice runs/tts/tts-lj-16k.safetensors
    python -m benchmarks.tts_intelligibility            # human recordings only (no voice given)
    python -m benchmarks.tts_intelligibility --voice default --phase-iterations 8   # the vocoder's refinement
    python -m benchmarks.tts_intelligibility --voice default --against runs/old-vocoder.safetensors
    python -m benchmarks.tts_intelligibility --voice default --phase rtpghi --against default   # phase source

Word error rate on the 50 sentences of benchmarks/data/tts_sentences.txt (written for this benchmark, so
never in any training set) and on the held-out LJ-prompts sentences, synthesized and, for comparison,
the held-out human recordings of the same speaker, and those recordings copy-synthesized by the vocoder
(which splits the gap to the human row into the vocoder's part and the acoustic model's). Two judges:
one whose language model is built from exactly the evaluated sentences (pocketsphinx.lm.ArpaBoLM), which
asks "which of these sentences was said, word by word" and forgives much, and one with pocketsphinx's
general en-us language model, which hears words with no hint (a weak recogniser: it misses 4 words in 10
of clean human speech). Where speechmos is installed, DNSMOS also scores every row as listeners would
(P.835 overall, signal, background; P.808), with no reference. Also: real-time factor and time to first
audio of ``stream`` on 2 CPU threads. ``--against VOCODER`` also renders the same mels through a second
vocoder and prints, per row, the change in word error rate with a 95 % interval from resampling the
sentences: whether a vocoder's effect on the judge exceeds the luck of which sentences were drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from audiogan import metrics, weights
from audiogan.audio.io import load_audio
from audiogan.config import load_yaml
from audiogan.train.tts_data import held_out as held_out_ids
from audiogan.train.tts_data import read_metadata
from audiogan.train.tts_trainer import TTSTrainingConfig
from audiogan.vocoder.phases import INFERENCE_PHASES

if TYPE_CHECKING:
    from audiogan.tts import TTS

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "benchmarks" / "data" / "tts_sentences.txt"
LJ_PROMPTS = ROOT.parent / "shared" / "data" / "speech" / "dctts_lj_prompts"
RECIPE = ROOT / "configs" / "tts" / "lj_prompts_small.yaml"


def words(text: str) -> list[str]:
    from audiogan.tts.normalize import normalize

    return re.sub(r"[^a-z' ]", " ", normalize(text).lower()).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


class Judge:
    """pocketsphinx en-us; with ``texts``, a language model of exactly those sentences, else the general one."""

    def __init__(self, texts: list[str] | None = None) -> None:
        from pocketsphinx import Decoder
        from pocketsphinx.lm import ArpaBoLM

        if not texts:
            self.decoder = Decoder(samprate=16000, loglevel="FATAL")
            return
        lm = ArpaBoLM(text="\n".join(" ".join(words(t)) for t in texts), case="lower", add_start=True)
        lm.compute()
        with tempfile.NamedTemporaryFile("w", suffix=".arpa", delete=False) as lm_file:
            lm.write(lm_file)
        self.decoder = Decoder(samprate=16000, lm=lm_file.name, loglevel="FATAL")
        Path(lm_file.name).unlink()

    def hear(self, audio: np.ndarray) -> list[str]:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return [w for w in (hyp.hypstr.split() if hyp else []) if not w.startswith("<")]

    def errors(self, pairs: list[tuple[str, np.ndarray]]) -> np.ndarray:
        """Per sentence: [word errors, reference words]."""
        return np.array([[edit_distance(words(text), self.hear(audio)), len(words(text))] for text, audio in pairs])

    def wer(self, pairs: list[tuple[str, np.ndarray]]) -> float:
        counts = self.errors(pairs)
        return float(counts[:, 0].sum() / max(counts[:, 1].sum(), 1))


def paired_wer_change(before: np.ndarray, after: np.ndarray, draws: int = 4000) -> tuple[float, float, float]:
    """WER(after) - WER(before) on the same sentences ([errors, words] rows), with a 95 % interval from
    resampling the sentences (paired: each draw takes the same sentences from both)."""
    words_ = before[:, 1]
    change = float((after[:, 0].sum() - before[:, 0].sum()) / words_.sum())
    picks = np.random.default_rng(0).integers(0, len(words_), size=(draws, len(words_)))
    drawn = (after[picks, 0].sum(1) - before[picks, 0].sum(1)) / words_[picks].sum(1)
    low, high = np.percentile(drawn, [2.5, 97.5])
    return change, float(low), float(high)


def plot_pair(path: str, human: tuple[str, np.ndarray], synthesized: np.ndarray, tts: TTS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel_of = tts.vocoder.mel
    mels = [mel_of(torch.from_numpy(human[1])).numpy(), mel_of(torch.from_numpy(synthesized)).numpy()]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True, sharey=True)
    for ax, mel, name in zip(axes, mels, ("human recording", "synthesized"), strict=True):
        ax.imshow(mel, origin="lower", aspect="auto", vmin=-11.5, vmax=2, cmap="magma")
        ax.set_ylabel(f"{name}\nmel bin")
    axes[-1].set_xlabel("frame (16 ms)")
    fig.suptitle(f'held-out prompt: "{human[0][:90]}"', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", help="TTS weights (.safetensors); without it only the human baseline runs")
    parser.add_argument("--vocoder", default="default", help="vocoder (bundled name or .safetensors path)")
    parser.add_argument("--against", metavar="VOCODER",
                        help="also through this vocoder: each row's WER change from it, with a 95 %% interval")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed", type=float, default=1.0, help="tts(..., speed=): > 1 speaks faster")
    parser.add_argument("--phase-iterations", type=int, default=None, metavar="N",
                        help="the vocoder's fast Griffin-Lim refinement (default: its card's)")
    parser.add_argument("--phase", choices=INFERENCE_PHASES,
                        help="where the vocoder's phase comes from (default: its card's; --against keeps its own)")
    parser.add_argument("--image", help="write a PNG: human and synthesized mel of the first held-out prompt")
    parser.add_argument("--write-card", action="store_true",
                        help="store the figures as the 'intelligibility' block of the voice's JSON card")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    own = [line.strip() for line in SENTENCES.read_text().splitlines() if line.strip()]
    held_out: list[tuple[str, np.ndarray]] = []
    if LJ_PROMPTS.is_dir():
        cfg = load_yaml(TTSTrainingConfig, RECIPE)
        rows = {uid: (text, path) for uid, text, path in read_metadata(LJ_PROMPTS)}
        held_out = [(rows[uid][0], load_audio(rows[uid][1], 16000)[0].numpy())
                    for uid in sorted(held_out_ids(list(rows), cfg.data))]
    judges = (Judge(own + [t for t, _ in held_out]), Judge())
    print(f"judges: pocketsphinx en-us with an LM of the {len(own) + len(held_out)} evaluated sentences, "
          "and with its general en-us LM")
    mos = metrics.dnsmos(np.zeros(16000, np.float32)) is not None
    print("| audio | sentences | WER, LM of the sentences | WER, general LM |"
          + (" DNSMOS overall | signal | background | P.808 |" if mos else ""))
    print("|---|---|---|---|" + ("---|---|---|---|" if mos else ""))

    figures: dict[str, dict[str, float]] = {}

    def row(name: str, pairs: list[tuple[str, np.ndarray]], key: str) -> None:
        found = {"wer_sentence_lm": judges[0].wer(pairs), "wer_general_lm": judges[1].wer(pairs)}
        if mos:  # listeners' scores as DNSMOS predicts them, a mean over the sentences
            scores = [metrics.dnsmos(audio) for _, audio in pairs]
            found.update({f"dnsmos_{k}": float(np.mean([s[k] for s in scores])) for k in metrics.DNSMOS_KEYS})
        figures[f"{key}_{len(pairs)}"] = {k: round(v, 3) for k, v in found.items()}
        print(f"| {name} | {len(pairs)} | " + " | ".join(f"{v:.3f}" if k.startswith("wer") else f"{v:.2f}"
                                                        for k, v in found.items()) + " |")

    if held_out:
        row("human recordings, held-out LJ prompts", held_out, "human_heldout_lj_prompts")
    if not args.voice:
        print("(no --voice: synthesized rows skipped)")
        return
    from audiogan import Vocoder
    from audiogan.tts import TTS

    vocoder = Vocoder.load(args.vocoder, device="cpu", phase_iterations=args.phase_iterations, phase=args.phase)
    tts = TTS.load(args.voice, vocoder=vocoder, device="cpu")
    if held_out:
        # The vocoder alone on the recordings' own mels: how much of the gap to the human row is the vocoder's.
        row(f"human recordings, copy-synthesized by {tts.vocoder.card.get('name', args.vocoder)}",
            [(t, tts.vocoder.copy_synthesize(a).numpy()) for t, a in held_out], "copy_synthesized_heldout_lj_prompts")
    start = time.perf_counter()
    synth_own = [(t, tts(t, speed=args.speed)[0]) for t in own]
    elapsed = time.perf_counter() - start
    seconds = sum(len(a) for _, a in synth_own) / tts.sample_rate
    row(f"{tts.name}, own sentences", synth_own, "own_sentences")
    if held_out:
        synth_held = [(t, tts(t, speed=args.speed)[0]) for t, _ in held_out]
        row(f"{tts.name}, held-out LJ prompts", synth_held, "heldout_lj_prompts")
        if args.image:
            plot_pair(args.image, held_out[0], synth_held[0][1], tts)
    if args.against:
        compare(args.against, tts, judges, {"human recordings, copy-synthesized": held_out,
                                            "own sentences": [(t, None) for t in own],
                                            "held-out LJ prompts": [(t, None) for t, _ in held_out]}, args)
    twenty = "The quick brown fox jumps over the lazy dog while the farmer sells fresh bread at the busy market today."
    firsts = []
    for _ in range(5):
        t0 = time.perf_counter()
        next(iter(tts.stream(twenty)))
        firsts.append(time.perf_counter() - t0)
    print(f"\nreal-time factor on {args.threads} threads: {elapsed / seconds:.3f} "
          f"({seconds:.1f} s of speech in {elapsed:.1f} s)")
    print(f"time to first audio, stream() of a {len(twenty.split())}-word sentence: "
          f"median {1000 * float(np.median(firsts)):.0f} ms over 5 runs")
    if args.write_card:
        path = weights.resolve(args.voice, "tts").with_suffix(".json")
        card = json.loads(path.read_text())
        card["intelligibility"] = {
            "judge": "pocketsphinx en-us acoustic model; LM of the evaluated sentences / general en-us LM"
                     + ("; DNSMOS P.835 and P.808 (speechmos)" if mos else ""),
            "vocoder": tts.vocoder.card.get("name", args.vocoder), **figures,
            "real_time_factor": round(elapsed / seconds, 4), "threads": args.threads,
            "time_to_first_audio_ms_20_words": round(1000 * float(np.median(firsts))),
            "command": " ".join(["python -m benchmarks.tts_intelligibility", *sys.argv[1:]]),
            "date": date.today().isoformat(), "machine": f"{os.cpu_count()}-core CPU, torch {torch.__version__}"}
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote the figures into {path}")


def compare(against: str, tts: TTS, judges: tuple[Judge, Judge], sets: dict[str, list], args) -> None:
    """Each set through ``tts``'s vocoder and through ``against`` (the same mels: the acoustic model is
    deterministic): the change in WER, per judge, with its paired 95 % interval."""
    from audiogan import Vocoder

    other = Vocoder.load(against, device="cpu", phase_iterations=args.phase_iterations)
    names = (tts.vocoder.card.get("name", args.vocoder), Path(against).stem)
    print(f"\nWER through {names[0]} minus through {names[1]}, same mels (95 % interval over sentences)\n")
    print("| audio | sentences | judge | WER, " + " | WER, ".join(names) + " | change [95 % interval] |")
    print("|---|---|---|---|---|---|")
    for label, pairs in sets.items():
        if not pairs:
            continue
        with torch.inference_mode():
            if pairs[0][1] is not None:  # recordings: each vocoder on their own mel
                mels = [tts.vocoder.mel(a) for _, a in pairs]
            else:  # a text's sentences back to back, without the pauses tts() puts between them
                mels = [torch.cat([m for m, _ in tts.acoustic(tts.lines(t), speed=args.speed)], dim=-1)
                        for t, _ in pairs]
            ours = [(t, tts.vocoder(m).numpy()) for (t, _), m in zip(pairs, mels, strict=True)]
            theirs = [(t, other(m).numpy()) for (t, _), m in zip(pairs, mels, strict=True)]
        for judge, name in zip(judges, ("sentence LM", "general LM"), strict=True):
            a, b = judge.errors(theirs), judge.errors(ours)
            change, low, high = paired_wer_change(a, b)
            print(f"| {label} | {len(pairs)} | {name} | {b[:, 0].sum() / b[:, 1].sum():.3f} | "
                  f"{a[:, 0].sum() / a[:, 1].sum():.3f} | {change:+.3f} [{low:+.3f}, {high:+.3f}] |")


if __name__ == "__main__":
    main()
