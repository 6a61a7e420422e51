"""Frame-rate vocoder: ConvNeXt backbone + iSTFT head (Vocos, Siuzdak 2023).

All layers run at the mel frame rate; only the final inverse STFT touches sample rate, which is why
this generator is an order of magnitude cheaper than transposed-conv upsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ISTFTNetConfig:
    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    kernel_size: int = 7
    layer_scale_init: float = 0.125  # 1 / num_layers, as Vocos


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
        length = (t - 1) * self.hop + self.n_fft
        y = F.fold(frames, (1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        win_sq = self.window.square().expand(1, t, -1).transpose(1, 2)
        env = F.fold(win_sq, (1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        y = y[:, self.pad: length - self.pad]
        env = env[:, self.pad: length - self.pad]
        # Edge samples see only part of a window; the floor keeps them finite without shaping the interior.
        return y / env.clamp(min=1e-4)


class ISTFTNetGenerator(nn.Module):
    """Mel [B, n_mels, T] -> waveform [B, T * hop] through magnitude and phase of an STFT."""

    def __init__(self, n_mels: int, n_fft: int, hop_length: int, config: ISTFTNetConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Conv1d(n_mels, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate_dim, config.kernel_size, config.layer_scale_init)
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.out = nn.Linear(config.dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length)
        self.hop = hop_length
        self.apply(self._init)
        half = config.kernel_size // 2
        # Backbone convs, then the overlap of neighbouring iSTFT windows.
        self.context_frames = half * (config.num_layers + 1) + n_fft // hop_length + 1

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.out(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()
        log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)
        spec = torch.polar(mag, phase)
        return self.istft(spec)

    def remove_weight_norm(self) -> None:
        """No weight norm here (LayerNorm instead); kept for the common generator interface."""
