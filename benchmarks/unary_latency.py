"""A unary call's latency over loopback, for this tree's server and, with --base, another tree's beside it.

    python -m benchmarks.unary_latency                          # 300 ListVoices and 300 Vocode (10 frames)
    python -m benchmarks.unary_latency --base /tmp/audiogan-main --calls 1000 --rpc ListVoices

Each server is ``audiogan-server`` on the bundled vocoder alone (``--voice none --timbre none``), one
process per tree, run from that tree's sources (PYTHONPATH); the caller is this tree's raw stub, with no
retries and no metadata of its own, so that what differs is the server. With --base the two servers are
called in turn, a call to one then a call to the other, each first in every other round, so that drift
in the machine's load (shared CPUs) falls on both alike. Reported per server and RPC: the median and the
90th percentile of --calls calls, after --warmup calls that are not counted. On a shared machine runs
scatter by a few hundredths of a millisecond on ListVoices: repeat them, both ways round (--base naming
either tree), and run a tree against itself for the scatter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
from audiogan_server.process import ServerProcess, launch

ROOT = Path(__file__).resolve().parents[1]
DEMO_MEL = ROOT / "audiogan" / "samples" / "demo_mel.npy"


def server_from(tree: Path) -> contextlib.AbstractContextManager[ServerProcess]:
    """A server whose code is ``tree``'s: the child takes PYTHONPATH from this process's environment."""
    os.environ["PYTHONPATH"] = os.pathsep.join(str(tree / part) for part in (".", "server", "client"))
    return launch("--voice", "none", "--timbre", "none", "--threads", "1")


def calls(stub: pb_grpc.AudioGanStub, mel: np.ndarray) -> dict[str, Callable[[], object]]:
    small = pb.VocodeRequest(mel=pb.Mel(n_mels=mel.shape[0], data=mel[:, :10].astype("<f4").tobytes()))
    return {"ListVoices": lambda: stub.ListVoices(pb.ListVoicesRequest(), timeout=30),
            "Vocode": lambda: stub.Vocode(small, timeout=30)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, help="another source tree whose server is measured beside this one's")
    p.add_argument("--calls", type=int, default=300, help="counted calls per server and RPC (default %(default)s)")
    p.add_argument("--warmup", type=int, default=30, help="uncounted calls first (default %(default)s)")
    p.add_argument("--rpc", choices=["ListVoices", "Vocode"], action="append",
                   help="measure only this RPC; repeat for both (default: both)")
    args = p.parse_args()
    mel = np.load(DEMO_MEL)
    trees = {"this tree": ROOT, **({"base": args.base.resolve()} if args.base else {})}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(server_from(tree)) for name, tree in trees.items()}
        channels = {name: stack.enter_context(grpc.insecure_channel(s.target)) for name, s in servers.items()}
        rpcs = {name: calls(pb_grpc.AudioGanStub(channel), mel) for name, channel in channels.items()}
        for method in args.rpc or ["ListVoices", "Vocode"]:
            times: dict[str, list[float]] = {name: [] for name in rpcs}
            for i in range(args.warmup + args.calls):
                # Each server first in every other round: the second call of a round finds the CPUs warmer.
                for name, table in (list(rpcs.items()) if i % 2 else list(rpcs.items())[::-1]):
                    start = time.perf_counter()
                    table[method]()
                    if i >= args.warmup:
                        times[name].append(time.perf_counter() - start)
            for name, spent in times.items():
                ms = sorted(t * 1000 for t in spent)
                print(f"{method:10s} {name:9s} median {statistics.median(ms):.3f} ms  "
                      f"p90 {ms[int(0.9 * len(ms))]:.3f} ms  ({len(ms)} calls)")


if __name__ == "__main__":
    main()
