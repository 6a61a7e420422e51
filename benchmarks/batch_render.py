"""Offline rendering throughput: the same manifest batched vs one job at a time.

    python -m benchmarks.batch_render                        # 1,000 vocode jobs, 2 CPU threads
    python -m benchmarks.batch_render --kind notes           # 1,000 note jobs
    python -m benchmarks.batch_render --kind tts             # 1,000 lines of speech, the bundled voice
    python -m benchmarks.batch_render --jobs 1000 --batch-sizes 1 32 --device cuda

vocode jobs: 1-5 s mels cut from the bundled demo mel. notes jobs: 4.096 s notes of the bundled note model,
random pitches 24-84, its instruments in turn. tts jobs: the 50 benchmark sentences of
benchmarks/data/tts_sentences.txt, cycled, through the bundled voice (a sentence per job).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from audiogan.render import read_manifest, run

ROOT = Path(__file__).resolve().parents[1]


def make_manifest(folder: Path, jobs: int) -> Path:
    mel = np.load(ROOT / "audiogan" / "samples" / "demo_mel.npy")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(jobs):
        frames = int(rng.integers(63, mel.shape[1]))  # 1 to 5 s
        start = int(rng.integers(0, mel.shape[1] - frames + 1))
        np.save(folder / f"mel{i:05d}.npy", mel[:, start:start + frames])
        lines.append(json.dumps({"kind": "vocode", "mel": f"mel{i:05d}.npy", "output": f"out/{i:05d}.wav"}))
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_notes_manifest(folder: Path, jobs: int) -> Path:
    from audiogan import weights

    instruments = weights.read_card(weights.resolve("default", "timbre"))["config"]["instruments"]
    rng = np.random.default_rng(0)
    lines = [json.dumps({"kind": "notes", "pitch": int(rng.integers(24, 85)),
                         "instrument": instruments[i % len(instruments)], "output": f"out/{i:05d}.wav"})
             for i in range(jobs)]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_tts_manifest(folder: Path, jobs: int) -> Path:
    sentences = [s.strip() for s in (ROOT / "benchmarks" / "data" / "tts_sentences.txt").read_text().splitlines()
                 if s.strip()]
    lines = [json.dumps({"kind": "tts", "text": sentences[i % len(sentences)], "output": f"out/{i:05d}.wav"})
             for i in range(jobs)]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


MANIFESTS = {"vocode": make_manifest, "notes": make_notes_manifest, "tts": make_tts_manifest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(MANIFESTS), default="vocode")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = read_manifest(MANIFESTS[args.kind](Path(tmp), args.jobs))
        assert not manifest.errors, manifest.errors[:3]
        print(f"{len(manifest.jobs)} {args.kind} jobs, device {args.device}, {args.threads} torch threads")
        print("| batch size | jobs | failed | wall s | jobs/s | audio h | x real time |")
        print("|---|---|---|---|---|---|---|")
        speeds = {}
        for size in args.batch_sizes:
            summary = run(manifest.jobs, str(Path(tmp) / f"render-b{size}"), batch_size=size, device=args.device,
                          progress=False)
            speeds[size] = summary.audio_seconds / summary.wall_seconds
            print(f"| {size} | {summary.rendered} | {summary.failed} | {summary.wall_seconds:.1f} | "
                  f"{summary.rendered / summary.wall_seconds:.1f} | {summary.audio_seconds / 3600:.3f} | "
                  f"{speeds[size]:.1f} |", flush=True)
        if 1 in speeds:
            for size, speed in speeds.items():
                if size != 1:
                    print(f"batching gain, batch {size} vs 1: {speed / speeds[1]:.2f}x")


if __name__ == "__main__":
    main()
