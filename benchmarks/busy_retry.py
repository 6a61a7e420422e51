"""A busy server's refusal retried after its pushback: how long a call waits for a one-slot server.

    python -m benchmarks.busy_retry                  # 10 rounds, a held call of about 1 s
    python -m benchmarks.busy_retry --rounds 20 --hold 2.0
    python -m benchmarks.busy_retry --backoff 0.01 --retries 10    # the server's pushback sets the waits

A server with limits.max_concurrent=1 (bundled vocoder only). Each round, one caller's Synthesize of a mel
long enough to take about --hold seconds is let in, and a second caller (by default AudioGanClient's 3
retries from a 0.2 s backoff, 60 s deadline) then asks for 10 frames of audio: refused while the slot is
held (RESOURCE_EXHAUSTED with a pushback), it is retried until it goes through or its retries run out.
Reported per round: how long the held call took, how long the second call took, and how many times the
server refused it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from audiogan_client import AudioGanClient, ServerBusy
from audiogan_server.process import launch

DEMO_MEL = Path(__file__).resolve().parents[1] / "audiogan" / "samples" / "demo_mel.npy"


def metric(port: int, line_start: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def timed(call: Callable[..., object], **kwargs: object) -> float:
    start = time.perf_counter()
    call(**kwargs)
    return time.perf_counter() - start


def held_mel(client: AudioGanClient, mel: np.ndarray, hold: float) -> np.ndarray:
    """A mel whose Synthesize takes about ``hold`` seconds on this machine: the median of three timed calls,
    scaled."""
    per_frame = statistics.median(timed(client.synthesize, mel=mel) for _ in range(3)) / mel.shape[1]
    frames = max(10, round(hold / per_frame))
    return np.tile(mel, (1, -(-frames // mel.shape[1])))[:, :frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the held call should take")
    parser.add_argument("--frames", type=int, default=0,
                        help="the held call's mel frames, instead of sizing it for --hold (a shared machine's "
                             "speed changes from minute to minute)")
    parser.add_argument("--retries", type=int, default=3, help="the second caller's (default: the client's)")
    parser.add_argument("--backoff", type=float, default=0.2,
                        help="the second caller's first backoff in seconds (default: the client's); a small one "
                             "leaves the waits to the server's pushback")
    args = parser.parse_args()
    mel = np.load(DEMO_MEL)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(port),
                "--set", "limits.max_concurrent=1") as proc, ThreadPoolExecutor(1) as pool, \
            AudioGanClient(proc.target, retries=0) as holder, \
            AudioGanClient(proc.target, retries=args.retries, backoff=args.backoff) as second:
        holder.synthesize(mel=mel)  # the server's first call is slow (seconds): not one to measure
        long_mel = held_mel(holder, mel, args.hold) if args.frames <= 0 else \
            np.tile(mel, (1, -(-args.frames // mel.shape[1])))[:, :args.frames]
        holder.synthesize(mel=long_mel)  # so is its first of a new length
        print(f"held call: Synthesize of {long_mel.shape[1]} mel frames", flush=True)
        refused = 'audiogan_requests_total{code="RESOURCE_EXHAUSTED",method="Synthesize"}'
        rows = []
        for _ in range(args.rounds):
            before = metric(port, refused)
            held = pool.submit(timed, holder.synthesize, mel=long_mel)
            while metric(port, "audiogan_in_flight") < 1:  # the held call has its slot
                time.sleep(0.005)
            start = time.perf_counter()
            try:
                second.synthesize(mel=mel[:, :10])
                outcome = "succeeded"
            except ServerBusy as busy:  # its retries ran out while the slot was still held
                outcome = f"failed after {busy.retries} retries"
            took = time.perf_counter() - start
            held_seconds = held.result()
            time.sleep(0.2)  # the server counts a refusal as its call ends
            rows.append((held_seconds, took, metric(port, refused) - before, outcome == "succeeded"))
            print(f"held call {held_seconds:.2f} s, second call {outcome} after {took:.2f} s, "
                  f"refused {rows[-1][2]:g} time(s)", flush=True)
    tooks = [r[1] for r in rows if r[3]]
    spread = f"median {statistics.median(tooks):.2f} s (min {min(tooks):.2f}, max {max(tooks):.2f})" if tooks else "-"
    print(f"{args.rounds} rounds: held call median {statistics.median(r[0] for r in rows):.2f} s; second call "
          f"succeeded {len(tooks)} times, after {spread}; refusals median {statistics.median(r[2] for r in rows):g}")


if __name__ == "__main__":
    main()
