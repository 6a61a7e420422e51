"""Load test of audiogan-server on loopback: concurrent streams, time to first audio, soak for leaks.

    python -m benchmarks.server_load                       # starts its own server (bundled models)
    python -m benchmarks.server_load --streams 1 4 8 16 --soak 1000 --concurrency 32
    python -m benchmarks.server_load --target host:port    # an already running server (no RSS figures)
    python -m benchmarks.server_load --text                # speech: text -> the bundled voice -> audio
    python -m benchmarks.server_load --text --note-clients 2   # plus 2 clients asking for notes/morphs
    python -m benchmarks.server_load --text --paced --stagger 7 --seconds 40   # listeners, not a stress test
    python -m benchmarks.server_load --text --sentences 3 --streams 1 4 8   # a paragraph: 12 sentences
    python -m benchmarks.server_load --reply-memory        # memory that whole (unary) replies take

Streams are mel -> audio (SynthesizeStream with the bundled 5 s mel) or, with --text, a 20-word sentence
through the server's default voice (text -> phonemes -> acoustic model -> vocoder, all on the server);
--sentences N makes the text N times four different sentences.
Note clients alternate GenerateNotes (4 notes of 2 s, random pitches and instruments) and
InterpolateTimbre (4 steps of 2 s) back to back while the streams run. A stream is "real time" when,
playing from its first chunk's arrival, no later chunk arrives after its audio was due (no underrun).

By default every client asks again as soon as its last chunk arrives, all starting together: a stress test
in which N clients ask for several times N streams' worth of real-time audio. With --paced a client asks
again only once the audio it received has finished playing, so N clients are N people listening without
a break; --stagger S spreads their first requests evenly over S seconds instead of starting them together.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from audiogan_client import AudioGanClient
from audiogan_server.process import launch

ROOT = Path(__file__).resolve().parents[1]
DEMO_MEL = ROOT / "audiogan" / "samples" / "demo_mel.npy"


@dataclass
class StreamStats:
    first_audio: float
    wall: float
    audio_seconds: float
    underrun: bool


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reply_memory(calls: int) -> None:
    """The server's peak memory growth for one unary call of each kind (the second of two, once its
    allocator has warmed up), then for ``calls`` concurrent 300 s Vocodes at 96 kHz with no reply budget
    (limits.max_reply_mb=1e9, as before there was one), with the default (2048) and with 512. Linux only (/proc)."""
    mel = np.load(DEMO_MEL)[:, :1]
    cases = [("Vocode 600 s", 600, 16000, "pcm16"), ("Vocode 600 s", 600, 48000, "flac"),
             ("Vocode 600 s", 600, 96000, "pcm16"), ("Vocode 600 s", 600, 96000, "float32"),
             ("Vocode 300 s", 300, 96000, "float32"), ("GenerateNotes 64 x 4.1 s", 64, 96000, "float32")]

    def call(client: AudioGanClient, kind: str, amount: int, rate: int, encoding: str) -> None:
        if kind.startswith("Vocode"):
            client.vocode(np.repeat(mel, int(amount * 16000 / 256), axis=1), sample_rate=rate, encoding=encoding)
        else:
            client.notes([{"pitch": 60, "timbre": "flute"}] * amount, sample_rate=rate, encoding=encoding)

    def peak(pid: int, work: Callable[[], object]) -> float:
        time.sleep(1)
        base = rss_mib(pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the present
        work()
        return rss_mib(pid, "VmHWM") - base

    print("| call | output | peak growth (MiB) | estimated by the budget (MiB) |\n|---|---|---|---|")
    from audiogan_server.budget import reply_bytes

    with launch("--set", "limits.max_audio_seconds=600") as server, \
            AudioGanClient(server.target, timeout=900, retries=0) as client:
        for kind, amount, rate, encoding in cases:
            grew = [peak(server.process.pid, functools.partial(call, client, kind, amount, rate, encoding))
                    for _ in range(2)]
            estimate = reply_bytes(amount * (4.096 if kind.startswith("Generate") else 1.0), 16000, rate) / 2**20
            print(f"| {kind} | {rate} Hz {encoding} | {grew[1]:.0f} | {estimate:.0f} |")
    print(f"\n{calls} concurrent Vocode 300 s at 96 kHz float32:\n\n| limits.max_reply_mb | peak growth (MiB) | "
          "wall (s) |\n|---|---|---|")
    for budget in ("1e9", "2048", "512"):
        with launch("--set", "limits.max_audio_seconds=600", "--set", f"limits.max_reply_mb={budget}") as server, \
                AudioGanClient(server.target, timeout=1800, retries=0) as client, ThreadPoolExecutor(calls) as pool:
            peak(server.process.pid, lambda: call(client, "Vocode", 300, 96000, "float32"))  # warm-up
            start = time.perf_counter()
            grew = peak(server.process.pid, lambda: list(pool.map(
                lambda _: call(client, "Vocode", 300, 96000, "float32"), range(calls))))
            print(f"| {budget} | {grew:.0f} | {time.perf_counter() - start:.0f} |", flush=True)


SENTENCE = "The quick brown fox jumps over the lazy dog while the farmer sells fresh bread at the busy market today."
MORE_SENTENCES = ["A gentle rain fell on the old town as the evening lights came on one by one.",
                  "She opened the letter slowly, read it twice, and then put it back in the drawer.",
                  "Nobody expected the small team to finish the bridge before the winter storms arrived."]


def one_stream(client: AudioGanClient, source: dict) -> StreamStats:
    start = time.perf_counter()
    first = None
    late = False
    samples = 0
    rate = 16000
    for chunk in client.stream_chunks(**source, encoding="pcm16"):
        now = time.perf_counter()
        rate = chunk.sample_rate_hz
        if first is None and chunk.audio:
            first = now
        elif first is not None and now - first > chunk.sample_offset / rate:
            late = True
        samples += len(chunk.audio) // 2
    end = time.perf_counter()
    return StreamStats((first or end) - start, end - start, samples / rate, late)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def note_call(client: AudioGanClient, rng: np.random.Generator, instruments: list[str], i: int) -> float:
    """One note request (even i: 4 notes, odd i: a 4-step morph); returns seconds of audio received."""
    pick = [str(n) for n in rng.choice(instruments, 4)]
    if i % 2 == 0:
        notes = client.notes([{"pitch": int(rng.integers(36, 85)), "timbre": n, "seconds": 2.0} for n in pick])
    else:
        notes, _ = client.interpolate(pick[0], pick[1], pitch=int(rng.integers(36, 85)), steps=4, seconds=2.0)
    return sum(len(n.samples) / n.sample_rate for n in notes)


def stream_load(target: str, source: dict, streams: int, seconds: float, note_clients: int = 0,
                paced: bool = False, stagger: float = 0.0) -> dict[str, float]:
    """``streams`` clients each stream back to back for ``seconds`` of wall time (``paced``: each waits for
    its audio to finish playing before asking again; ``stagger``: first requests spread over that many
    seconds), while ``note_clients`` clients ask for notes and morphs."""
    results: list[StreamStats] = []
    errors: list[str] = []
    note_latency: list[float] = []
    note_audio: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def note_worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with AudioGanClient(target, timeout=120) as client:
            instruments = [i["name"] for i in client.list_instruments()]
            i = seed
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    audio = note_call(client, rng, instruments, i)
                    with lock:
                        note_latency.append(time.perf_counter() - start)
                        note_audio.append(audio)
                except grpc.RpcError as err:
                    with lock:
                        errors.append(err.code().name)
                i += 1

    def worker(k: int) -> None:
        with AudioGanClient(target, timeout=120) as client:
            time.sleep(k * stagger / streams)
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    stats = one_stream(client, source)
                    with lock:
                        results.append(stats)
                except grpc.RpcError as err:
                    with lock:
                        errors.append(err.code().name)
                    continue
                if paced:  # the listener hears the whole answer before asking again
                    time.sleep(max(0.0, start + stats.first_audio + stats.audio_seconds - time.perf_counter()))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(streams)]
    threads += [threading.Thread(target=note_worker, args=(k,)) for k in range(note_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ttfa = [r.first_audio * 1000 for r in results]
    return {
        "streams": streams, "requests": len(results), "errors": len(errors),
        "ttfa_p50_ms": percentile(ttfa, 50), "ttfa_p99_ms": percentile(ttfa, 99),
        "rtf_median": statistics.median(r.wall / r.audio_seconds for r in results) if results else float("nan"),
        "realtime_pct": 100 * sum(not r.underrun for r in results) / max(1, len(results)),
        "audio_x_realtime": sum(r.audio_seconds for r in results) / elapsed,
        "note_requests": len(note_latency), "note_p50_ms": 1000 * percentile(note_latency, 50),
        "note_p99_ms": 1000 * percentile(note_latency, 99), "note_audio_x_realtime": sum(note_audio) / elapsed,
    }


def soak(target: str, source: dict, requests: int, concurrency: int) -> tuple[int, dict[str, int], float]:
    codes: dict[str, int] = {}
    lock = threading.Lock()
    clients = [AudioGanClient(target, timeout=120) for _ in range(concurrency)]

    def call(i: int) -> None:
        client = clients[i % concurrency]
        try:
            if i % 2:
                client.synthesize(**source)
            else:
                for _ in client.stream_chunks(**source, encoding="pcm16"):
                    pass
            code = "OK"
        except grpc.RpcError as err:
            code = err.code().name
        with lock:
            codes[code] = codes.get(code, 0) + 1

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(requests)))
    for c in clients:
        c.close()
    return requests, codes, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", help="use this running server instead of starting one")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16])
    parser.add_argument("--seconds", type=float, default=15.0, help="wall time per stream level")
    parser.add_argument("--soak", type=int, default=1000, help="requests in the soak (0 = skip)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--server-args", default="", help="extra audiogan-server flags, e.g. '--device cuda'")
    parser.add_argument("--text", action="store_true", help="stream speech from text instead of a mel")
    parser.add_argument("--note-clients", type=int, default=0,
                        help="clients asking for notes and timbre morphs during each stream level")
    parser.add_argument("--paced", action="store_true",
                        help="each client asks again only after its audio has played (listeners, not a stress test)")
    parser.add_argument("--stagger", type=float, default=0.0, metavar="S",
                        help="spread the clients' first requests over S seconds (default: all at once)")
    parser.add_argument("--sentences", type=int, default=1, metavar="N",
                        help="with --text: N times four different sentences instead of one (a paragraph)")
    parser.add_argument("--reply-memory", type=int, nargs="?", const=8, metavar="CALLS",
                        help="instead: the memory unary replies take, alone and CALLS (8) at once")
    args = parser.parse_args()
    if args.reply_memory:
        return reply_memory(args.reply_memory)
    mel = np.load(DEMO_MEL)  # 5.06 s of speech
    text = " ".join([SENTENCE, *MORE_SENTENCES] * args.sentences) if args.sentences > 1 else SENTENCE
    source = {"text": text} if args.text else {"mel": mel}

    def run(target: str, pid: int | None) -> None:
        if args.text:
            print(f"text: {len(text.split())} words through the server's default voice")
        else:
            print(f"mel: {mel.shape[1]} frames = {mel.shape[1] * 256 / 16000:.2f} s of audio per request")
        print(("paced clients (each asks again once its audio has played)" if args.paced else
               "clients ask back to back") + (f", first requests spread over {args.stagger:g} s" if args.stagger else
                                              ", all starting together"))
        notes = args.note_clients > 0
        extra = " note clients | note requests | note p50 ms | note p99 ms | note audio x RT |" if notes else ""
        print("| streams | requests | errors | TTFA p50 ms | TTFA p99 ms | RTF median | real-time % | audio x RT |"
              + extra)
        print("|---|---|---|---|---|---|---|---|" + "---|" * 5 * notes)
        for n in args.streams:
            r = stream_load(target, source, n, args.seconds, args.note_clients, args.paced, args.stagger)
            row = (f"| {n} | {r['requests']} | {r['errors']} | {r['ttfa_p50_ms']:.0f} | {r['ttfa_p99_ms']:.0f} | "
                   f"{r['rtf_median']:.3f} | {r['realtime_pct']:.0f} | {r['audio_x_realtime']:.1f} |")
            if notes:
                row += (f" {args.note_clients} | {r['note_requests']} | {r['note_p50_ms']:.0f} | "
                        f"{r['note_p99_ms']:.0f} | {r['note_audio_x_realtime']:.1f} |")
            print(row, flush=True)
        if args.soak:
            soak(target, source, min(100, args.soak), args.concurrency)  # warm-up: allocator and thread pools settle
            before = rss_mib(pid) if pid else float("nan")
            n, codes, elapsed = soak(target, source, args.soak, args.concurrency)
            after = rss_mib(pid) if pid else float("nan")
            errors = sum(v for k, v in codes.items() if k != "OK")
            print(f"\nsoak: {n} requests (half Synthesize, half SynthesizeStream) at concurrency {args.concurrency} "
                  f"in {elapsed:.1f} s = {n / elapsed:.1f} req/s; errors {errors} {codes}")
            print(f"server RSS after warm-up {before:.0f} MiB, after soak {after:.0f} MiB "
                  f"({100 * (after - before) / before:+.1f} %)")

    if args.target:
        run(args.target, None)
    else:
        with launch(*args.server_args.split()) as server:
            run(server.target, server.process.pid)


if __name__ == "__main__":
    main()
