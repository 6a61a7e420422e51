"""Frame-rate vocoder: ConvNeXt backbone + iSTFT head (Vocos, Siuzdak 2023).

All layers run at the mel frame rate; only the final inverse STFT touches sample rate, which is why
this generator is an order of magnitude cheaper than transposed-conv upsampling. The spectral heads
(magnitude prior, harmonic phase) are in :mod:`audiogan.vocoder.heads`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiogan.audio.mel import MelConfig
from audiogan.vocoder.heads import (
    MelMagnitudePrior,
    MelProjection,
    PitchTracker,
    fundamental_phase,
    harmonic_phase,
)
from audiogan.vocoder.phases import INFERENCE_PHASES

PHASE_HEADS = ("direct", "vector", "harmonic")
HEAD_PARTS = {"direct": 2, "vector": 3, "harmonic": 4}  # per bin: log-magnitude, then the phase's parts


@dataclass
class ISTFTNetConfig:
    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    kernel_size: int = 7
    layer_scale_init: float = 0.125  # 1 / num_layers, as Vocos
    # Add the mel spread over the linear bins to the predicted log-magnitude (a learned correction).
    magnitude_prior: bool = False
    # Multiplicative updates that give the predicted magnitude exactly the input mel (0: off); see
    # heads.MelProjection for why log-domain training leaves it ~3 dB short.
    mel_projection: int = 0
    # Fast Griffin-Lim iterations from the predicted phase, at inference only (0: off). Each costs about
    # one STFT and one iSTFT and widens the streaming context by n_fft / hop frames.
    phase_iterations: int = 0
    # Where inference takes the phase from: "network" (the phase head below) or "rtpghi", integrated from
    # the predicted magnitude alone (audiogan/vocoder/pghi.py). Training always uses the network's.
    inference_phase: str = "network"
    # "direct": one phase value per bin and frame (Vocos). "vector": the phase as the angle of a
    # predicted (re, im) pair, which has no wrap-around for the network to learn. "harmonic": a pitch
    # tracker's integrated fundamental phase times each bin's harmonic number, gated per bin against a
    # "vector" phase.
    phase: str = "direct"
    pitch_channels: int = 256


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFT(nn.Module):
    """Inverse STFT with 'same' padding: T frames -> T * hop samples, frame t centred on t*hop + hop/2.

    That is exactly where :class:`~audiogan.audio.MelSpectrogram` centres its frames, so the output
    lines up with the analysis and chunks can be stitched sample-exactly.
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop_length
        self.pad = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex [B, n_fft // 2 + 1, T] -> real [B, T * hop]."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        t = frames.shape[-1]
        y = self._overlap_add(frames)
        env = self._overlap_add(self.window.square()[None, :, None].expand(1, -1, t))
        y = y[:, self.pad: y.shape[-1] - self.pad]
        env = env[:, self.pad: env.shape[-1] - self.pad]
        # Edge samples see only part of a window; the floor keeps them finite without shaping the interior.
        return y / env.clamp(min=1e-4)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, n_fft, T] -> [B, (T - 1) * hop + n_fft]. When hop divides n_fft, each frame is n_fft / hop
        hop-long pieces and overlap-add is that many shifted sums: several times faster than F.fold on CPU."""
        b, n, t = frames.shape
        if n % self.hop:
            length = (t - 1) * self.hop + n
            return F.fold(frames, (1, length), kernel_size=(1, n), stride=(1, self.hop))[:, 0, 0]
        pieces = n // self.hop
        parts = frames.reshape(b, pieces, self.hop, t)
        out = frames.new_zeros(b, self.hop, t + pieces - 1)
        for j in range(pieces):
            out[..., j: j + t] += parts[:, j]
        return out.transpose(1, 2).reshape(b, -1)


class FramedSTFT(nn.Module):
    """STFT with the iSTFT head's framing: T * hop samples -> T frames, frame t centred on t*hop + hop/2."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.pad = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = F.pad(wave.float()[:, None], (self.pad, self.pad), mode="reflect")[:, 0]
        return torch.stft(x, self.n_fft, self.hop, self.n_fft, self.window, center=False, return_complex=True)


