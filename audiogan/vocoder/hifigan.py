"""HiFi-GAN generator (Kong et al. 2020): transposed-conv upsampling with multi-receptive-field fusion."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

LRELU_SLOPE = 0.1


@dataclass
class HiFiGANConfig:
    resblock: int = 1
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Conv1d:
    conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return parametrizations.weight_norm(conv)


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, plain conv) with residuals; the V1/V2 block."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, channels, kernel) for _ in dilations)
        self.context = sum(d * (kernel - 1) // 2 + (kernel - 1) // 2 for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """One dilated conv per residual; the lighter V3 block."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)
        self.context = sum(d * (kernel - 1) // 2 for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """Mel [B, n_mels, T] -> waveform [B, T * prod(upsample_rates)]."""

    conditions = False  # condition() returns the mel itself

    def __init__(self, n_mels: int, config: HiFiGANConfig) -> None:
        super().__init__()
        if len(config.upsample_rates) != len(config.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have equal length")
        self.config = config
        block = {1: ResBlock1, 2: ResBlock2}[config.resblock]
        ch = config.upsample_initial_channel
        self.conv_pre = parametrizations.weight_norm(nn.Conv1d(n_mels, ch, 7, padding=3))
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        # Receptive field in input frames, accumulated stage by stage (in samples of each stage's rate).
        context_frames = 3.0
        rate = 1
        for u, k in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
            up = nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2)
            nn.init.normal_(up.weight, 0.0, 0.01)
            self.ups.append(parametrizations.weight_norm(up))
            ch //= 2
            rate *= u
            stage = [block(ch, ks, ds) for ks, ds in
                     zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)]
            self.blocks.append(nn.ModuleList(stage))
            context_frames += k / u / rate * u + max(b.context for b in stage) / rate
        self.conv_post = parametrizations.weight_norm(nn.Conv1d(ch, 1, 7, padding=3))
        nn.init.normal_(self.conv_post.parametrizations.weight.original1, 0.0, 0.01)
        self.hop = rate
        self.context_frames = int(context_frames + 3 / rate) + 2

    def condition(self, mel: torch.Tensor) -> torch.Tensor:
        """The mel is the whole input: chunks of it vocode like the whole."""
        return mel

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for up, stage in zip(self.ups, self.blocks, strict=True):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(b(x) for b in stage) / len(stage)
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).squeeze(1)

    def remove_weight_norm(self) -> None:
        for m in self.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
