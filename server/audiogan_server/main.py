"""``audiogan-server``: listen, import and load the models, serve gRPC (plus health and reflection), drain on
SIGTERM."""

from __future__ import annotations

if __name__ == "__main__":  # python -m audiogan_server.main: as the audiogan-server command, before the imports
    from audiogan_server.entry import quiet_interrupts

    quiet_interrupts()

import argparse
import asyncio
import collections
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

try:
    import grpc
    from audiogan_client._proto import audiogan_pb2 as pb
    from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    from audiogan.config import ConfigError, from_dict, load_yaml, override, to_dict
    from audiogan.vocoder.phases import INFERENCE_PHASES
    from audiogan_server.budget import MAX_MESSAGE_BYTES
    from audiogan_server.config import ServerConfig
    from audiogan_server.forwarding import ForwardingServicer
    from audiogan_server.metrics import Metrics
    from audiogan_server.request_ids import RequestIdFilter
except ModuleNotFoundError as _missing:  # `pip install audiogan` alone installs this command, not its packages
    print(f"audiogan-server: error: the Python package {_missing.name!r} is not installed; the server needs "
          "its extra and the client's stubs: pip install 'audiogan[server]' ./client", file=sys.stderr)
    sys.exit(2)  # as every other start-up failure

if TYPE_CHECKING:  # imported once the server listens (_prepare): they bring in torch
    from audiogan_server.models import ModelRegistry
    from audiogan_server.service import AudioGanService

T = TypeVar("T")
log = logging.getLogger("audiogan.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AudioGan"].full_name


class JsonFormatter(logging.Formatter):
    """An object per line, with the ``request_id`` of the call that caused it where there is one; a call's
    line also carries its fields (method, code, peer, duration_ms, audio_seconds, error), so that a collector
    can filter on them without parsing the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(), **getattr(record, "call", {})}
        if getattr(record, "request_id", ""):
            entry["request_id"] = record.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """A line caused by a call ends with "[request id ...]", before any traceback; a call's own line says
    its id in its message already."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", "")
        return f"{line} [request id {request_id}]" if request_id and not hasattr(record, "call") else line


