"""Server settings: a typed dataclass, from YAML (``--config``) and command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from audiogan.config import ConfigError


@dataclass
class Limits:
    max_concurrent: int = 64          # RPCs in flight; more -> RESOURCE_EXHAUSTED at once, with a pushback
    # Work items (sentences, vocoder pieces, notes) waiting for one model; more -> RESOURCE_EXHAUSTED. A call
    # queues at most max(batching.max_batch, max_notes) items at once, so at the defaults (64 x 64) a call
    # once admitted never finds a queue full, nor does a stream half-way through.
    max_queue: int = 4096
    max_text_chars: int = 100_000
    max_upload_bytes: int = 50 * 1024 * 1024
    upload_idle_seconds: float = 15.0  # ConvertTimbre: an upload that sends nothing this long is cut off
    max_audio_seconds: float = 600.0  # of audio produced by one call
    max_notes: int = 64               # per GenerateNotes call, and interpolation steps
    max_conversions: int = 4          # ConvertTimbre calls converting or waiting their turn; more -> RESOURCE_EXHAUSTED
    # Memory for unary replies being made at once, estimated from their audio (audiogan_server.budget): a
    # call that does not fit waits its turn. 600 s at 96 kHz takes about 770 MB, 10 s at 16 kHz 4 MB.
    max_reply_mb: float = 2048.0
    min_sample_rate: int = 8000
    max_sample_rate: int = 96000

    def check(self) -> None:
        """Settings under which the server would refuse every call, or never answer, are refused at start."""
        for name in ("max_concurrent", "max_queue", "max_text_chars", "max_upload_bytes", "upload_idle_seconds",
                     "max_audio_seconds", "max_notes", "max_conversions", "max_reply_mb", "min_sample_rate"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"limits.{name} must be above 0, got {getattr(self, name)}")
        if self.min_sample_rate > self.max_sample_rate:
            raise ConfigError(f"limits: min_sample_rate ({self.min_sample_rate}) is above max_sample_rate "
                              f"({self.max_sample_rate})")


@dataclass
class Batching:
    max_batch: int = 16
    max_wait_ms: float = 5.0          # how long the first request of a batch waits for company
    # Largest streamed chunk, in mel frames (64 x 256 / 16 kHz = 1 s). Larger gives more audio per second of
    # compute (each chunk carries its context) but can delay the small first chunks of calls queued behind
    # it: at 128, paragraph streams on 2 cores made 40-75 % more audio, and time to first audio at p99 rose
    # (benchmarks/RESULTS.md, 2026-12-07).
    stream_chunk_frames: int = 64
    first_chunk_frames: int = 8       # a short first chunk: time to first audio
    # Each chunk up to this many times the last, until stream_chunk_frames. Every chunk is vocoded with the
    # receptive field's context on both sides, so small chunks cost several times their own frames.
    chunk_growth: float = 2.0

    def check(self) -> None:
        if self.max_batch < 1:  # the batcher would spin without yielding, and the server stop answering
            raise ConfigError(f"batching.max_batch must be 1 or more, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"batching.max_wait_ms must be 0 or more, got {self.max_wait_ms}")
        if not 1 <= self.first_chunk_frames <= self.stream_chunk_frames:
            raise ConfigError(f"batching: need 1 <= first_chunk_frames ({self.first_chunk_frames}) <= "
                              f"stream_chunk_frames ({self.stream_chunk_frames})")
        if self.chunk_growth <= 1:
            raise ConfigError(f"batching.chunk_growth must be > 1, got {self.chunk_growth}")

    def next_chunk(self, frames: int) -> int:
        """The size of the chunk after one of ``frames``."""
        return min(self.stream_chunk_frames, max(frames + 1, int(frames * self.chunk_growth)))


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051                 # 0 = any free port (printed at start)
    device: str = "auto"
    threads: int = 0                  # torch intra-op threads; 0 = torch's default
    vocoders: list[str] = field(default_factory=lambda: ["default"])
    # fast Griffin-Lim iterations refining iSTFT vocoders' phase: more is better and slower; -1 = each card's
    phase_iterations: int = -1
    # where iSTFT vocoders' phase comes from: "network" (the phase head) or "rtpghi"; "" = each card's
    phase: str = ""
    # TTS voices (bundled names or .safetensors paths); "default" is skipped quietly when no voice is bundled,
    # and ["none"] serves no text input.
    voices: list[str] = field(default_factory=lambda: ["default"])
    # a file of the user's pronunciations applied by every voice (audiogan/tts/lexicon.py); "" = none
    lexicon: str = ""
    # timbre (note) models, likewise; the first is the default
    timbres: list[str] = field(default_factory=lambda: ["default"])
    grace_seconds: float = 10.0       # SIGTERM: how long in-flight calls may finish
    # The shortest time between a client's pings on a connection that sends it nothing: clients ping a
    # silent server to find it dead (audiogan-client every 20 s), and gRPC closes the connection of one
    # that pings more often ("too_many_pings"), failing its calls. gRPC's own default is 5 minutes.
    min_ping_seconds: float = 10.0
    metrics_port: int = 0             # Prometheus /metrics on this port; 0 = off
    tls_cert: str = ""
    tls_key: str = ""
    log_format: str = "text"          # text | json
    limits: Limits = field(default_factory=Limits)
    batching: Batching = field(default_factory=Batching)
