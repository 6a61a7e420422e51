"""Eager against ``torch.compile`` (inductor) for the bundled models: speed, warm-up, recompiles, drift.

    python -m benchmarks.compile_speed                                 # all three, CPU, 2 threads
    python -m benchmarks.compile_speed --models notes --mode max-autotune-no-cudagraphs

Each model's network is compiled with ``dynamic=True`` (the vocoder's generator, the acoustic model's
``infer``, the note generator) and the rest of the call is left as it is, so the figures are for what a
caller gets: ``vocoder(mel)`` on 10 s of mel, ``tts.acoustic`` on the server load test's sentence (8 copies
in one pass, and alone), ``notes.generate`` at batch 1 and 8. Warm-up is the first compiled call, with an
empty inductor cache unless --keep-cache. Then inputs of other sizes (stream windows, the 50 sentences of
benchmarks/data/tts_sentences.txt one by one, other batch sizes) count the recompiles they cause.
Steady-state times alternate eager and compiled, round by round, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.common import ROOT
from benchmarks.server_load import SENTENCE


@dataclass
class Case:
    """One model: how to call it, eager and compiled, on the timed inputs and on the varied ones."""

    name: str
    run: Callable[[Any, Any], Any]
    eager: Any
    compiled: Any
    timed: dict[str, Any]  # label -> input
    seconds: Callable[[Any], float]  # input -> seconds of audio a call makes
    varied: list[Any] = field(default_factory=list)


def as_flat(out: Any) -> torch.Tensor:
    if isinstance(out, (list, tuple)):
        return torch.cat([as_flat(x) for x in out])
    return torch.as_tensor(out).flatten().float()


def vocoder_case(compile_: Callable) -> Case:
    from audiogan import Vocoder

    voc = Vocoder.load(device="cpu")
    fast = copy.copy(voc)
    fast.generator = compile_(voc.generator)
    torch.manual_seed(0)
    mel = torch.randn(voc.config.mel.n_mels, 625) - 5  # 10 s, as benchmarks/vocoder_speed.py
    ctx = voc.context_frames
    # The server's stream windows (chunks of 8..64 frames with context both sides), then whole mels.
    lengths = [8 + 2 * ctx, 16 + 2 * ctx, 32 + 2 * ctx, 64 + 2 * ctx, 8 + ctx, 100, 431, 1000, 20]
    varied = [torch.randn(voc.config.mel.n_mels, n) - 5 for n in lengths]
    return Case("vocoder (bundled)", lambda v, m: v(m), voc, fast, {"10 s mel": mel},
                lambda m: m.shape[-1] * voc.hop_length / voc.sample_rate, varied)


def tts_case(compile_: Callable) -> Case:
    from audiogan.tts import TTS

    tts = TTS.load(device="cpu")
    fast = copy.copy(tts)
    fast.model = copy.copy(tts.model)  # same weights; only its infer is swapped
    fast.model.infer = compile_(tts.model.infer)
    line = tts.lines(SENTENCE)
    sentences = (ROOT / "benchmarks" / "data" / "tts_sentences.txt").read_text().splitlines()
    varied = [tts.lines(s) for s in sentences if s.strip()] + [line * 3, line * 5]

    def seconds(lines: list) -> float:
        frames = sum(m.shape[-1] for m in tts.mels(lines))
        return frames * tts.vocoder.hop_length / tts.sample_rate

    return Case("acoustic model (bundled voice)", lambda t, lines: [m for m, _ in t.acoustic(lines)], tts, fast,
                {"8 x 20-word sentence": line * 8, "1 x 20-word sentence": line}, seconds, varied)


def notes_case(compile_: Callable) -> Case:
    from audiogan.timbre import TimbreModel

    model = TimbreModel.load(device="cpu")
    fast = copy.copy(model)
    fast.G = compile_(model.G)
    instrument = model.instruments[0]
    note_seconds = model.cfg.spectral.seconds

    def run(m: Any, batch: int) -> Any:
        return m.generate([60] * batch, [instrument] * batch, seeds=list(range(batch)))

    return Case("note generator (bundled)", run, model, fast, {"batch 1": 1, "batch 8": 8},
                lambda batch: batch * note_seconds, [3, 5, 2, 7])


CASES = {"vocoder": vocoder_case, "tts": tts_case, "notes": notes_case}


def compiles() -> tuple[int, int]:
    """Frames dynamo has compiled so far (first compiles and recompiles), and graph breaks."""
    from torch._dynamo.utils import counters

    return counters["frames"]["ok"], sum(counters["graph_break"].values())


def median_seconds(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def measure(case: Case, rounds: int, repeats: int, clock: Callable[[], float], varied: bool = True,
            ) -> list[dict[str, Any]]:
    first = next(iter(case.timed.values()))
    _, breaks_before = compiles()
    start = time.perf_counter()
    case.run(case.compiled, first)
    warmup = time.perf_counter() - start
    frames_after_first, _ = compiles()
    inputs = [*case.timed.values(), *(case.varied if varied else [])]
    diff = 0.0
    for x in inputs:
        eager, compiled = as_flat(case.run(case.eager, x)), as_flat(case.run(case.compiled, x))
        diff = max(diff, (eager - compiled).abs().max().item() if eager.shape == compiled.shape else float("inf"))
    frames, breaks = compiles()
    breaks -= breaks_before
    rows = []
    for label, x in case.timed.items():
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for r in range(rounds):
            order = ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")
            for which in order:
                model = case.eager if which == "eager" else case.compiled
                times[which].append(median_seconds(lambda m=model, x=x: case.run(m, x), repeats, clock))
        audio = case.seconds(x)
        rows.append({"model": case.name, "input": label, "audio_s": audio, "times": times, "warmup_s": warmup,
                     "recompiles": frames - frames_after_first, "varied": len(inputs) - 1,
                     "graph_breaks": breaks, "max_abs_diff": diff})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternated eager/compiled rounds (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="calls per round, median taken (default: %(default)s)")
    p.add_argument("--mode", default="default", help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    p.add_argument("--keep-cache", action="store_true", help="reuse inductor's on-disk cache (warm-up then "
                   "measures a restart, not a first start; kernels cached at another --threads come back "
                   "with that thread count built in)")
    p.add_argument("--cpu-time", action="store_true", help="time the calling thread's CPU time instead of the "
                   "wall clock: with --threads 1 all the work runs on it, so others' load on a shared machine "
                   "drops out of the figures")
    p.add_argument("--freezing", action="store_true", help="inductor's freezing: weights taken as constants and "
                   "prepacked for oneDNN (its advice for CPU inference)")
    p.add_argument("--no-varied", action="store_true", help="skip the inputs of other sizes (steady state only)")
    args = p.parse_args()
    if not args.keep_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    torch.set_num_threads(args.threads)
    if args.freezing:
        from torch._inductor import config as inductor

        inductor.freezing = True
    mode = None if args.mode == "default" else args.mode

    def compile_(module: Callable) -> Callable:
        return torch.compile(module, dynamic=True, mode=mode)

    clock = time.thread_time if args.cpu_time else time.perf_counter
    rows = []
    for name in args.models:
        torch._dynamo.reset()
        rows += measure(CASES[name](compile_), args.rounds, args.repeats, clock, not args.no_varied)
    clock_name = "thread CPU time" if args.cpu_time else "wall clock"
    print(f"\nCPU, {args.threads} threads, {clock_name}, torch {torch.__version__}, mode {args.mode}, "
          f"{'freezing, ' if args.freezing else ''}"
          f"{'kept' if args.keep_cache else 'empty'} inductor cache; x real time per round, alternated; "
          "compiled / eager: the median of the rounds' ratios\n")
    print("| model | input | eager × real time | compiled × real time | compiled / eager | warm-up s "
          "| recompiles (varied inputs) | graph breaks | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eager = [r["audio_s"] / t for t in r["times"]["eager"]]
        fast = [r["audio_s"] / t for t in r["times"]["compiled"]]
        # Each round's pair ran back to back, so its ratio is the least disturbed by others' load.
        ratio = statistics.median(f / e for f, e in zip(fast, eager, strict=True))
        print(f"| {r['model']} | {r['input']} | {' / '.join(f'{x:.1f}' for x in eager)} "
              f"| {' / '.join(f'{x:.1f}' for x in fast)} | {ratio:.2f} | {r['warmup_s']:.0f} "
              f"| {r['recompiles']} ({r['varied']}) | {r['graph_breaks']} | {r['max_abs_diff']:.1e} |")


if __name__ == "__main__":
    main()