def setup_logging(fmt: str) -> None:
    """Every record, whichever logger wrote it, gets the id of the call it comes from (``RequestIdFilter``,
    on the handler: a logger's own filters miss the records its children pass up)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


class StartupError(Exception):
    """The server cannot start as configured: said in one line, with no traceback."""


class StoppedWhileLoading(Exception):
    """SIGTERM or SIGINT came before the models were in (or before their code was imported)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"stopped {seconds:.1f} s into loading")
        self.seconds = seconds


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    try:
        return grpc.ssl_server_credentials([(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
    except OSError as exc:
        raise StartupError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None


def _bind(server: grpc.aio.Server, address: str, creds: grpc.ServerCredentials | None) -> int:
    try:
        return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    except RuntimeError:  # grpc says only "Failed to bind": the likely causes are these two
        raise StartupError(f"cannot listen on {address}: the port is in use or the host is not an address "
                           "of this machine") from None


def _serve_metrics(metrics: Metrics, config: ServerConfig) -> None:
    try:
        metrics.serve(config.metrics_port, config.host)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc.strerror}") from None


async def _start(config: ServerConfig, server: grpc.aio.Server, metrics: Metrics) -> int:
    """Bind and start; on failure the server is stopped inside the loop, so that its finalizer does not
    try to shut it down on a closed loop (a second traceback)."""
    try:
        port = _bind(server, f"{config.host}:{config.port}", _credentials(config))
        await server.start()
        if config.metrics_port:
            _serve_metrics(metrics, config)
    except BaseException:
        await server.stop(0)
        raise
    return port


def _prepare(config: ServerConfig) -> ModelRegistry:
    """Torch and the models' code: seconds of imports (3-7 s on a busy machine), run on the model thread
    while the server listens; then the device, which only torch can check (its error is a start-up error,
    said before any model loads), and the load's plan, which the service's refusals while loading need."""
    from audiogan.vocoder.inference import pick_device
    from audiogan_server import service  # noqa: F401  (imported here, used from the event loop)
    from audiogan_server.models import ModelRegistry

    try:
        pick_device(config.device)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    registry = ModelRegistry()
    registry.plan(config)
    return registry


async def _unless_stopped(work: asyncio.Future[T], stopping: asyncio.Event, started: float) -> T:
    """``work``'s result, or StoppedWhileLoading as soon as SIGTERM or Ctrl-C comes first: neither an import
    nor a load can be interrupted, and nothing is in flight to drain."""
    stop_asked = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([work, stop_asked], return_when=asyncio.FIRST_COMPLETED)
    if not work.done():
        raise StoppedWhileLoading(time.perf_counter() - started)
    stop_asked.cancel()
    return work.result()


async def serve(config: ServerConfig) -> None:
    metrics = Metrics()
    front = ForwardingServicer(metrics)  # the service until the real one exists, which needs torch
    health_servicer = health.aio.HealthServicer()
    # so_reuseport off: by default a second server on a taken port would bind too and share its traffic.
    # Pings as often as min_ping_seconds, also on a connection with no call: a client's ping sent as its
    # call ends arrives on an idle connection, where gRPC otherwise allows one every two hours.
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.so_reuseport", 0),
                                      ("grpc.http2.min_ping_interval_without_data_ms",
                                       round(config.min_ping_seconds * 1000)),
                                      ("grpc.keepalive_permit_without_calls", 1)])
    pb_grpc.add_AudioGanServicer_to_server(front, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    port = await _start(config, server, metrics)
    # Listening before torch is imported and the models load lets health checks and clients see UNAVAILABLE,
    # with when to come back, instead of a refused connection for seconds.
    log.info("listening on %s:%d (%s)", config.host, port, "TLS" if config.tls_cert else "plaintext")
    if config.metrics_port:
        log.info("Prometheus metrics on http://%s:%d/metrics", config.host, config.metrics_port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    started = time.perf_counter()
    try:
        registry = await _unless_stopped(loop.run_in_executor(compute, _prepare, config), stopping, started)
        from audiogan_server.service import AudioGanService

        service = AudioGanService(config, registry, metrics)
        front.service = service  # calls now hear that the models are loading, and when they will be in
        await _unless_stopped(loop.run_in_executor(compute, registry.load, config, compute, metrics), stopping,
                              started)
    except (FileNotFoundError, ConfigError, ValueError) as exc:
        await server.stop(0)
        raise StartupError(f"cannot load models: {exc}") from None
    except BaseException:
        await server.stop(0)  # in the loop: no "Event loop is closed" from the finalizer after the traceback
        raise
    registry.start()
    service.ready = True
    metrics.serving.set(1)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    devices = sorted({str(e.vocoder.device) for e in registry.vocoders.values()})
    log.info("serving: vocoders %s, voices %s, timbre models %s on %s, imported and loaded in %.1f s",
             sorted(registry.vocoders), sorted(registry.voices) or "none", sorted(registry.timbres) or "none",
             ", ".join(devices), time.perf_counter() - started)

    await stopping.wait()
    await health_servicer.enter_graceful_shutdown()
    await _drain(server, service, config.grace_seconds)
    await registry.stop()
    compute.shutdown(wait=False)
    service.conversions.shutdown(wait=False, cancel_futures=True)
    log.info("stopped")


async def _drain(server: grpc.aio.Server, service: AudioGanService, grace_s: float) -> None:
    """Stop taking calls, give those in flight up to ``grace_s`` to finish, then cut off the rest; the log
    says what it waited for and how that ended."""
    log.info("shutting down: draining %s for up to %g s", _calls(service.active) or "no calls", grace_s)
    started = time.monotonic()
    service.drain(grace_s)
    stopped = asyncio.ensure_future(server.stop(grace_s))
    # gRPC's grace timer starts after ``started``: the last wait ends at the cut-off time, before gRPC
    # cancels what is left, so that ``left`` is what it cuts off.
    while +service.active and (left_s := started + grace_s - time.monotonic()) > 0:
        await asyncio.sleep(min(0.05, left_s))
    left = _calls(service.active)
    await stopped
    if left:
        log.warning("grace period of %g s over: cut off %s", grace_s, left)
    else:
        log.info("drained in %.1f s: every call finished", time.monotonic() - started)


def _calls(active: collections.Counter[str]) -> str:
    """'2 calls in flight (SynthesizeStream 1, Vocode 1)', or '' for none."""
    counts = sorted((+active).items())
    total = sum(n for _, n in counts)
    return f"{total} call{'s' if total > 1 else ''} in flight ({', '.join(f'{m} {n}' for m, n in counts)})" \
        if total else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiogan-server", description=__doc__)
    p.add_argument("--config", help="server YAML (configs/server/default.yaml lists every field); flags override it")
    p.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, help="port (default 50051; 0 = any free port)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--vocoder", action="append", dest="vocoders",
                   help="vocoder weights (bundled name or .safetensors path); repeat for several; first is default")
    p.add_argument("--phase-iterations", type=int,
                   help="fast Griffin-Lim iterations refining the vocoders' phase, 0 or more (default: each "
                        "model card's; 4 beats Griffin-Lim on PESQ-wb and STOI at ~0.65x the speed: "
                        "benchmarks/RESULTS.md)")
    p.add_argument("--phase", choices=INFERENCE_PHASES,
                   help="where the vocoders' phase comes from: the phase head, or rtpghi, integrated from the "
                        "magnitude (default: each model card's; benchmarks/RESULTS.md has the trade)")
    p.add_argument("--voice", action="append", dest="voices",
                   help="TTS voice (bundled name or .safetensors path); repeat for several; first is default; "
                        "none: no text input")
    p.add_argument("--lexicon", help="your pronunciations for every voice: lines 'WORD respelling' or "
                                     "'WORD /phonemes/' (audiogan/tts/lexicon.py)")
    p.add_argument("--timbre", action="append", dest="timbres",
                   help="timbre (note) model (bundled name or .safetensors path); repeat for several; none: no notes")
    p.add_argument("--threads", type=int, help="torch CPU threads, at most this machine's CPUs (default 0: torch's "
                                                "choice)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (default 0: none)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--log-format", choices=["text", "json"],
                   help="text: a line per event for people; json: an object per line for log collectors "
                        "(default: text)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other setting, e.g. --set limits.max_concurrent=8 --set batching.max_wait_ms=2")
    return p


def load_config(args: argparse.Namespace) -> ServerConfig:
    config = load_yaml(ServerConfig, args.config) if args.config else ServerConfig()
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "set") and v is not None}
    data = {**to_dict(config), **flags}
    for assignment in args.set:
        key, _, value = assignment.partition("=")
        section, _, leaf = key.partition(".")
        if leaf and section in data and isinstance(data[section], dict):
            data[section] = to_dict(override(from_dict(type(getattr(config, section)), data[section]),
                                             f"{leaf}={value}"))
        else:
            data = to_dict(override(from_dict(ServerConfig, data), assignment))
    config = from_dict(ServerConfig, data)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    _check_port("port", config.port, "0 = any free port")
    _check_port("metrics_port", config.metrics_port, "0 = no metrics")
    config.batching.check()
    config.limits.check()
    for name in ("grace_seconds", "min_ping_seconds"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be 0 or more, got {getattr(config, name)}")
    _check_threads(config.threads)
    if config.phase_iterations < -1:  # -1 is the card's own; -5 was taken for it without a word
        raise ConfigError(f"phase_iterations {config.phase_iterations} is out of range: 0 or more (-1: each "
                          "model card's)")
    return config


def _check_threads(threads: int) -> None:
    """0 (torch's choice) up to this machine's CPUs: --threads 100000 started that many threads, stalled the
    machine for minutes and held on past SIGTERM; -3 was taken for torch's choice without a word."""
    cpus = os.cpu_count() or 1
    if not 0 <= threads <= cpus:
        raise ConfigError(f"threads {threads} is out of range 0..{cpus} (this machine's CPUs; 0 = torch's choice)")


def _check_port(name: str, port: int, zero: str) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} {port} is out of range 0..65535 ({zero})")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"audiogan-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(config.log_format)
    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        print(f"audiogan-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except StoppedWhileLoading as stop:
        log.info("stopped while loading the models, %.1f s in: no call was taken", stop.seconds)
        logging.shutdown()
        # A load cannot be interrupted, and a normal exit would wait for its thread (a pool's threads are
        # joined at exit): a stuck or slow load would hold off SIGTERM until the orchestrator's SIGKILL.
        os._exit(0)


if __name__ == "__main__":
    main()