def fast_griffin_lim(mag: torch.Tensor, phase: torch.Tensor, stft: FramedSTFT, istft: ISTFT,
                     iterations: int, momentum: float = 0.99) -> torch.Tensor:
    """Waveform from a magnitude and a starting phase, refined by fast Griffin-Lim (Perraudin, Balazs &
    Sondergaard 2013): each iteration keeps the phase of the nearest consistent spectrum, extrapolated
    by ``momentum``. From a learned phase a few iterations suffice, where a random start needs dozens."""
    spec = torch.polar(mag, phase)
    previous = None
    for _ in range(iterations):
        x = stft(istft(spec))
        projected = mag * x / x.abs().clamp(min=1e-8)
        spec = projected if previous is None else projected + momentum * (projected - previous)
        previous = projected
    if iterations:
        spec = mag * spec / spec.abs().clamp(min=1e-8)
    return istft(spec)


class ISTFTNetGenerator(nn.Module):
    """Mel [B, n_mels, T] -> waveform [B, T * hop] through magnitude and phase of an STFT.

    With harmonic phase the generator's input is :meth:`condition` (mel, f0 and the fundamental's
    integrated phase, computed over the whole utterance); chunks of it vocode exactly like the whole.
    A plain mel is conditioned on the fly.
    """

    def __init__(self, mel: MelConfig, config: ISTFTNetConfig) -> None:
        super().__init__()
        if config.phase not in PHASE_HEADS:
            raise ValueError(f"unknown phase head {config.phase!r}; choose from {PHASE_HEADS}")
        if config.inference_phase not in INFERENCE_PHASES:
            raise ValueError(f"unknown inference phase {config.inference_phase!r}; choose from {INFERENCE_PHASES}")
        self.config = config
        self.mel_config = mel
        self.n_mels, self.n_fft, self.hop = mel.n_mels, mel.n_fft, mel.hop_length
        self.bins = mel.n_fft // 2 + 1
        self.embed = nn.Conv1d(mel.n_mels, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate_dim, config.kernel_size, config.layer_scale_init)
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        harmonic = config.phase == "harmonic"
        # direct: log-magnitude, phase. vector: log-magnitude, phase as (re, im). harmonic: the same and a gate.
        self.out = nn.Linear(config.dim, self.bins * HEAD_PARTS[config.phase])
        self.istft = ISTFT(mel.n_fft, mel.hop_length)
        self.stft = FramedSTFT(mel.n_fft, mel.hop_length)
        self.prior = MelMagnitudePrior(mel) if config.magnitude_prior else None
        self.projection = MelProjection(mel, config.mel_projection) if config.mel_projection else None
        self.pitch = PitchTracker(mel.n_mels, config.pitch_channels) if harmonic else None
        self.apply(self._init)
        if self.prior is not None:  # start from the prior exactly
            nn.init.zeros_(self.out.weight[: self.bins])
        half = config.kernel_size // 2
        # Backbone convs, the overlap of neighbouring iSTFT windows, and as much again per refinement.
        overlap = mel.n_fft // mel.hop_length
        self.context_frames = half * (config.num_layers + 1) + overlap * (1 + config.phase_iterations) + 1

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def conditions(self) -> bool:
        """Whether :meth:`condition` adds to the mel: only the harmonic head's pitch track does."""
        return self.pitch is not None

    def condition(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel [B, n_mels, T] -> the generator's input: the mel itself, or with harmonic phase
        [mel; f0; theta] where theta is integrated from the first frame (so slice it, don't recompute)."""
        if self.pitch is None:
            return mel
        return self._with_pitch(mel, self.pitch(mel))

    def _with_pitch(self, mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        f0 = f0.detach()  # the tracker learns from pitch targets, not through the phase
        theta = fundamental_phase(f0, self.hop, self.mel_config.sample_rate)
        return torch.cat([mel, f0[:, None].to(mel.dtype), theta[:, None].to(mel.dtype)], dim=1)

    def spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioned input -> (log-magnitude, phase), each [B, n_fft/2+1, T] float32."""
        log_mag, h = self._magnitude(x)
        if self.config.phase == "direct":
            return log_mag, h[:, self.bins:]
        if self.config.phase == "vector":  # the angle needs no unit vector: atan2 ignores the length
            b = self.bins
            return log_mag, torch.atan2(h[:, 2 * b:3 * b], h[:, b:2 * b])
        harm, (cos, sin), gate = self._phases(x, h)
        # Unit vectors mixed, then their angle: real arithmetic only (compiles, no complex autograd).
        re = gate * torch.cos(harm) + (1 - gate) * cos
        im = gate * torch.sin(harm) + (1 - gate) * sin
        return log_mag, torch.atan2(im, re)

    def phase_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For harmonic-phase generators: (log-magnitude, harmonic phase, free phase, gate), which
        :meth:`spectrum` mixes; for diagnosis (how much each phase is used, what each alone sounds like)."""
        if self.pitch is None:
            raise ValueError("phase_parts needs a harmonic-phase generator (phase: harmonic)")
        log_mag, h = self._magnitude(x)
        harm, (cos, sin), gate = self._phases(x, h)
        return log_mag, harm, torch.atan2(sin, cos), gate

    def _magnitude(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's output [B, bins * heads, T] and the log-magnitude it gives."""
        mel = x[:, : self.n_mels]
        h = self.embed(mel)
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        h = self.out(self.final_norm(h.transpose(1, 2))).transpose(1, 2).float()
        b = self.bins
        log_mag = h[:, :b] if self.prior is None else h[:, :b] + self.prior(mel.float())
        if self.projection is not None:
            log_mag = self.projection(log_mag, mel)
        return log_mag, h

    def _phases(self, x: torch.Tensor, h: torch.Tensor,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Harmonic phase, the free phase as a unit vector (cos, sin), and the gate between them."""
        b = self.bins
        f0, theta = x[:, self.n_mels].float(), x[:, self.n_mels + 1].float()
        harm = harmonic_phase(theta, f0, self.n_fft, self.mel_config.sample_rate)
        return harm, self._free_phase(h), torch.sigmoid(h[:, 3 * b:])

    def _free_phase(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's (re, im) phase outputs as a unit vector (cos, sin)."""
        b = self.bins
        re, im = h[:, b:2 * b], h[:, 2 * b:3 * b]
        norm = torch.sqrt(re.square() + im.square()).clamp(min=1e-6)
        return re / norm, im / norm

    def carry_over(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """An exported state for this generator's heads: a harmonic head's output layer is a vector head's
        (log-magnitude; phase as re, im) followed by its gate, so a vector head keeps the trained free phase
        and drops the gate (the pitch tracker's tensors simply find no place)."""
        w, b = state.get("out.weight"), state.get("out.bias")
        parts = HEAD_PARTS["vector"] * self.bins
        harmonic = HEAD_PARTS["harmonic"] * self.bins
        if self.config.phase == "vector" and w is not None and b is not None and w.shape[0] == harmonic:
            return {**state, "out.weight": w[:parts], "out.bias": b[:parts]}
        return state

    def synthesize(self, log_mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Spectrum -> waveform; in eval mode the phase is refined by ``phase_iterations`` (training sees the
        network's own phase, so that the network, not the refinement, learns it)."""
        mag = torch.exp(log_mag).clamp(max=1e2)
        iterations = self.config.phase_iterations
        if self.training or not iterations:
            return self.istft(torch.polar(mag, phase))
        return fast_griffin_lim(mag, phase, self.stft, self.istft, iterations)

    def forward(self, x: torch.Tensor, details: bool = False,
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Conditioned input or plain mel -> waveform; ``details`` adds (log_mag, phase, f0 or None) for the
        trainer's spectral and pitch losses (f0 with its gradient, so it flows through DDP's forward)."""
        f0 = None
        if self.pitch is not None and x.shape[1] == self.n_mels:
            f0 = self.pitch(x)
            x = self._with_pitch(x, f0)
        log_mag, phase = self.spectrum(x)
        wave = self.synthesize(log_mag, phase)
        return (wave, log_mag, phase, f0) if details else wave

    def remove_weight_norm(self) -> None:
        """No weight norm here (LayerNorm instead); kept for the common generator interface."""
