"""Training loop for the note GAN: hinge loss + pitch classification (AC-GAN), collapse and
convergence monitors, bf16, resume, DDP, export."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from audiogan import weights
from audiogan.audio.io import AudioError, load_audio
from audiogan.audio.mel import MelConfig, MelSpectrogram
from audiogan.config import check_run_numbers, from_dict, to_dict
from audiogan.timbre.model import Discriminator, Generator, NoteGANConfig
from audiogan.timbre.notes_data import GM_COMBS, NoteRecord, load_examples
from audiogan.timbre.spectral import NoteSpectrogram, SpectralConfig, fit_length
from audiogan.train.checkpoint import (
    check_model_config,
    continuation,
    load_checkpoint,
    note_recipe_changes,
    read_export,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from audiogan.train.data import is_silent, warn_silent
from audiogan.train.distributed import init_distributed, mean_row, rank0_decides, unwrap
from audiogan.train.rundir import claim_run_dir
from audiogan.train.runlog import NonFiniteSteps, RunLog, checkpoint_on_interrupt, finish_run, validation_at
from audiogan.train.vocoder_trainer import device_name

log = logging.getLogger(__name__)
STATS = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc", "pitch_acc_real", "pitch_acc_fake", "g_grad_norm",
         "d_grad_norm", "reconstruction", "skipped")


@dataclass
class TimbreTrainConfig:
    batch_size: int = 16
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    pitch_weight: float = 1.0
    # A direct target besides the GAN loss: the real note of the same pitch and instrument (any velocity).
    # Rendered soundfont notes hold one note per condition, so this target is well defined, and it makes
    # training on a small budget (a CPU) converge; GANSynth has none (NSynth holds many notes per condition).
    reconstruction_weight: float = 0.0
    # Within the reconstruction target: the weight of its IF term (against 1 for log-magnitude L1), and of
    # an L1 on the log-mel of the magnitude, which weighs frequencies as the ear does (the linear bins
    # above 2 kHz are three quarters of the plain L1). Phase-locked decoding repairs much of the IF's
    # error, so a lower IF weight leaves more of the generator to the magnitude.
    if_weight: float = 1.0
    mel_weight: float = 0.0
    # Steps trained on the reconstruction target alone before the discriminator joins (Parallel WaveGAN
    # waits 100k steps): a generator far from the data gives the discriminator an easy win, and its
    # gradients then drown the reconstruction signal (measured: the target stopped improving at once).
    adversarial_start: int = 0
    # Steps a fresh discriminator trains alone against a generator started from an export
    # (--init-generator): an untrained critic's gradients would otherwise undo what the generator learned.
    disc_head_start_steps: int = 300
    grad_clip: float = 100.0
    nan_patience: int = 20  # this many steps in a row with a non-finite update (not applied) stop the run
    max_steps: int = 200_000
    max_minutes: float = 0.0
    bf16: bool = True
    log_every: int = 100
    checkpoint_every_minutes: float = 5.0
    diversity_every: int = 500  # steps between mode-collapse checks
    seed: int = 1234

    def __post_init__(self) -> None:
        check_run_numbers(self)


@dataclass
class TimbreDataConfig:
    validation: list[str] = field(default_factory=list)  # fnmatch patterns on note files held out
    pitch_min: int = 24
    pitch_max: int = 84


@dataclass
class TimbreTrainingConfig:
    name: str = "timbre"
    model: NoteGANConfig = field(default_factory=NoteGANConfig)
    train: TimbreTrainConfig = field(default_factory=TimbreTrainConfig)
    data: TimbreDataConfig = field(default_factory=TimbreDataConfig)
    sources: dict[str, str] = field(default_factory=dict)


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, log_scale: float, if_weight: float = 1.0,
                        mel_filters: torch.Tensor | None = None, mel_weight: float = 0.0) -> torch.Tensor:
    """L1 on scaled log-magnitude plus a circular IF distance (1 - cos of the phase-advance error, so a
    wrap at +-pi costs nothing) weighted by the real magnitude: IF is only audible where there is energy.
    With mel_filters [bins, mels]: plus mel_weight x L1 of the log-mel, in the same scaled-log units."""
    magnitude = (fake[:, 0] - real[:, 0]).abs().mean()
    weight = torch.exp((real[:, 0] - real[:, 0].amax(dim=(1, 2), keepdim=True)) * log_scale / 2)  # sqrt(|S|/max)
    phase = (weight * (1 - torch.cos(math.pi * (fake[:, 1] - real[:, 1])))).sum() / weight.sum().clamp(min=1e-8)
    loss = magnitude + if_weight * phase
    if mel_filters is not None and mel_weight > 0:
        fake_mel, real_mel = (torch.log(torch.einsum("bft,fm->bmt", torch.exp(x[:, 0] * log_scale), mel_filters)
                                        + 1e-6) for x in (fake, real))
        loss = loss + mel_weight * (fake_mel - real_mel).abs().mean() / log_scale
    return loss


def note_mel_filters(cfg: SpectralConfig, mels: int = 64) -> torch.Tensor:
    """The mel front end's (Slaney) filters [bins, mels] over the note spectrogram's bins (Nyquist dropped,
    as there)."""
    mel = MelConfig(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_fft, mels, 0.0, cfg.sample_rate / 2)
    return MelSpectrogram(mel).filterbank[: cfg.bins].clone()


class TimbreTrainer:
    def __init__(self, config: TimbreTrainingConfig, data_dirs: list[str], run_dir: str | Path,
                 device: str = "auto", resume: str | None = None, init_generator: str | None = None) -> None:
        self.cfg = config
        tc = config.train
        if tc.mel_weight > 0 and config.model.spectral.frequency_scale == "mel":
            raise ValueError("train.mel_weight is for linear-frequency spectrograms: IF-Mel rows are on the mel "
                             "scale already, so the plain log-magnitude L1 weighs them as the ear does")
        if tc.adversarial_start > 0 and tc.reconstruction_weight <= 0:
            raise ValueError("train.adversarial_start needs train.reconstruction_weight > 0: before the "
                             "discriminator joins, the reconstruction target is the only loss")
        self.dist, self.device = init_distributed(device)
        self.run_dir = Path(run_dir)
        self.run_lock = claim_run_dir(self.run_dir, resume) if self.dist.main else None
        torch.manual_seed(tc.seed + self.dist.rank)
        self.gen = torch.Generator().manual_seed(tc.seed + 1000 * self.dist.rank)
        records = [r for d in data_dirs for r in load_examples(d)
                   if config.data.pitch_min <= r.pitch <= config.data.pitch_max]
        held = [r for r in records if any(fnmatch.fnmatch(r.path.as_posix(), p) for p in config.data.validation)]
        self.records = [r for r in records if r not in held]
        if not self.records:
            raise ValueError(f"no notes in pitch range {config.data.pitch_min}-{config.data.pitch_max} in {data_dirs}")
        config.model.pitch_min, config.model.pitch_max = config.data.pitch_min, config.data.pitch_max
        config.model.instruments = sorted({r.instrument for r in self.records})
        family = {r.instrument: r.family for r in self.records}
        config.model.families = [family[name] for name in config.model.instruments]
        velocities = [r.velocity for r in self.records]
        if config.model.velocity_conditioning:
            config.model.velocity_range = [min(velocities), max(velocities)]
            if not config.model.velocity_conditioned:
                raise ValueError(f"model.velocity_conditioning needs notes of more than one velocity; the "
                                 f"training notes all have velocity {velocities[0]}")
        ck = load_checkpoint(resume, self.device, "timbre") if resume else None
        if ck is not None:  # before the notes are encoded; the model config includes the data's instruments
            check_model_config(resume, ck["config"]["model"], NoteGANConfig, config.model)
            note_recipe_changes(resume, ck["config"], config)
        self.spectral = NoteSpectrogram(config.model.spectral).to(self.device)
        self.records, self.specs, self.pitch, self.instrument = self._load(self.records)
        self.velocity = torch.tensor([r.velocity for r in self.records], device=self.device)
        self.mel_filters = note_mel_filters(config.model.spectral).to(self.device) if tc.mel_weight > 0 else None
        self.G = Generator(config.model).to(self.device)
        self.D = Discriminator(config.model).to(self.device)
        if self.device.type == "cpu":
            # oneDNN's blocked convolutions: a generator + discriminator step ran 1.27x faster on 2 cores
            # (benchmarks/RESULTS.md, "channels-last note generator"); GPUs keep the default until measured.
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.g_params, self.d_params = list(self.G.parameters()), list(self.D.parameters())
        self.opt_g = torch.optim.Adam(self.g_params, tc.learning_rate, betas=tuple(tc.betas))
        self.opt_d = torch.optim.Adam(self.d_params, tc.learning_rate, betas=tuple(tc.betas))
        self.step, self.prior_minutes, self.t0 = 0, 0.0, time.monotonic()
        self.head_start_until = 0
        self.continued_from: dict[str, Any] = {}  # the export this run started from, and its recipe
        if resume and init_generator:
            raise ValueError("choose one of resume and init_generator")
        if init_generator:
            self._init_generator(init_generator)
        if ck is not None:
            self.G.load_state_dict(ck["generator"])
            self.D.load_state_dict(ck["discriminator"])
            self.opt_g.load_state_dict(ck["opt_g"])
            self.opt_d.load_state_dict(ck["opt_d"])
            for group in [*self.opt_g.param_groups, *self.opt_d.param_groups]:
                group["lr"] = tc.learning_rate  # the recipe's, as the other trainers: --set may change it
            self.step, self.prior_minutes = ck["step"], ck["device_minutes"]
            self.head_start_until = ck.get("head_start_until", 0)
            self.continued_from = ck.get("continued_from", {})
            set_rng_state(ck["rng"])
            self.gen.set_state(ck["data_rng"])
            log.info("resumed from %s at step %d", resume, self.step)
        self.g_run, self.d_run = self.G, self.D
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_run, self.d_run = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        self.runlog = RunLog(self.run_dir, self.step if resume else None) if self.dist.main else None
        if resume and self.runlog:  # a run killed after its last checkpoint: the time since is on its log
            self.prior_minutes += self.runlog.minutes_after(resume, self.prior_minutes)
        if self.runlog:
            log.info("timbre GAN: %d notes, %d instruments, pitches %d-%d, G %.1f M / D %.1f M parameters",
                     len(self.records), len(config.model.instruments), config.data.pitch_min,
                     config.data.pitch_max, sum(p.numel() for p in self.g_params) / 1e6,
                     sum(p.numel() for p in self.d_params) / 1e6)

    def _init_generator(self, path: str) -> None:
        """Continue from an exported generator (across sessions only it is kept) with a fresh discriminator;
        the step count and device minutes go on from its card, so the next card states the whole cost."""
        own = self.cfg.model
        exported = from_dict(NoteGANConfig, weights.read_card(weights.resolve(path, "timbre"), "timbre")["config"])
        adding_velocity = own.velocity_conditioned and not exported.velocity_conditioned
        if adding_velocity:  # the export's notes, unchanged at first: the new velocity input starts at zero
            own = dataclasses.replace(own, velocity_conditioning=False, velocity_range=[0, 0])
        # A new frequency axis keeps every parameter's shape; the trunk's timbre and pitch features carry
        # over and the output layers re-learn where the harmonics lie.
        old_scale = exported.spectral.frequency_scale
        own = dataclasses.replace(own, spectral=dataclasses.replace(own.spectral, frequency_scale=old_scale))
        wpath, card, state = read_export(path, "timbre", NoteGANConfig, own)
        if adding_velocity:
            state["velocity.weight"] = torch.zeros_like(self.G.velocity.weight)
            log.info("%s has no velocity input: added at zero for velocities %d-%d", wpath.name,
                     *self.cfg.model.velocity_range)
        weights.load_into(self.G, state, wpath)
        self.step = int(card["training"]["steps"])
        self.prior_minutes = float(card["training"]["device_minutes"])
        self.head_start_until = self.step + self.cfg.train.disc_head_start_steps
        self.continued_from = continuation(card, wpath)
        if old_scale != self.cfg.model.spectral.frequency_scale:
            self.continued_from["frequency_scale"] = old_scale
            log.info("%s was trained on the %s frequency axis: it continues on the %s axis", wpath.name,
                     old_scale, self.cfg.model.spectral.frequency_scale)
        log.info("initialised generator from %s (step %d); a discriminator joining before step %d trains alone",
                 wpath, self.step, self.head_start_until)

    def _load(self, records: list[NoteRecord]) -> tuple[list[NoteRecord], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every note that is not silent, and its IF spectrogram, held on the device in bf16/fp16 (NSynth-sized
        sets fit an H100)."""
        index = {name: i for i, name in enumerate(self.cfg.model.instruments)}
        specs, kept, silent = [], [], []
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        for start in tqdm(range(0, len(records), 64), desc="IF spectrograms", unit="batch",
                          disable=not self.dist.main):
            chunk = [(r, w, is_silent(w)) for r in records[start:start + 64] if (w := self._read(r.path)) is not None]
            silent += [r.path for r, _, quiet in chunk if quiet]
            loud = [(r, w) for r, w, quiet in chunk if not quiet]
            if loud:
                kept += [r for r, _ in loud]
                batch = torch.stack([fit_length(w, self.cfg.model.spectral.samples) for _, w in loud])
                specs.append(self.spectral.encode(batch.to(self.device)).to(dtype))
        warn_silent(silent)
        if not kept:
            raise ValueError("no training note could be used: each is silent or unreadable (see the warnings)")
        pitch = torch.tensor([r.pitch for r in kept], device=self.device)
        instrument = torch.tensor([index[r.instrument] for r in kept], device=self.device)
        return kept, torch.cat(specs), pitch, instrument

    def _read(self, path: Path) -> torch.Tensor | None:
        """A note's audio at the model's rate, or None (and a warning) for a file that cannot be read: one
        bad file costs its note, not the run, as in the other trainers."""
        try:
            return load_audio(path, self.cfg.model.spectral.sample_rate)[0]
        except AudioError as exc:
            log.warning("skipping %s: %s", path, exc)
            return None

    def _z(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.latent_dim, generator=self.gen if gen is None else gen).to(self.device)

    def train_step(self) -> torch.Tensor:
        tc = self.cfg.train
        idx = torch.randint(len(self.records), (tc.batch_size,), generator=self.gen).to(self.device)
        real, pitch, inst, velocity = self.specs[idx].float(), self.pitch[idx], self.instrument[idx], self.velocity[idx]
        pitch_class = pitch - self.cfg.model.pitch_min
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=tc.bf16 and self.device.type == "cuda")
        nan = torch.full((), float("nan"), device=self.device)
        d_loss = real_acc = fake_acc = real_pitch_acc = fake_pitch_acc = d_norm = g_adv = nan
        skipped = torch.zeros((), device=self.device)
        adversarial = self.step >= tc.adversarial_start
        with autocast:
            fake = self.g_run(self._z(len(idx)), pitch, unwrap(self.G).instrument(inst), velocity)
            if adversarial:
                # Real and fake in one discriminator call: DDP allows one forward per backward.
                scores, pitches = self.d_run(torch.cat([real, fake.detach()]))
                real_score, fake_score = scores.float().chunk(2)
                real_pitch = pitches[: len(idx)].float()
                d_loss = hinge_d(real_score, fake_score) + tc.pitch_weight * F.cross_entropy(real_pitch, pitch_class)
        if adversarial:
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            d_norm = torch.nn.utils.clip_grad_norm_(self.d_params, tc.grad_clip)
            if torch.isfinite(d_norm):
                self.opt_d.step()
            else:
                skipped.fill_(1.0)
            with autocast:
                score, fake_pitch = self.d_run(fake)
                g_adv = -score.float().mean() + tc.pitch_weight * F.cross_entropy(fake_pitch.float(), pitch_class)
            real_acc, fake_acc = (real_score > 0).float().mean(), (fake_score < 0).float().mean()
            real_pitch_acc = (real_pitch.argmax(1) == pitch_class).float().mean()
            fake_pitch_acc = (fake_pitch.argmax(1) == pitch_class).float().mean()
        recon = reconstruction_loss(fake.float(), real, self.cfg.model.spectral.log_scale, tc.if_weight,
                                    self.mel_filters, tc.mel_weight)
        g_loss = (g_adv if adversarial else 0) + tc.reconstruction_weight * recon
        self.opt_g.zero_grad(set_to_none=True)
        g_norm = nan
        if not (adversarial and self.step < self.head_start_until):
            g_loss.backward()
            g_norm = torch.nn.utils.clip_grad_norm_(self.g_params, tc.grad_clip)
            if torch.isfinite(g_norm):
                self.opt_g.step()
            else:
                skipped.fill_(1.0)
        self.step += 1
        return torch.stack([d_loss.detach(), g_loss.detach(), real_acc, fake_acc, real_pitch_acc, fake_pitch_acc,
                            g_norm, d_norm, recon.detach(), skipped]).float()

    @torch.no_grad()
    def diversity(self, conditions: int = 8, samples: int = 4) -> dict[str, float]:
        """Mode-collapse monitor: mean pairwise L1 between notes of one (pitch, instrument) made from
        different z, relative to the same spread among real notes of random conditions. Near 0: collapse."""
        self.G.eval()
        # Its own draws, not the training stream's: a check at the end of a run (which an uninterrupted run
        # skips) must not shift the batches a resumed run goes on with.
        gen = torch.Generator().manual_seed(self.cfg.train.seed + self.step)
        pick = torch.randint(len(self.records), (conditions,), generator=gen).to(self.device)
        pitch = self.pitch[pick].repeat_interleave(samples)
        timbre = self.G.instrument(self.instrument[pick]).repeat_interleave(samples, 0)
        velocity = self.velocity[pick].repeat_interleave(samples)
        fake = self.G(self._z(len(pitch), gen), pitch, timbre, velocity).view(conditions, samples, -1)
        spread = torch.cdist(fake, fake, p=1).sum((1, 2)) / (samples * (samples - 1)) / fake.shape[-1]
        real = self.specs[pick].float().flatten(1)
        real_spread = torch.cdist(real[None], real[None], p=1).sum() / (conditions * (conditions - 1)) / real.shape[-1]
        self.G.train()
        ratio = spread.mean() / real_spread.clamp(min=1e-8)
        return {"diversity": float(spread.mean()), "diversity_ratio": float(ratio)}

    @torch.no_grad()
    def log_samples(self, count: int = 4) -> None:
        """The same few notes every time (fixed noise, pitches and instruments, spread over the data) to
        TensorBoard: their audio, and real beside generated log-magnitude as one image per note."""
        G = unwrap(self.G)
        pick = torch.linspace(0, len(self.records) - 1, count).long().to(self.device)
        z = torch.randn(count, self.cfg.model.latent_dim, generator=torch.Generator().manual_seed(0)).to(self.device)
        fake = G(z, self.pitch[pick], G.instrument(self.instrument[pick]), self.velocity[pick]).float()
        audio = self.spectral.decode(fake, lock_phase=True)
        sr = self.cfg.model.spectral.sample_rate
        for i, k in enumerate(pick.tolist()):
            tag = f"notes/{self.cfg.model.instruments[int(self.instrument[k])]}-{int(self.pitch[k])}"
            self.runlog.audio(tag, audio[i], self.step, sr)
            side_by_side = torch.cat([self.specs[k, 0].float(), fake[i, 0]], dim=1)
            self.runlog.spectrogram_image(f"{tag} real|generated", side_by_side, self.step)

    def device_minutes(self) -> float:
        return self.prior_minutes + (time.monotonic() - self.t0) / 60 * self.dist.world

    def checkpoint(self) -> Path:
        return save_checkpoint(self.run_dir / "checkpoint.pt", {
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(), "step": self.step, "device_minutes": self.device_minutes(),
            "rng": rng_state(), "data_rng": self.gen.get_state(), "config": to_dict(self.cfg),
            "head_start_until": self.head_start_until, "continued_from": self.continued_from,
            "device": device_name(self.device), "notes": len(self.records)})

    def export(self, path: Path, metrics: dict[str, float]) -> Path:
        return export_timbre(self.G, self.cfg, path, self.step, self.device_minutes(), device_name(self.device),
                             len(self.records), metrics, continued_from=self.continued_from)

    @checkpoint_on_interrupt
    def fit(self) -> dict[str, float]:
        tc = self.cfg.train
        self.prior_minutes, self.t0 = self.device_minutes(), time.monotonic()
        last_ck = last_log = self.t0
        acc = torch.zeros(len(STATS), device=self.device)
        bad = NonFiniteSteps(tc.nan_patience, self.device)
        n = 0
        row: dict[str, Any] = {}
        bar = tqdm(total=tc.max_steps, initial=self.step, disable=not self.dist.main, mininterval=5,
                   desc="train timbre", unit="step")
        while self.step < tc.max_steps:
            stats = self.train_step()
            acc += stats
            bad.add(stats[-1])
            n += 1
            bar.update(1)
            if self.step % tc.log_every and self.step < tc.max_steps:
                continue
            now = time.monotonic()
            timed_out = rank0_decides(tc.max_minutes > 0 and (now - self.t0) / 60 >= tc.max_minutes,
                                      self.dist, self.device)
            row = mean_row(acc, n, STATS, self.dist)
            row["skipped"] *= n
            bad.check(self.step, row["skipped"])
            row.update(step=self.step, device_minutes=self.device_minutes(), steps_per_s=n / max(now - last_log, 1e-9))
            acc.zero_()
            n, last_log = 0, now
            if self.dist.main and (self.step % tc.diversity_every < tc.log_every or self.step >= tc.max_steps):
                row.update(self.diversity())
                self._warn(row)
                if self.runlog:
                    self.log_samples()
            if self.runlog:
                self.runlog.row(self.step, row)
                bar.set_postfix(d=f"{row['d_loss']:.2f}", g=f"{row['g_loss']:.2f}")
            if self.dist.main and now - last_ck >= tc.checkpoint_every_minutes * 60:
                self.checkpoint()
                last_ck = now
            if timed_out:
                break
        bar.close()
        # No separate validation: the note GAN is judged in the loop (diversity check, discriminator accuracy).
        return finish_run(self, row, validate=False)

    def _warn(self, row: dict[str, Any]) -> None:
        """The two classic GAN failures, said out loud in the log."""
        if row.get("diversity_ratio", 1.0) < 0.05:
            log.warning("step %d: possible mode collapse (generated spread %.3f of the real spread)",
                        self.step, row["diversity_ratio"])
        if min(row["d_real_acc"], row["d_fake_acc"]) > 0.99:
            log.warning("step %d: discriminator wins everything (accuracy ~100%%): the generator gets no signal",
                        self.step)
        if max(row["g_grad_norm"], row["d_grad_norm"]) > self.cfg.train.grad_clip:
            log.warning("step %d: gradient norms above the clip (%.0f): training may be diverging", self.step,
                        max(row["g_grad_norm"], row["d_grad_norm"]))


