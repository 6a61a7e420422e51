"""The adversarial training loop for vocoders: alternating D/G steps, bf16, compile, DDP, NaN guard."""

from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from audiogan import metrics, weights
from audiogan.audio.mel import MelSpectrogram
from audiogan.config import check_run_numbers, from_dict, to_dict
from audiogan.train import checkpoint as ck_io
from audiogan.train.checkpoint import load_checkpoint, read_export, rng_state, save_checkpoint, set_rng_state
from audiogan.train.data import AUDIO_SUFFIXES, ClipBank, DataConfig, find_audio, load_many, split_files
from audiogan.train.distributed import init_distributed, mean_row, rank0_decides, unwrap
from audiogan.train.pitch_targets import pitch_targets
from audiogan.train.rundir import claim_run_dir
from audiogan.train.runlog import (
    NonFiniteSteps,
    RunLog,
    checkpoint_on_interrupt,
    finish_run,
    validation_at,
)
from audiogan.vocoder.discriminators import build_discriminators
from audiogan.vocoder.istft import FramedSTFT
from audiogan.vocoder.losses import discriminator_accuracy, discriminator_loss, feature_loss, generator_loss
from audiogan.vocoder.model import VocoderConfig, build_generator
from audiogan.vocoder.spectral_losses import pitch_loss, spectral_losses

log = logging.getLogger(__name__)
METRIC_NAMES = ("d_loss", "g_adv", "g_fm", "mel_l1", "magnitude", "phase", "consistency", "pitch", "d_acc",
                "g_grad_norm", "d_grad_norm", "skipped")  # "skipped" last: the NaN streak reads it there


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    batch_size: int = 16
    segment_size: int = 8192
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_decay: float = 0.999
    lr_decay_every: int = 800  # steps per decay; HiFi-GAN decays once per LJSpeech epoch (~800 steps)
    discriminators: list[str] = field(default_factory=lambda: ["mpd", "msd"])
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    grad_clip: float = 1000.0  # high: only a guard against blow-ups, HiFi-GAN does not clip
    gain_range: tuple[float, float] = (0.3, 1.0)
    max_steps: int = 1_000_000
    max_minutes: float = 0.0  # 0 = no time limit
    bf16: bool = True
    compile: bool = True
    # torch.compile mode on CUDA: "reduce-overhead" replays CUDA graphs, for steps bound by kernel launches.
    compile_mode: str = "default"
    # TF32 tensor cores for the fp32 convolutions and matmuls (PyTorch's own default leaves matmuls in full
    # fp32); false gives the strict fp32 the reference timing is quoted in.
    tf32: bool = True
    log_every: int = 100
    validate_every_minutes: float = 3.0
    checkpoint_every_minutes: float = 5.0
    snapshot_every_minutes: float = 0.0  # >0: export an fp16 generator every so often (quality vs GPU-minutes)
    disc_head_start_steps: int = 300  # D-only steps when training starts from an exported generator
    # After that head start, the generator's learning rate and adversarial + feature-matching weights
    # ramp up linearly over this many steps: a fresh Adam state and a young discriminator otherwise
    # knock the mel loss back up (measured: 0.45 -> 0.56 within 10 joint steps without the ramp).
    gen_ramp_steps: int = 500
    nan_patience: int = 20
    seed: int = 1234
    # Regression losses on the STFT (audiogan.vocoder.spectral_losses; 0 = off): log-magnitude MSE,
    # magnitude-weighted anti-wrapped phase derivatives, consistency + real/imaginary L1 of the output.
    magnitude_weight: float = 0.0
    phase_weight: float = 0.0
    consistency_weight: float = 0.0
    # A harmonic-phase generator's pitch tracker against pYIN targets of the training clips.
    pitch_weight: float = 0.0
    # Steps on the mel and spectral losses alone before the discriminators join; they then get the
    # head start above. Regression converges in CPU-minutes where a GAN needs GPU-hours.
    adversarial_start: int = 0

    def __post_init__(self) -> None:
        check_run_numbers(self)


