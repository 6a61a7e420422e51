"""Note generation speed: 4.096 s notes per second, one at a time and batched.

    python -m benchmarks.timbre_speed                       # CPU, 2 threads, the bundled note model
    python -m benchmarks.timbre_speed --recipe configs/timbre/gm_notes.yaml     # a recipe's generator, untrained
    python -m benchmarks.timbre_speed --model runs/timbre/timbre-gm-16k.safetensors --device cuda --batch 256
    python -m benchmarks.timbre_speed --device cuda --batch 64 256 --profile   # and where the time goes

With --recipe the generator is randomly initialised: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import time

import torch

from audiogan.config import load_yaml
from audiogan.timbre import TimbreModel
from audiogan.timbre.model import Generator
from audiogan.train.timbre_trainer import TimbreTrainingConfig


def memory_format(generator: torch.nn.Module) -> str:
    conv = next(m for m in generator.modules() if isinstance(m, torch.nn.Conv2d))
    return "channels-last" if conv.weight.is_contiguous(memory_format=torch.channels_last) else "contiguous"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="bundled name or .safetensors (default: %(default)s)")
    parser.add_argument("--recipe", help="time this recipe's generator, untrained, instead of --model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-comb", action="store_true", help="without the half-harmonic comb on each note")
    parser.add_argument("--no-lock", action="store_true", help="decode without phase locking")
    parser.add_argument("--pass-size", type=int, help="notes per forward pass (default: the model's, 8 on CPU "
                        "and 64 on a GPU); a batch is generated in passes of this size")
    parser.add_argument("--profile", action="store_true", help="then profile one call at the largest batch")
    parser.add_argument("--memory-format", choices=["auto", "channels-last", "contiguous"], default="auto",
                        help="the generator's weights: auto is channels-last on CPU only (default: %(default)s)")
    args = parser.parse_args()
    channels_last = {"auto": None, "channels-last": True, "contiguous": False}[args.memory_format]
    options = {"comb": not args.no_comb, "phase_lock": not args.no_lock, "channels_last": channels_last}
    torch.set_num_threads(args.threads)
    if args.recipe:
        cfg = load_yaml(TimbreTrainingConfig, args.recipe)
        cfg.model.instruments = ["a"]
        torch.manual_seed(0)
        model = TimbreModel(Generator(cfg.model), {"name": f"{args.recipe} (untrained)"}, args.device, **options)
    else:
        model = TimbreModel.load(args.model, device=args.device, **options)
    if args.pass_size:
        model.pass_size = args.pass_size
    seconds = model.cfg.spectral.seconds
    instrument = model.instruments[0]
    params = sum(p.numel() for p in model.G.parameters()) / 1e6
    print(f"{model.card.get('name')}: {params:.2f} M parameters, {seconds:.3f} s notes, device {args.device}, "
          f"{args.threads} CPU threads, comb {'off' if args.no_comb else 'on'}, "
          f"phase lock {'off' if args.no_lock else 'on'}, generator {memory_format(model.G)}, "
          f"passes of up to {model.pass_size} notes")
    print("| batch | notes/s | x real time |")
    print("|---|---|---|")
    for batch in args.batch:
        model.generate([60] * batch, [instrument] * batch, seeds=list(range(batch)))  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for r in range(args.repeats):
            model.generate([60] * batch, [instrument] * batch, seeds=list(range(r, r + batch)))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rate = batch * args.repeats / (time.perf_counter() - start)
        print(f"| {batch} | {rate:.1f} | {rate * seconds:.0f} |", flush=True)
    if args.profile:
        profile(model, max(args.batch), instrument, args.device)


def profile(model: TimbreModel, batch: int, instrument: str, device: str) -> None:
    """Where one batched call's time goes, by operator: on a GPU the table sorts by device time, so host
    synchronisations and launch-bound stretches show up as the gap between the two columns."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = device.startswith("cuda")
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        model.generate([60] * batch, [instrument] * batch, seeds=list(range(batch)))
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\nprofile of one call at batch {batch}:")
    print(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=40))


if __name__ == "__main__":
    main()
