"""audiogan-server's start: it listens before torch and the models' code are imported, and refuses calls
with a pushback until its service exists (the forwarding servicer); clients started with it get answers."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from audiogan_client import AudioGanClient
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
from audiogan_client.client import server_pushback
from audiogan_server.forwarding import ForwardingServicer
from audiogan_server.metrics import Metrics
from audiogan_server.process import launch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Answering(pb_grpc.AudioGanServicer):
    """A stand-in for the real service, one method of each kind: what the forwarder hands calls to."""

    async def ListVoices(self, request: pb.ListVoicesRequest, context: Any) -> pb.ListVoicesResponse:
        return pb.ListVoicesResponse(vocoders=[pb.ModelInfo(name="answered")])

    async def SynthesizeStream(self, request: pb.SynthesizeRequest, context: Any) -> AsyncIterator[pb.AudioChunk]:
        for i in range(3):
            yield pb.AudioChunk(sequence=i)

    async def ConvertTimbre(self, requests: AsyncIterator[pb.ConvertTimbreRequest],
                            context: Any) -> AsyncIterator[pb.AudioChunk]:
        parts = [part async for part in requests]
        yield pb.AudioChunk(sequence=len(parts))


def test_the_forwarding_servicer_refuses_with_a_pushback_until_the_service_exists_then_forwards():
    """Over real gRPC on loopback: before the service is handed over, a unary, a server-streaming and a
    client-streaming call are each refused UNAVAILABLE "starting" with a pushback, and counted; after,
    each reaches the service, the uploaded stream whole."""
    async def scenario() -> tuple[list[tuple[grpc.StatusCode, str, float | None]], list[Any], float]:
        metrics = Metrics()
        front = ForwardingServicer(metrics)
        server = grpc.aio.server()
        pb_grpc.add_AudioGanServicer_to_server(front, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            # The callers are gRPC's blocking stubs, as the client's: on a thread, while the loop serves.
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.AudioGanStub(channel)
                upload = [pb.ConvertTimbreRequest(audio_chunk=b"x")] * 4
                calls = [lambda: stub.ListVoices(pb.ListVoicesRequest()),
                         lambda: list(stub.SynthesizeStream(pb.SynthesizeRequest(text="hi"))),
                         lambda: list(stub.ConvertTimbre(iter(upload)))]
                refusals = []
                for call in calls:
                    with pytest.raises(grpc.RpcError) as info:
                        await asyncio.to_thread(call)
                    refusals.append((info.value.code(), info.value.details(), server_pushback(info.value)))
                front.service = Answering()
                answers = [await asyncio.to_thread(call) for call in calls]
        finally:
            await server.stop(0)
        refused = sum(metrics.requests.labels(m, "UNAVAILABLE")._value.get()
                      for m in ("ListVoices", "SynthesizeStream", "ConvertTimbre"))
        return refusals, answers, refused

    refusals, answers, refused = asyncio.run(scenario())
    for code, details, pushback in refusals:
        assert code == grpc.StatusCode.UNAVAILABLE and "the server is starting" in details, details
        assert pushback is not None and pushback > 0, "the refusal says when to come back"
    assert refused == 3, "each refusal is counted as any call is"
    assert answers[0].vocoders[0].name == "answered"
    assert [c.sequence for c in answers[1]] == [0, 1, 2]
    assert [c.sequence for c in answers[2]] == [4], "the whole upload reached the service"


# The server with its first import of torch held up by the seconds given first on its command line: the time
# a busy machine takes to import it, made sure.
SLOW_TORCH = """
import importlib.abc, sys, time
delay = float(sys.argv.pop(1))

class SlowTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            time.sleep(delay)
            sys.meta_path.remove(self)
        return None

sys.meta_path.insert(0, SlowTorch())
from audiogan_server.main import main
main()
"""


def test_a_client_started_with_the_server_gets_its_answer_with_the_default_retries():
    """A server whose import of torch takes 3 s more, and a client with the default retries (3, from 0.2 s:
    given up 1.4 s in where nothing listens) started at the same moment: the server listens before the
    import, refuses the call as "starting", then as loading, each with a pushback, and answers it once the
    models are in. Before, nothing listened for the import's seconds and the client gave up."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SLOW_TORCH, "3", "--port", str(port), "--voice", "none",
                               "--timbre", "none"], stderr=subprocess.PIPE, text=True)
    try:
        with AudioGanClient(f"127.0.0.1:{port}", timeout=120) as client:
            voices = client.list_voices()
    finally:
        server.send_signal(signal.SIGTERM)
        log = server.communicate(timeout=60)[1]
    assert voices["vocoders"], log
    assert "ListVoices UNAVAILABLE" in log and "the server is starting" in log, log
    assert log.index("listening on") < log.index("the server is starting") < log.index("serving:"), log