@dataclass
class VocoderTrainingConfig:
    name: str = "vocoder"
    model: VocoderConfig = field(default_factory=VocoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # data folder name -> license / attribution line, copied into the model card
    sources: dict[str, str] = field(default_factory=dict)


class VocoderTrainer:
    def __init__(self, config: VocoderTrainingConfig, data_dirs: list[str], run_dir: str | Path,
                 device: str = "auto", resume: str | None = None, init_generator: str | None = None,
                 warm_start: str | None = None) -> None:
        self.cfg = config
        tc = config.train
        if tc.compile_mode not in COMPILE_MODES:
            raise ValueError(f"train.compile_mode {tc.compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
        if tc.segment_size % config.model.mel.hop_length:  # the mel loss compares whole frames
            raise ValueError(f"train.segment_size {tc.segment_size} must be a multiple of the hop length "
                             f"({config.model.mel.hop_length})")
        self.dist, self.device = init_distributed(device)
        self.run_dir = Path(run_dir)
        self.run_lock = claim_run_dir(self.run_dir, resume) if self.dist.main else None
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = tc.tf32
            torch.backends.cudnn.allow_tf32 = tc.tf32
        torch.manual_seed(tc.seed + self.dist.rank)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(tc.seed + 1000 * self.dist.rank)

        self.mel = MelSpectrogram(config.model.mel).to(self.device)
        self.stft = FramedSTFT(config.model.mel.n_fft, config.model.mel.hop_length).to(self.device)
        self.G = build_generator(config.model).to(self.device)
        # Generators with an iSTFT head report their predicted spectrum; for the others the spectral
        # losses read the STFT of the waveform.
        self.spectral_head = hasattr(self.G, "spectrum")
        self.wants_pitch = getattr(self.G, "pitch", None) is not None
        if self.wants_pitch and tc.pitch_weight <= 0:
            raise ValueError("a harmonic-phase generator needs train.pitch_weight > 0: its pitch tracker "
                             "learns from pitch targets only")
        self.D = build_discriminators(tc.discriminators).to(self.device)
        fused = {"fused": True}
        self.g_params, self.d_params = list(self.G.parameters()), list(self.D.parameters())
        self.opt_g = torch.optim.AdamW(self.g_params, tc.learning_rate, betas=tuple(tc.betas),
                                       weight_decay=tc.weight_decay, **fused)
        self.opt_d = torch.optim.AdamW(self.d_params, tc.learning_rate, betas=tuple(tc.betas),
                                       weight_decay=tc.weight_decay, **fused)
        self.step = 0
        self.prior_minutes = 0.0
        self.t0 = time.monotonic()
        self.head_start_until = 0
        self.data_files: dict[str, Any] = {}
        # What the starting weights cost and where they came from ("warm_start", "continued_from"): the
        # card keeps it, so that quality per GPU-minute stays honest across runs and devices.
        self.lineage: dict[str, Any] = {}
        if sum(map(bool, (resume, init_generator, warm_start))) > 1:
            raise ValueError("choose one of resume, init_generator and warm_start")
        if resume:
            self._resume(resume)
        elif init_generator:
            self._init_generator(init_generator)
        elif warm_start:
            self._warm_start(warm_start)
        if not resume and tc.adversarial_start > self.step:  # fresh discriminators join then
            self.head_start_until = max(self.head_start_until, tc.adversarial_start + tc.disc_head_start_steps)

        self.train_files, self.valid_files = self._find(data_dirs)
        mels = None
        if config.data.predicted_mels:
            self.train_files, mels = self._pair_with_mels(Path(config.data.predicted_mels))
        read, waves = load_many(self.train_files, config.model.mel.sample_rate, config.data.cache_dir)
        if mels is not None and len(read) != len(self.train_files):  # keep each mel with its clip
            kept = set(read)
            mels = [m for f, m in zip(self.train_files, mels, strict=True) if f in kept]
        self.train_files = read
        self.mel_channels = 0 if mels is None else config.model.mel.n_mels
        paired = mels
        if self.wants_pitch:
            paired = self._pitch_targets(waves, mels)
        self.bank = ClipBank(waves, tc.segment_size, self.device, config.data.peak, paired,
                             config.model.mel.hop_length)
        self.valid_files, valid = load_many(self.valid_files, config.model.mel.sample_rate, config.data.cache_dir)
        self.valid = [torch.from_numpy(w) for w in valid]
        if self.dist.main:
            log.info("training on %d clips (%.1f min), validating on %d held-out clips",
                     len(waves), self.bank.audio.numel() / config.model.mel.sample_rate / 60, len(self.valid))

        g, d = self.G, self.D
        if self.dist.world > 1:
            ids = [self.device.index] if self.cuda else None
            g = DDP(g, device_ids=ids)
            d = DDP(d, device_ids=ids)
        if tc.compile and not self.cuda:
            log.info("torch.compile is used on CUDA only (inductor's CPU FFT lowering fails here); running eager")
        elif tc.compile:
            # Module-level compile measured 16.8 steps/s on an H100; the bundled run, which compiled the
            # loss functions around the discriminators instead, logged 7.8 (benchmarks/RESULTS.md).
            g, d = torch.compile(g, mode=tc.compile_mode), torch.compile(d, mode=tc.compile_mode)
        self.graphs = self.cuda and tc.compile and tc.compile_mode == "reduce-overhead"
        self.g_run, self.d_run = g, d
        self.runlog = RunLog(self.run_dir, self.step if resume else None) if self.dist.main else None
        if resume and self.runlog:  # a run killed after its last checkpoint: the time since is on its log
            self.prior_minutes += self.runlog.minutes_after(resume, self.prior_minutes)

    # ----- setup -------------------------------------------------------------------------------------------------
    def _find(self, dirs: list[str]) -> tuple[list[Path], list[Path]]:
        train, valid = [], []
        found = {d: find_audio(d) for d in dirs}
        if not any(found.values()):
            raise ValueError(f"no audio in {', '.join(dirs)}: a folder takes an LJSpeech metadata.csv with wavs/, "
                             f"or audio files ({', '.join(AUDIO_SUFFIXES)}) anywhere under it")
        for pattern in self.cfg.data.validation:
            if not any(fnmatch.fnmatch(f.as_posix(), pattern) for files in found.values() for f in files):
                log.warning("validation pattern %r matches no file in %s", pattern, dirs)
        for d, files in found.items():
            if not files:
                log.warning("no audio in %s: nothing is trained from it", d)
            t, v = split_files(files, self.cfg.data)
            train += t
            valid += v
            self.data_files[Path(d).name] = {"train_clips": len(t), "validation_clips": len(v),
                                             "source": self.cfg.sources.get(Path(d).name, "unspecified")}
        return train, valid

    def _pair_with_mels(self, folder: Path) -> tuple[list[Path], list[np.ndarray]]:
        if not folder.is_dir():
            raise FileNotFoundError(f"predicted mels folder not found: {folder}")
        paired = [f for f in self.train_files if (folder / f"{f.stem}.npy").is_file()]
        if not paired:
            raise ValueError(f"no training clip has a predicted mel in {folder} (expected <clip id>.npy)")
        log.info("fine-tuning on predicted mels: %d of %d training clips have one in %s", len(paired),
                 len(self.train_files), folder)
        n_mels = self.cfg.model.mel.n_mels
        mels = [np.load(folder / f"{f.stem}.npy") for f in paired]
        for f, m in zip(paired, mels, strict=True):
            if m.ndim != 2 or m.shape[0] != n_mels:
                raise ValueError(f"{folder / f.stem}.npy: expected [{n_mels}, frames], got {list(m.shape)}")
        self.data_files["predicted_mels"] = {"folder": folder.name, "clips": len(paired)}
        return paired, mels

    def _pitch_targets(self, waves: list[np.ndarray], mels: list[np.ndarray] | None) -> list[np.ndarray]:
        """pYIN tracks [2, frames] per clip, after the predicted mels' channels when there are any."""
        # Rank 0 computes the cache alone (numba's cache broke when librosa's pYIN compiled side by side).
        if self.dist.world > 1 and not self.dist.main:
            torch.distributed.barrier()
        tracks = pitch_targets(self.train_files, waves, self.cfg.model.mel, self.cfg.data.cache_dir)
        if self.dist.world > 1 and self.dist.main:
            torch.distributed.barrier()
        if mels is None:
            return tracks
        out = []
        for m, t in zip(mels, tracks, strict=True):
            n = min(m.shape[-1], t.shape[-1])
            out.append(np.concatenate([m[:, :n], t[:, :n]]))
        return out

    def _resume(self, path: str) -> None:
        ck = load_checkpoint(path, self.device, "vocoder")
        ck_io.check_model_config(path, ck["config"]["model"], VocoderConfig, self.cfg.model)
        ck_io.note_recipe_changes(path, ck["config"], self.cfg)
        theirs = ck["config"].get("train", {}).get("discriminators", self.cfg.train.discriminators)
        if list(theirs) != list(self.cfg.train.discriminators):
            raise ValueError(f"{path} trained with discriminators {theirs}, this recipe has "
                             f"{self.cfg.train.discriminators} (train.discriminators): resume with the same, or "
                             f"start a run of its own from the export with --init-generator")
        self.G.load_state_dict(ck["generator"])
        self.D.load_state_dict(ck["discriminators"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.step = ck["step"]
        self.prior_minutes = ck["device_minutes"]
        self.head_start_until = ck.get("head_start_until", 0)
        self.lineage = _lineage(ck)
        set_rng_state(ck["rng"])
        self.gen.set_state(ck["data_rng"].cpu())
        log.info("resumed from %s at step %d", path, self.step)

    def _init_generator(self, path: str) -> None:
        """Start from an exported generator with fresh discriminators, which get a head start."""
        wpath, card, state = read_export(path, "vocoder", VocoderConfig, self.cfg.model)
        weights.load_into(self.G, state, wpath)
        self.step = int(card["training"]["steps"])
        self.prior_minutes = float(card["training"]["device_minutes"])
        self.head_start_until = self.step + self.cfg.train.disc_head_start_steps
        self.lineage = {"continued_from": ck_io.continuation(card, wpath)}
        if "warm_start" in card["training"]:
            self.lineage["warm_start"] = card["training"]["warm_start"]
        log.info("initialised generator from %s (step %d); discriminators train alone until step %d",
                 wpath, self.step, self.head_start_until)

    def _warm_start(self, path: str) -> None:
        """Copy every tensor whose name and shape match from an exported generator (say, the backbone of a
        model with other heads); the rest stays freshly initialised and training counts from step 0."""
        wpath = weights.resolve(path, "vocoder")
        card = weights.read_card(wpath, "vocoder")
        own = self.G.state_dict()
        theirs = {k: v.float() for k, v in weights.read_weights(wpath).items()}
        if hasattr(self.G, "carry_over"):  # heads that can take another head's trained parts
            theirs = self.G.carry_over(theirs)
        taken = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
        if not taken:
            raise ValueError(f"{wpath.name} shares no tensor of matching name and shape with this generator")
        self.G.load_state_dict(taken, strict=False)
        fresh = sorted(k for k in own if k not in taken)
        log.info("warm start from %s: %d tensors copied, %d fresh (%s)", wpath.name, len(taken), len(fresh),
                 ", ".join(fresh) or "none")
        warm = {"from": card.get("name", wpath.stem), "steps": card["training"]["steps"],
                "device_minutes": card["training"]["device_minutes"],
                "device": card["training"].get("device", "unknown"), "fresh_tensors": fresh}
        if earlier := card["training"].get("warm_start"):
            warm["earlier"] = earlier  # a chain of warm starts keeps every link's cost
        self.lineage = {"warm_start": warm}

    # ----- one step ----------------------------------------------------------------------------------------------
    def _clip_and_guard(self, params: list[nn.Parameter], loss: torch.Tensor, opt: torch.optim.Optimizer,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Skip the optimizer update on device when the loss or a gradient is not finite (no host sync)."""
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip, foreach=True)
        bad = (~torch.isfinite(loss) | ~torch.isfinite(norm)).float()
        opt.found_inf = bad  # fused AdamW skips the whole update when this is 1
        opt.step()
        return norm, bad

    def _d_losses(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.bf16):
            (sr, _), (sf, _) = self.d_run(real, fake)
        return discriminator_loss(sr, sf), discriminator_accuracy(sr, sf).detach()

    def _g_losses(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.bf16):
            (_, fr), (sf, ff) = self.d_run(real, fake)
        return generator_loss(sf), feature_loss([[f.detach() for f in fs] for fs in fr], ff)

    def _set_learning_rates(self) -> float:
        """Exponential decay in closed form (a function of the step, so resume needs no scheduler state).

        After a discriminator head start the generator's learning rate and adversarial weights ramp up
        linearly; returns that ramp factor (1.0 in normal training).
        """
        tc = self.cfg.train
        lr = tc.learning_rate * tc.lr_decay ** (self.step // tc.lr_decay_every)
        ramp = 1.0
        if self.head_start_until and self.step >= tc.adversarial_start:
            ramp = min(1.0, (self.step - self.head_start_until + 1) / max(tc.gen_ramp_steps, 1))
        for group in self.opt_d.param_groups:
            group["lr"] = lr
        for group in self.opt_g.param_groups:
            group["lr"] = lr * max(ramp, 0.0)
        return ramp

    def _split(self, paired: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Paired frames [B, C, T] -> (given mel or None, pitch targets or None)."""
        if paired is None:
            return None, None
        mel = paired[:, : self.mel_channels] if self.mel_channels else None
        return mel, (paired[:, self.mel_channels:] if self.wants_pitch else None)

    def _spectral(self, real: torch.Tensor, fake: torch.Tensor, log_mag: torch.Tensor | None,
                  phase: torch.Tensor | None) -> dict[str, torch.Tensor]:
        tc = self.cfg.train
        if not (tc.magnitude_weight or tc.phase_weight or tc.consistency_weight):
            zero = torch.zeros((), device=self.device)
            return {"magnitude": zero, "phase": zero, "consistency": zero}
        produced = self.stft(fake)
        if log_mag is None:  # a waveform generator: its spectrum is the STFT of what it produced
            log_mag, phase = torch.log(produced.abs().clamp(min=1e-5)), torch.angle(produced)
        return spectral_losses(log_mag, phase, produced, self.stft(real))

    def train_step(self, real: torch.Tensor, paired: torch.Tensor | None = None) -> torch.Tensor:
        """One update of the discriminators (once they have joined) and of the generator on audio crops.

        ``paired`` holds per-frame inputs cut with the crops: a TTS model's mels, which replace the crops'
        own as the generator's input while the loss still compares with the recording, and/or pitch targets.
        """
        tc = self.cfg.train
        if self.graphs:  # a new step: the graphs may reuse the memory of the previous step's outputs
            torch.compiler.cudagraph_mark_step_begin()
        given_mel, f0_target = self._split(paired)
        ramp = self._set_learning_rates()
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=tc.bf16)
        if given_mel is None:  # a random gain; given mels fix the level the recording had
            lo, hi = tc.gain_range
            real = real * (lo + (hi - lo) * torch.rand(real.shape[0], 1, device=self.device, generator=self.gen))
        mel = self.mel(real)
        log_mag = phase = f0 = None
        with amp:
            if self.spectral_head:
                fake, log_mag, phase, f0 = self.g_run(mel if given_mel is None else given_mel, details=True)
            else:
                fake = self.g_run(mel if given_mel is None else given_mel)
        fake = fake.float()

        zero = torch.zeros((), device=self.device)
        adversarial = self.step >= tc.adversarial_start
        if adversarial:
            d_loss, d_acc = self._d_losses(real, fake.detach())
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            d_norm, d_bad = self._clip_and_guard(self.d_params, d_loss, self.opt_d)
        else:
            d_loss = d_acc = d_norm = d_bad = zero

        mel_l1 = F.l1_loss(self.mel(fake), mel)
        spectral = self._spectral(real, fake, log_mag, phase)
        pitch = pitch_loss(f0, f0_target) if f0 is not None and f0_target is not None else zero
        if adversarial and self.step < self.head_start_until:
            g_adv = g_fm = g_norm = g_bad = zero
        else:
            g_loss = (tc.mel_weight * mel_l1 + tc.magnitude_weight * spectral["magnitude"]
                      + tc.phase_weight * spectral["phase"] + tc.consistency_weight * spectral["consistency"]
                      + tc.pitch_weight * pitch)
            if adversarial:
                g_adv, g_fm = self._g_losses(real, fake)
                g_loss = g_loss + ramp * (g_adv + tc.fm_weight * g_fm)
            else:
                g_adv = g_fm = zero
            g_params = self.g_params
            self.opt_g.zero_grad(set_to_none=True)
            if self.dist.world > 1 or not adversarial:
                g_loss.backward()  # DDP's gradient hooks fire on .backward() only
            else:
                # Only the generator's gradients: skips the discriminators' weight gradients.
                for p, g in zip(g_params, torch.autograd.grad(g_loss, g_params), strict=True):
                    p.grad = g
            g_norm, g_bad = self._clip_and_guard(g_params, g_loss, self.opt_g)
        self.step += 1
        bad = torch.maximum(d_bad, g_bad)
        return torch.stack([d_loss.detach(), g_adv.detach(), g_fm.detach(), mel_l1.detach(),
                            spectral["magnitude"].detach(), spectral["phase"].detach(),
                            spectral["consistency"].detach(), pitch.detach(), d_acc, g_norm.detach(),
                            d_norm.detach(), bad])

    # ----- validation, checkpoints, export -----------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.valid:
            return {}
        self.G.eval()
        sr = self.cfg.model.mel.sample_rate
        mel_l1, pesqs, stois = [], [], []
        for i, wave in enumerate(self.valid):
            w = wave.to(self.device)[None]
            mel = self.mel(w)
            fake = self.G(mel).float().clamp(-1, 1)
            fake_mel = self.mel(fake)
            mel_l1.append(F.l1_loss(fake_mel, mel).item())
            ref, deg = w[0, : fake.shape[-1]].cpu().numpy(), fake[0].cpu().numpy()
            p = metrics.pesq_wb(ref, deg, sr) if sr == 16000 else None
            s = metrics.stoi(ref, deg, sr)
            if p is not None:
                pesqs.append(p)
            if s is not None:
                stois.append(s)
            if self.runlog and i < 3:
                self.runlog.audio(f"valid/{i}", fake[0], self.step, sr)
                self.runlog.spectrogram_image(f"valid_mel/{i}", fake_mel[0], self.step)
        self.G.train()
        out = {"valid_mel_l1": float(np.mean(mel_l1))}
        if pesqs:
            out["valid_pesq_wb"] = float(np.mean(pesqs))
        if stois:
            out["valid_stoi"] = float(np.mean(stois))
        return out

    def device_minutes(self) -> float:
        return self.prior_minutes + (time.monotonic() - self.t0) / 60 * self.dist.world

    def checkpoint(self) -> Path:
        return save_checkpoint(self.run_dir / "checkpoint.pt", {
            "generator": self.G.state_dict(), "discriminators": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "step": self.step, "device_minutes": self.device_minutes(), "head_start_until": self.head_start_until,
            "rng": rng_state(), "data_rng": self.gen.get_state(), "config": to_dict(self.cfg),
            "device": device_name(self.device), "data": self.data_files, "lineage": self.lineage,
        })

    def export(self, path: Path, validation: dict[str, float] | None = None) -> Path:
        """Without ``validation`` (a snapshot), the card takes the last figures logged."""
        if validation is None:
            validation = validation_at(self.run_dir / "metrics.jsonl", self.step)
        return export_generator(self.G, self.cfg, path, self.step, self.device_minutes(),
                                device_name(self.device), self.data_files, validation, self.lineage)

    # ----- the loop ----------------------------------------------------------------------------------------------
    @checkpoint_on_interrupt
    def fit(self) -> dict[str, float]:
        tc = self.cfg.train
        self.prior_minutes = self.device_minutes()
        self.t0 = time.monotonic()
        last_val = last_ck = last_snap = last_log = self.t0
        acc = torch.zeros(len(METRIC_NAMES), device=self.device)
        bad = NonFiniteSteps(tc.nan_patience, self.device)
        n_acc = 0
        result: dict[str, float] = {}
        bar = tqdm(total=tc.max_steps, initial=self.step, disable=not self.dist.main, mininterval=5,
                   desc="train vocoder", unit="step")
        self.G.train()
        self.D.train()
        while self.step < tc.max_steps:
            stats = self.train_step(*self.bank.sample(tc.batch_size, self.gen))
            acc += stats
            n_acc += 1
            bad.add(stats[-1])
            bar.update(1)
            if self.step % tc.log_every and self.step < tc.max_steps:
                continue
            now = time.monotonic()
            # Rank 0's clock decides, so that every rank leaves the loop at the same step.
            timed_out = rank0_decides(tc.max_minutes > 0 and (now - self.t0) / 60 >= tc.max_minutes,
                                      self.dist, self.device)
            # Host sync happens here only, once per log interval.
            row = mean_row(acc, n_acc, METRIC_NAMES, self.dist)
            row["skipped"] *= n_acc
            row.update(step=self.step, device_minutes=self.device_minutes(), lr=self.opt_d.param_groups[0]["lr"],
                       steps_per_s=n_acc / max(now - last_log, 1e-9))
            last_log = now
            acc.zero_()
            n_acc = 0
            bad.check(self.step, row["skipped"])
            if self.dist.main and now - last_val >= tc.validate_every_minutes * 60:
                row.update(self.validate())
                last_val = now
            if self.dist.main:
                self.runlog.row(self.step, row)
                bar.set_postfix(mel=f"{row['mel_l1']:.3f}", d_acc=f"{row['d_acc']:.2f}")
            if self.dist.main and now - last_ck >= tc.checkpoint_every_minutes * 60:
                self.checkpoint()
                last_ck = now
            if self.dist.main and tc.snapshot_every_minutes > 0 and now - last_snap >= tc.snapshot_every_minutes * 60:
                self.export(self.run_dir / "snapshots" / f"step{self.step:07d}.safetensors")
                last_snap = now
            result = row
            if timed_out:
                log.info("time budget of %.1f min reached at step %d", tc.max_minutes, self.step)
                break
        bar.close()
        return finish_run(self, result)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def export_generator(G: nn.Module, cfg: VocoderTrainingConfig, path: Path, step: int, minutes: float,
                     device: str, data: dict[str, Any], validation: dict[str, float],
                     lineage: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16) -> Path:
    """The inference generator as safetensors (fp16 by default) plus its JSON model card."""
    G = unwrap(G)
    card = {
        "name": path.stem,
        "kind": "vocoder",
        "config": to_dict(cfg.model),
        "parameters": sum(p.numel() for p in G.parameters()),
        "dtype": str(dtype).removeprefix("torch."),
        "training": {"steps": step, "device_minutes": round(minutes, 2), "device": device,
                     "recipe": to_dict(cfg.train), "date": date.today().isoformat(),
                     **(lineage or {})},
        "data": data,
        "validation": validation,
    }
    return weights.write_weights(path, G.state_dict(), card, dtype)


def export_checkpoint(checkpoint: str | Path, out: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """`audiogan export vocoder`: a training checkpoint -> inference weights + card."""
    ck = load_checkpoint(checkpoint, torch.device("cpu"), "vocoder")
    cfg = from_dict(VocoderTrainingConfig, ck["config"])
    G = build_generator(cfg.model)
    G.load_state_dict(ck["generator"])
    validation = validation_at(Path(checkpoint).parent / "metrics.jsonl", ck["step"])
    return export_generator(G, cfg, Path(out), ck["step"], ck["device_minutes"], ck.get("device", "unknown"),
                            ck.get("data", {}), validation, _lineage(ck), dtype)


def _lineage(ck: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's lineage; older checkpoints kept only the warm start."""
    if "lineage" in ck:
        return ck["lineage"]
    return {"warm_start": ck["warm_start"]} if ck.get("warm_start") else {}
