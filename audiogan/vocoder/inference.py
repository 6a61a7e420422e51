"""Inference front door: ``Vocoder.load()`` then ``vocoder(mel)``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogan import weights
from audiogan.audio.io import float_samples
from audiogan.audio.mel import MelSpectrogram
from audiogan.config import from_dict, is_int
from audiogan.vocoder.model import VocoderConfig, build_generator
from audiogan.vocoder.pghi import PhaseTrack
from audiogan.vocoder.phases import INFERENCE_PHASES


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" (a GPU where there is one), or the device named, refused here rather than deep in a model."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:  # torch lists its two dozen device types
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda"):  # mps, xpu, meta...: not what the models run on
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda or cuda:N")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: no CUDA GPU is available here; use auto or cpu")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return chosen


def with_phase_iterations(config: VocoderConfig, iterations: int) -> VocoderConfig:
    if not is_int(iterations) or iterations < 0:
        raise ValueError(f"phase_iterations must be a whole number >= 0, got {iterations!r}")
    return _with_istft(config, "phase refinement", bool(iterations), phase_iterations=iterations)


def with_inference_phase(config: VocoderConfig, source: str) -> VocoderConfig:
    if source not in INFERENCE_PHASES:
        raise ValueError(f"unknown phase source {source!r}; choose from {INFERENCE_PHASES}")
    return _with_istft(config, f"{source} phase", source != "network", inference_phase=source)


def integrates_phase(config: VocoderConfig) -> bool:
    """Whether the phase is integrated from the magnitude (RTPGHI) rather than the network's."""
    g = config.generator
    return g.kind == "istft" and g.istft.inference_phase == "rtpghi"


def _with_istft(config: VocoderConfig, what: str, needs_istft: bool, **changes: Any) -> VocoderConfig:
    """``config`` with iSTFT inference settings changed; other generators take only the settings they
    already have (no refinement, the network's phase)."""
    if config.generator.kind != "istft":
        if needs_istft:
            raise ValueError(f"{what} needs an iSTFT generator; this one is {config.generator.kind!r}")
        return config
    istft = replace(config.generator.istft, **changes)
    return replace(config, generator=replace(config.generator, istft=istft))


@dataclass
class Window:
    """Where a slice of a conditioned mel sits in its utterance, for a vocoder that integrates its phase
    along the utterance: the stream's track, the slice's first frame, and how far the track may store."""

    track: PhaseTrack
    first_frame: int
    keep: int


# Mels of audio in [-1, 1] stay below ln(n_fft / 2); e**20 is far above any real signal's magnitude.
MEL_CEILING = 20.0
# Output above the knee is bent smoothly towards the ceiling instead of cut flat at full scale: a loud
# word (SSML "+12dB") no longer clips into a square wave. Sample by sample, so a stream's chunks still
# join into exactly the whole; below the knee the samples are untouched.
LIMIT_KNEE, LIMIT_CEILING = 0.9, 0.99


def soft_limit(wave: torch.Tensor) -> torch.Tensor:
    """Samples within +-LIMIT_KNEE as they are; beyond it a tanh curve, slope 1 at the knee, that never
    reaches LIMIT_CEILING."""
    span = LIMIT_CEILING - LIMIT_KNEE
    over = (wave.abs() - LIMIT_KNEE).clamp(min=0.0)
    return torch.where(over > 0, wave.sign() * (LIMIT_KNEE + span * torch.tanh(over / span)), wave)


