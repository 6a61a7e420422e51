"""Vocoder inference speed as x real time: CPU (batch 1, 10 s of audio) and, on a GPU, batch 1 and 16.

    python benchmarks/vocoder_speed.py [--threads 2] [--seconds 10] [--models default hifigan_v1 ...]
    python benchmarks/vocoder_speed.py --models default --phase-iterations 0 4 8   # the refinement's cost
    python benchmarks/vocoder_speed.py --models default --phase network rtpghi     # phase from the magnitude

'default', a bundled name or a .safetensors path are trained weights; recipe names (configs/vocoder/NAME.yaml)
are timed with random weights, which cost the same as trained ones. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from audiogan import Vocoder, weights
from audiogan.vocoder.phases import INFERENCE_PHASES
from benchmarks.common import phase_label, untrained_vocoder


def time_call(fn, sync, repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["default", "hifigan_v1", "hifigan_v2", "hifigan_v3"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--phase-iterations", type=int, nargs="+", default=[None], metavar="N",
                   help="time iSTFT models with these fast Griffin-Lim refinements (default: as configured)")
    p.add_argument("--phase", nargs="+", default=[None], choices=INFERENCE_PHASES,
                   help="time iSTFT models with the phase from these sources (default: as configured)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    rows = []
    runs = [(name, source, n) for name in args.models for source in args.phase for n in args.phase_iterations]
    for name, source, n in runs:
        try:
            trained = name == "default" or name.endswith(".safetensors") or name in weights.bundled("vocoder")
            voc = (Vocoder.load(name, device="cpu", phase_iterations=n, phase=source) if trained
                   else untrained_vocoder(name, n, source))
        except ValueError as exc:  # a HiFi-GAN has no phase to refine
            print(f"skipped {phase_label(name, n, source)}: {exc}", flush=True)
            continue
        frames = int(args.seconds * voc.sample_rate / voc.hop_length)
        mel = torch.randn(voc.config.mel.n_mels, frames) - 5
        params = sum(p.numel() for p in voc.generator.parameters()) / 1e6
        cpu = args.seconds / time_call(lambda v=voc, m=mel: v(m), lambda: None, args.repeats)
        row = {"model": phase_label(name, n, source), "params_m": params, "cpu_x": cpu}
        if cuda:
            voc.generator.cuda()
            voc.device = torch.device("cuda")
            for b in (1, 16):
                batch = mel.expand(b, -1, -1).cuda()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    dt = time_call(lambda v=voc, x=batch: v(x), torch.cuda.synchronize, args.repeats * 4)
                row[f"gpu_b{b}_x"] = b * args.seconds / dt
        rows.append(row)
        print(row, flush=True)
    dev = torch.cuda.get_device_name() if cuda else "no GPU"
    print(f"\nx real time, {args.seconds:g} s of audio; CPU {args.threads} threads batch 1; {dev}; "
          f"torch {torch.__version__}\n")
    gpu_cols = " | GPU b1 | GPU b16" if cuda else ""
    print(f"| model | params (M) | CPU{gpu_cols} |")
    print("|---|---|---|" + ("---|---|" if cuda else ""))
    for r in rows:
        gpu = f" | {r['gpu_b1_x']:.0f} | {r['gpu_b16_x']:.0f}" if cuda else ""
        print(f"| {r['model']} | {r['params_m']:.2f} | {r['cpu_x']:.1f}{gpu} |")


if __name__ == "__main__":
    main()