def export_timbre(G: torch.nn.Module, cfg: TimbreTrainingConfig, path: Path, step: int, minutes: float,
                  device: str, notes: int, metrics: dict[str, float], dtype: torch.dtype = torch.float16,
                  continued_from: dict[str, Any] | None = None) -> Path:
    G = unwrap(G)
    card = {"name": path.stem, "kind": "timbre", "config": to_dict(cfg.model),
            "combs": {name: GM_COMBS[name] for name in cfg.model.instruments if name in GM_COMBS},
            "parameters": sum(p.numel() for p in G.parameters()), "dtype": str(dtype).removeprefix("torch."),
            "training": {"steps": step, "device_minutes": round(minutes, 2), "device": device,
                         "recipe": to_dict(cfg.train), "date": date.today().isoformat(),
                         **({"continued_from": continued_from} if continued_from else {})},
            "data": {"notes": notes, "sources": cfg.sources}, "validation": metrics}
    return weights.write_weights(path, G.state_dict(), card, dtype)


def export_timbre_checkpoint(checkpoint: str | Path, out: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """`audiogan export timbre`: a training checkpoint -> inference weights + card."""
    ck = load_checkpoint(checkpoint, torch.device("cpu"), "timbre")
    cfg = from_dict(TimbreTrainingConfig, ck["config"])
    G = Generator(cfg.model)
    G.load_state_dict(ck["generator"])
    # The note GAN has no held-out validation: its mode-collapse check, run in the loop, stands in for one.
    checked = validation_at(Path(checkpoint).parent / "metrics.jsonl", ck["step"], "diversity")
    return export_timbre(G, cfg, Path(out), ck["step"], ck["device_minutes"], ck.get("device", "unknown"),
                         ck.get("notes", 0), checked, dtype, ck.get("continued_from"))


def load_generator(path: Path) -> tuple[Generator, dict[str, Any]]:
    card = weights.read_card(path, "timbre")
    G = Generator(from_dict(NoteGANConfig, card["config"]))
    weights.load_into(G, {k: v.float() for k, v in weights.read_weights(path).items()}, path)
    return G.eval(), card
