"""Run ``audiogan-server`` as a child process on a free loopback port (tests, benchmarks, scripts)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    logs: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return "".join(self.logs)


@contextmanager
def launch(*args: str, timeout: float = 120.0, until: str = "serving:",
           entry: Sequence[str] = ("-m", "audiogan_server.main")) -> Iterator[ServerProcess]:
    """Start a server with extra command-line ``args``; wait until it logs ``until`` (by default, that it is
    serving; "listening on": while its models load); stop it after. ``entry``: what Python runs, the
    server's module or code that ends by calling its ``main``."""
    cmd = [sys.executable, *entry, "--port", "0", *args]
    process = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    logs: list[str] = []
    port = 0
    deadline = time.monotonic() + timeout
    try:
        for line in process.stderr:
            logs.append(line)
            match = re.search(r"listening on [^:]+:(\d+)", line)
            port = int(match.group(1)) if match else port
            if until in line:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start in {timeout:g} s:\n{''.join(logs)}")
        if not port or process.poll() is not None:
            raise RuntimeError(f"server failed to start:\n{''.join(logs)}")
        # Keep draining stderr so the child never blocks on a full pipe.
        threading.Thread(target=lambda: logs.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
        yield ServerProcess(process, port, logs)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