class Vocoder:
    """A trained generator plus its mel front end.

    ``vocoder(mel)`` maps a log-mel [n_mels, T] (or a batch [B, n_mels, T]) to audio [T * hop]
    (or [B, T * hop]) at ``vocoder.sample_rate``.
    """

    def __init__(self, generator: torch.nn.Module, config: VocoderConfig, card: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.device = pick_device(device)
        self.config = config
        self.card = card or {}
        generator.remove_weight_norm()
        self.generator = generator.eval().to(self.device)
        self.mel_transform = MelSpectrogram(config.mel).to(self.device)
        self.context_frames: int = generator.context_frames
        self.integrates_phase = integrates_phase(config)

    @classmethod
    def load(cls, name_or_path: str | Path = "default", device: str | torch.device = "auto",
             phase_iterations: int | None = None, phase: str | None = None) -> Vocoder:
        """``phase`` overrides where an iSTFT model's phase comes from ("network" or "rtpghi", integrated
        from the magnitude), ``phase_iterations`` the card's fast Griffin-Lim refinement of it: more is
        closer to the recording and slower (see benchmarks/RESULTS.md for the trade)."""
        path, card, config = cls.settings(name_or_path, phase_iterations, phase)
        generator = build_generator(config)
        weights.load_into(generator, {k: v.float() for k, v in weights.read_weights(path).items()}, path)
        return cls(generator, config, card, device)

    @staticmethod
    def settings(name_or_path: str | Path = "default", phase_iterations: int | None = None,
                 phase: str | None = None) -> tuple[Path, dict[str, Any], VocoderConfig]:
        """The weights file, its card and the config :meth:`load` would run them with, without loading them."""
        path = weights.resolve(name_or_path, "vocoder")
        card = weights.read_card(path, "vocoder")
        config = from_dict(VocoderConfig, card["config"])
        if phase is not None:
            config = with_inference_phase(config, phase)
        if phase_iterations is not None:
            config = with_phase_iterations(config, phase_iterations)
        return path, card, config

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length

    @property
    def needs_conditioning(self) -> bool:
        """Whether :meth:`condition` adds to the mel (a pass over the whole utterance) or returns it as is."""
        return bool(self.generator.conditions)

    @torch.inference_mode()
    def mel(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Audio at ``sample_rate`` -> the log-mel this vocoder was trained on."""
        wave = float_samples(wave).to(self.device)
        if wave.numel() == 0:
            raise ValueError("audio is empty (0 samples)")
        if not torch.isfinite(wave).all():
            raise ValueError("audio contains NaN or Inf samples")
        return self.mel_transform(wave)

    def _check(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        dtype = mel.dtype if isinstance(mel, torch.Tensor) else np.asarray(mel).dtype
        if not (dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)):
            # a complex mel would otherwise lose its imaginary part with only a warning
            raise ValueError(f"mel holds {dtype} values; a mel is real floats (natural-log magnitudes)")
        mel = torch.as_tensor(mel, dtype=torch.float32)
        if mel.dim() not in (2, 3):
            raise ValueError(f"mel must be [n_mels, frames] or [batch, n_mels, frames], got shape {tuple(mel.shape)}")
        n_mels = self.config.mel.n_mels
        if mel.shape[-2] != n_mels and mel.shape[-1] == n_mels:
            raise ValueError(f"mel has shape {list(mel.shape)}, the vocoder takes [{n_mels}, frames]: stored as "
                             "[frames, n_mels]? transpose it")
        if mel.shape[-2] != self.config.mel.n_mels:
            raise ValueError(f"mel has {mel.shape[-2]} mel bins, this vocoder expects {self.config.mel.n_mels}")
        if mel.shape[-1] == 0:
            raise ValueError("mel has 0 frames")
        if not torch.isfinite(mel).all():
            raise ValueError("mel contains NaN or Inf values")
        if mel.max() > MEL_CEILING:  # would overflow into NaN audio, blamed on the output otherwise
            raise ValueError(f"mel values reach {mel.max().item():.4g}; the vocoder takes natural-log magnitudes "
                             f"from ln({self.config.mel.log_floor:g}) = {np.log(self.config.mel.log_floor):.1f} to a "
                             f"few units: a linear or power mel?")
        return mel.to(self.device)

    def _run(self, cond: torch.Tensor) -> torch.Tensor:
        if self.integrates_phase:
            return torch.stack(self.generate(list(cond)))
        return soft_limit(self.generator(cond))

    def phase_track(self) -> PhaseTrack | None:
        """A stream's phase state, for a vocoder that integrates phase (None for one that predicts it)."""
        return PhaseTrack(self.config.mel.n_fft, self.hop_length) if self.integrates_phase else None

    def span(self, total: int, start: int, end: int) -> tuple[int, int, int]:
        """Frames [lo, hi) of an utterance of ``total`` frames that vocode frames [start, end) exactly, and
        the frame up to which a phase track may store what it integrates over them: the iSTFT windows of
        the last kept samples reach n_fft / 2 past them, and what lies further out sees a cut-off context
        (unless the utterance really ends there)."""
        lo, hi = max(0, start - self.context_frames), min(total, end + self.context_frames)
        keep = hi if hi == total else end + self.config.mel.n_fft // (2 * self.hop_length)
        return lo, hi, keep

    @torch.inference_mode()
    def condition(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        """A whole mel [n_mels, T] -> the generator's input [C, T], to slice for chunks (:meth:`generate`).

        For most generators that is the mel itself; a harmonic-phase generator adds its pitch track and
        the fundamental's phase integrated from the first frame, which chunks cannot recompute alone.
        """
        mel = self._check(mel)
        if mel.dim() != 2:
            raise ValueError("condition() takes one [n_mels, frames] mel")
        return self.generator.condition(mel[None])[0]

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        mel = self._check(mel)
        if mel.dim() == 2:
            return self._run(self.generator.condition(mel[None]))[0]
        return self._run(self.generator.condition(mel))

    @torch.inference_mode()
    def batch(self, mels: Sequence[torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
        """Vocode mels of different lengths in one padded pass; each result equals vocoding it alone."""
        items = [self._check(m) for m in mels]
        if any(m.dim() != 2 for m in items):
            raise ValueError("batch() takes a list of [n_mels, frames] mels")
        return self.generate([self.generator.condition(m[None])[0] for m in items])

    @torch.inference_mode()
    def generate(self, conds: Sequence[torch.Tensor], windows: Sequence[Window | None] | None = None,
                 ) -> list[torch.Tensor]:
        """Audio for conditioned inputs (:meth:`condition`, or slices of one) in one padded pass.

        Padding only disturbs the last ``context_frames`` of a shorter item, so those tails are
        recomputed from their own frames in a second, small pass. With an integrated phase, ``windows``
        places slices in their streams (None: a whole utterance).
        """
        if not conds:
            return []
        if self.integrates_phase:
            return self._integrate(conds, windows or [None] * len(conds))
        padded, lengths = self._pad(conds)
        longest = padded.shape[-1]
        out = self._run(padded)
        hop, ctx = self.hop_length, self.context_frames
        results = []
        for i, (c, t) in enumerate(zip(conds, lengths, strict=True)):
            wave = out[i, : t * hop].clone()
            if t < longest:
                start = max(0, t - ctx)
                wave[start * hop:] = self._window(c.to(self.device), start, t)
            results.append(wave)
        return results

    def _pad(self, conds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        """Conditioned inputs of different lengths in one batch, padded with silence, and their lengths."""
        lengths = [c.shape[-1] for c in conds]
        padded = torch.zeros((len(conds), conds[0].shape[0], max(lengths)), device=self.device)
        padded[:, : self.config.mel.n_mels] = float(np.log(self.config.mel.log_floor))
        for i, c in enumerate(conds):
            padded[i, :, : c.shape[-1]] = c.to(self.device)
        return padded, lengths

    def _integrate(self, conds: Sequence[torch.Tensor], windows: Sequence[Window | None]) -> list[torch.Tensor]:
        """The magnitudes in one padded pass (shorter items' tails recomputed alone), then each item's phase
        integrated along its frames, then the inverse STFT."""
        g = self.generator
        padded, lengths = self._pad(conds)
        longest = padded.shape[-1]
        log_mags = g.spectrum(padded)[0]
        results = []
        for i, (c, t, window) in enumerate(zip(conds, lengths, windows, strict=True)):
            log_mag = log_mags[i, :, :t].clone()
            if t < longest:
                start = max(0, t - self.context_frames)
                lo = max(0, start - self.context_frames)
                log_mag[:, start:] = g.spectrum(c[None, :, lo:t].to(self.device))[0][0, :, start - lo:]
            if window is None:
                window = Window(self.phase_track(), 0, t)
            phase = window.track.extend(log_mag.cpu().numpy(), window.first_frame, window.keep)
            phase_t = torch.from_numpy(phase).to(device=self.device, dtype=torch.float32)
            results.append(soft_limit(g.synthesize(log_mag[None], phase_t[None])[0]))
        return results

    def _window(self, cond: torch.Tensor, start: int, end: int, track: PhaseTrack | None = None) -> torch.Tensor:
        """Audio for frames [start, end) of a conditioned input, computed from that span plus its context."""
        lo, hi, keep = self.span(cond.shape[-1], start, end)
        if track is None:
            wave = self._run(cond[None, :, lo:hi])[0]
        else:
            wave = self._integrate([cond[:, lo:hi]], [Window(track, lo, keep)])[0]
        hop = self.hop_length
        return wave[(start - lo) * hop: (end - lo) * hop]

    @torch.inference_mode()
    def stream(self, mel: torch.Tensor | np.ndarray, chunk_frames: int = 64) -> Iterator[torch.Tensor]:
        """Yield audio chunk by chunk; concatenated they equal ``vocoder(mel)`` (overlap = receptive field)."""
        mel = self._check(mel)
        if mel.dim() != 2:
            raise ValueError("stream() takes one [n_mels, frames] mel")
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        cond = self.generator.condition(mel[None])[0]
        track = self.phase_track()
        for start in range(0, cond.shape[-1], chunk_frames):
            yield self._window(cond, start, min(start + chunk_frames, cond.shape[-1]), track)

    @torch.inference_mode()
    def copy_synthesize(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Audio -> mel -> audio: the vocoder's reconstruction of a recording at ``sample_rate``."""
        return self(self.mel(wave))
