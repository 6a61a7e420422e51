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

    python -m benchmarks.busy_retry --together       # 3 rounds: the server and a client started together

--together: each round starts ``audiogan-server`` on the bundled models and, at the same moment, a client
(--retries, --backoff, 60 s deadline) that asks for 10 frames of audio: refused (no server listening yet,
then UNAVAILABLE while it imports its code and loads its models) until the server is ready, or until its
retries run out. Reported per round: when the server listened and was serving, how long the call took,
and how many times it was retried.
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
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


def counted(method: Callable[..., object], tries: list[float]) -> Callable[..., object]:
    """``method``, noting when each try began in ``tries``."""
    def call(*args: object, **kwargs: object) -> object:
        tries.append(time.perf_counter())
        return method(*args, **kwargs)
    return call


def watch(server: subprocess.Popen[str], start: float, events: dict[str, float]) -> None:
    """When the server logged that it listens and that it serves, in seconds from ``start``."""
    for line in server.stderr or ():
        for event in ("listening on", "serving:"):
            if event in line:
                events.setdefault(event, time.perf_counter() - start)


def together(args: argparse.Namespace, mel: np.ndarray) -> None:
    rows = []
    for _ in range(args.rounds):
        port = free_port()  # a fresh one each round: a port just freed may be taken by another process
        events: dict[str, float] = {}
        start = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "audiogan_server.main", "--port", str(port)],
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        watcher = threading.Thread(target=watch, args=(server, start, events), daemon=True)
        watcher.start()
        tries: list[float] = []
        with AudioGanClient(f"127.0.0.1:{port}", retries=args.retries, backoff=args.backoff) as client:
            client.stub.Vocode = counted(client.stub.Vocode, tries)
            try:
                client.vocode(mel[:, :10])
                outcome = "succeeded"
            except grpc.RpcError as err:
                outcome = f"failed ({err.code().name})"
        took = time.perf_counter() - start
        while "serving:" not in events:
            if server.poll() is not None:
                raise SystemExit(f"the server ended before it served (exit {server.returncode})")
            time.sleep(0.05)
        server.terminate()
        server.wait(30)
        watcher.join(10)
        rows.append((events.get("listening on", math.nan), events.get("serving:", math.nan), took, len(tries) - 1,
                     outcome == "succeeded"))
        print(f"listening after {rows[-1][0]:.2f} s, serving after {rows[-1][1]:.2f} s; the call {outcome} after "
              f"{took:.2f} s, retried {len(tries) - 1} times", flush=True)
    print(f"{args.rounds} rounds: serving after median {statistics.median(r[1] for r in rows):.2f} s; the call "
          f"succeeded {sum(r[4] for r in rows)} times, after median {statistics.median(r[2] for r in rows):.2f} s "
          f"(min {min(r[2] for r in rows):.2f}, max {max(r[2] for r in rows):.2f}); retries median "
          f"{statistics.median(r[3] for r in rows):g}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="default 10, or 3 with --together")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the held call should take")
    parser.add_argument("--frames", type=int, default=0,
                        help="the held call's mel frames, instead of sizing it for --hold (a shared machine's "
                             "speed changes from minute to minute)")
    parser.add_argument("--retries", type=int, default=3, help="the second caller's (default: the client's)")
    parser.add_argument("--backoff", type=float, default=0.2,
                        help="the second caller's first backoff in seconds (default: the client's); a small one "
                             "leaves the waits to the server's pushback")
    parser.add_argument("--together", action="store_true",
                        help="start the server (bundled models) and the client together, --rounds times "
                             "(default 3)")
    args = parser.parse_args()
    mel = np.load(DEMO_MEL)
    if args.together:
        args.rounds = args.rounds or 3
        together(args, mel)
        return
    args.rounds = args.rounds or 10
    port = free_port()
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
