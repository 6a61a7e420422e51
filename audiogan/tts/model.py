"""A FastPitch-style acoustic model: phonemes -> mel in one parallel pass.

Encoder (feed-forward transformer) -> duration, pitch and energy predictors -> length regulator ->
decoder -> the vocoder's log-mel. Training uses durations from the learned aligner (``alignment``) and the
recording's own per-phoneme pitch and energy; inference uses the predictors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiogan import weights
from audiogan.audio.mel import MelConfig
from audiogan.tts.alignment import Aligner


@dataclass
class AcousticConfig:
    dim: int = 192
    heads: int = 2
    ff_dim: int = 768
    ff_kernel: int = 3
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.1
    # Kept apart from `dropout` and off by default: any attention dropout drops PyTorch's CPU attention off
    # its fused kernel onto the math path, 3-4x slower per step (measured on the 2-core machine).
    attention_dropout: float = 0.0
    predictor_dim: int = 256
    predictor_kernel: int = 3
    predictor_dropout: float = 0.2
    n_speakers: int = 1
    align_dim: int = 80
    mel: MelConfig = field(default_factory=MelConfig)


class FFTBlock(nn.Module):
    """Self-attention plus a convolutional feed-forward, post-norm, padding kept at zero."""

    def __init__(self, dim: int, heads: int, ff_dim: int, kernel: int, dropout: float,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff_in = nn.Conv1d(dim, ff_dim, kernel, padding=kernel // 2)
        self.ff_out = nn.Conv1d(ff_dim, dim, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``self.attn``'s self-attention (its weights) through ``scaled_dot_product_attention``: with a
        padding mask, MultiheadAttention's own path runs a separate masked softmax, 2-3x slower on CPU."""
        b, t, d = x.shape
        heads = self.attn.num_heads
        q, k, v = (y.reshape(b, t, heads, d // heads).transpose(1, 2)
                   for y in F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1))
        dropout = self.attn.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], dropout_p=dropout)
        return self.attn.out_proj(a.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        x = self.norm1(x + self.drop(self.attend(x, mask))) * keep
        # Padding is re-zeroed between the convolutions (the first one's bias would leak into neighbours),
        # so an utterance in a padded batch gets exactly its solo result.
        hidden = F.relu(conv_frames(self.ff_in, x)) * keep
        return self.norm2(x + self.drop(conv_frames(self.ff_out, hidden))) * keep


def conv_frames(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` over time on frames laid out [B, T, C] -> [B, T, C'], without transposing them in memory.

    Viewed as a one-row image in channels-last layout, the convolution takes oneDNN's blocked path:
    about half the time of ``conv(x.transpose(1, 2))`` for a batch of 8 sentences on a 2-core CPU
    (benchmarks/RESULTS.md, "channels-last convolutions"). Same weights, same sums.
    """
    pad = conv.padding[0]
    image = x.transpose(1, 2)[:, :, None]  # [B, C, 1, T] whose memory is still [B, T, C]: channels-last
    out = F.conv2d(image, conv.weight[:, :, None], conv.bias, padding=(0, pad),
                   dilation=(1, conv.dilation[0]), groups=conv.groups)
    return out[:, :, 0].transpose(1, 2)


class Transformer(nn.Module):
    def __init__(self, layers: int, cfg: AcousticConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(FFTBlock(cfg.dim, cfg.heads, cfg.ff_dim, cfg.ff_kernel, cfg.dropout,
                                             cfg.attention_dropout)
                                    for _ in range(layers))
        self.pos_scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_scale * positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return x


def positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table[None]


class Predictor(nn.Module):
    """Two conv layers -> one value per phoneme (log-duration, pitch or energy)."""

    def __init__(self, dim: int, hidden: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(dim, hidden, kernel, padding=kernel // 2),
                                    nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden), nn.LayerNorm(hidden)])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)
        h = x * keep
        for conv, norm in zip(self.convs, self.norms, strict=True):
            # Re-zero the padding after each layer, so a batched sentence sees exactly what it sees alone.
            h = self.drop(norm(F.relu(conv_frames(conv, h)))) * keep
        return self.out(h).squeeze(-1) * mask


def regulate(x: torch.Tensor, durations: torch.Tensor,
             max_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each phoneme's vector for its duration: x [B, N, D], durations [B, N] (ints) -> [B, T, D] + mask."""
    ends = durations.cumsum(1)
    total = ends[:, -1]
    frames = int(max_frames if max_frames is not None else max(int(total.max()), 1))
    t = torch.arange(frames, device=x.device)[None, :, None]
    assign = ((t >= (ends - durations)[:, None, :]) & (t < ends[:, None, :])).to(x.dtype)  # [B, T, N]
    return assign @ x, t[0, :, 0][None] < total[:, None]


def phoneme_average(values: torch.Tensor, alignment: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-phoneme mean of frame values [B, T] over frames with weight 1, via a hard alignment [B, T, N]."""
    w = alignment * weights[:, :, None]
    return (w * values[:, :, None]).sum(1) / w.sum(1).clamp(min=1.0)


class AcousticModel(nn.Module):
    def __init__(self, cfg: AcousticConfig, n_symbols: int) -> None:
        super().__init__()
        self.cfg = cfg
        n_mels = cfg.mel.n_mels
        self.embed = nn.Embedding(n_symbols, cfg.dim, padding_idx=0)
        self.speaker = nn.Embedding(cfg.n_speakers, cfg.dim) if cfg.n_speakers > 1 else None
        self.encoder = Transformer(cfg.encoder_layers, cfg)
        args = (cfg.dim, cfg.predictor_dim, cfg.predictor_kernel, cfg.predictor_dropout)
        self.duration, self.pitch, self.energy = Predictor(*args), Predictor(*args), Predictor(*args)
        self.pitch_embed = nn.Conv1d(1, cfg.dim, 3, padding=1)
        self.energy_embed = nn.Conv1d(1, cfg.dim, 3, padding=1)
        self.decoder = Transformer(cfg.decoder_layers, cfg)
        self.to_mel = nn.Linear(cfg.dim, n_mels)
        self.aligner = Aligner(cfg.dim, n_mels, cfg.align_dim)

    def load_export(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Exported weights: everything but the training-only aligner, which keeps its current values."""
        weights.load_into(self, state, source, skip=("aligner.",))

    def encode(self, tokens: torch.Tensor, speakers: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = tokens != 0
        x = self.embed(tokens)
        if self.speaker is not None:
            # Unnamed means speaker 0: the first folder's recordings (pseudo-speakers of augmentation follow).
            if speakers is None:
                speakers = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
            x = x + self.speaker(speakers)[:, None, :]
        return self.encoder(x, mask), mask

    def _decode(self, h: torch.Tensor, mask: torch.Tensor, pitch: torch.Tensor, energy: torch.Tensor,
                durations: torch.Tensor, max_frames: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = h + self.pitch_embed(pitch[:, None]).transpose(1, 2) + self.energy_embed(energy[:, None]).transpose(1, 2)
        frames, frame_mask = regulate(h * mask[..., None], durations, max_frames)
        out = self.to_mel(self.decoder(frames, frame_mask))
        return out.transpose(1, 2), frame_mask

    def forward(self, tokens: torch.Tensor, mel: torch.Tensor, mel_lens: torch.Tensor, pitch: torch.Tensor,
                energy: torch.Tensor, voiced: torch.Tensor, prior: torch.Tensor,
                speakers: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Teacher-forced pass. mel [B, n_mels, T]; pitch/energy/voiced per frame [B, T]."""
        from audiogan.tts.alignment import monotonic_alignment_search

        h, mask = self.encode(tokens, speakers)
        text_lens = mask.sum(1)
        log_probs = self.aligner(mel, self.embed(tokens).transpose(1, 2), mask, prior)
        hard = monotonic_alignment_search(log_probs.detach(), text_lens, mel_lens)
        durations = hard.sum(1).long()
        frame_mask = torch.arange(mel.shape[-1], device=mel.device)[None] < mel_lens[:, None]
        target_pitch = phoneme_average(pitch, hard, voiced * frame_mask)
        target_energy = phoneme_average(energy, hard, frame_mask.to(energy.dtype))
        pred_mel, _ = self._decode(h, mask, target_pitch, target_energy, durations, mel.shape[-1])
        return {"mel": pred_mel, "log_duration": self.duration(h, mask), "pitch": self.pitch(h, mask),
                "energy": self.energy(h, mask), "durations": durations, "target_pitch": target_pitch,
                "target_energy": target_energy, "log_probs": log_probs, "hard": hard, "text_mask": mask,
                "frame_mask": frame_mask}

    @torch.no_grad()
    def infer(self, tokens: torch.Tensor, speed: float | torch.Tensor = 1.0, pitch_shift: float | torch.Tensor = 0.0,
              speakers: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B, N] (0 = pad) -> (mel [B, n_mels, T], frames per item [B], frames per token [B, N]);
        ``speed`` and ``pitch_shift`` (normalised units) are one value or one per token [B, N]."""
        h, mask = self.encode(tokens, speakers)
        durations = (torch.exp(self.duration(h, mask)) - 1).clamp(min=0) / speed
        durations = (durations.round().clamp(min=1) * mask).long()
        pitch = (self.pitch(h, mask) + pitch_shift) * mask
        mel, frame_mask = self._decode(h, mask, pitch, self.energy(h, mask), durations, None)
        return mel, frame_mask.sum(1), durations