def test_sigterm_while_torch_is_imported_stops_the_server_at_once():
    """SIGTERM while the server, already listening, imports torch (held up 60 s here): it ends in seconds,
    with exit status 0 and the line it says when stopped while loading; a call meanwhile was refused as
    starting."""
    with launch("--voice", "none", "--timbre", "none", until="listening on", timeout=60,
                entry=("-c", SLOW_TORCH, "60")) as proc:
        with AudioGanClient(proc.target, retries=0) as once, pytest.raises(grpc.RpcError) as info:
            once.list_voices()
        proc.process.send_signal(signal.SIGTERM)
        status = proc.process.wait(30)  # before the import would end: it is not waited for
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "starting" in info.value.details()
    assert status == 0, proc.log_text()
    assert "stopped while loading the models" in proc.log_text()


def test_a_device_torch_cannot_use_is_a_one_line_error_before_any_model_loads():
    """The device is checked once torch is imported, after the server listens: still one line, exit 2."""
    done = subprocess.run([sys.executable, "-m", "audiogan_server.main", "--port", "0", "--device", "tpu"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "audiogan-server: error: unknown device 'tpu': use auto, cpu, cuda or cuda:N" in done.stderr
    assert "Traceback" not in done.stderr and "serving:" not in done.stderr, done.stderr


def test_the_servers_parser_and_config_do_not_import_torch():
    """--help, a usage error and a bad setting are said before torch is imported: in 0.2-0.3 s, not 2 s."""
    script = """
import sys
import time
from audiogan_server.main import build_parser, load_config
from audiogan.config import ConfigError
try:
    load_config(build_parser().parse_args(["--port", "70000"]))
except ConfigError as exc:
    print(exc)
load_config(build_parser().parse_args(["--port", "0", "--threads", "1"]))
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["port 70000 is out of range 0..65535 (0 = any free port)", "False"]
    helped = subprocess.run([sys.executable, "-m", "audiogan_server.main", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0 and "--phase {network,rtpghi}" in helped.stdout



def test_the_starting_pushback_never_falls_to_nothing_around_the_guess():
    """The estimate is the distance from the guessed import time: right at the guess it was ~0, and a client
    that takes a pushback at its word called again at once, and again."""
    from audiogan_server.forwarding import STARTING_FLOOR_S, STARTING_S

    front = ForwardingServicer(Metrics())
    for elapsed in (STARTING_S - 0.001, STARTING_S, STARTING_S + 0.001):
        front.began = time.perf_counter() - elapsed
        assert front.pushback() >= STARTING_FLOOR_S
    front.began = time.perf_counter()
    assert front.pushback() >= STARTING_S - 0.1  # just started: about the whole guess


@pytest.mark.parametrize("entry", [("-m", "audiogan_server.main"),
                                   ("-c", "import sys; from audiogan_server.entry import main; sys.exit(main())")],
                         ids=["python -m", "console script"])
def test_ctrl_c_at_any_moment_of_start_up_is_one_line_not_a_traceback(entry):
    """SIGINT at several moments of start-up, through both ways in (the console script's entry point, as its
    wrapper calls it, and the module): before the server's own handlers (imports, binding) it ends with one
    line and exit 130; once they are in, while loading, with the "stopped while loading" line and exit 0."""
    for delay in (0.05, 0.15, 0.3, 0.6):
        process = subprocess.Popen([sys.executable, *entry, "--port", "0", "--voice", "none", "--timbre", "none"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(delay)  # when the interrupt comes, not a timed assertion
            process.send_signal(signal.SIGINT)
            _, log = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert "Traceback" not in log, (delay, log)
        if process.returncode == 130:
            assert log.strip() == "audiogan-server: interrupted while starting", (delay, log)
        else:
            assert process.returncode == 0 and "stopped while loading the models" in log, (delay, log)
