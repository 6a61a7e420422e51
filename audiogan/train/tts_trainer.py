"""Training loop for the acoustic model: teacher-forced mels, learned alignment, bf16, resume, DDP."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from audiogan import weights
from audiogan.config import check_run_numbers, from_dict, to_dict
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
from audiogan.train.distributed import init_distributed, mean_row, rank0_decides, unwrap
from audiogan.train.rundir import claim_run_dir
from audiogan.train.runlog import NonFiniteSteps, RunLog, checkpoint_on_interrupt, finish_run, validation_at
from audiogan.train.tts_data import TTSDataConfig, Utterance, build_features, collate, split, statistics
from audiogan.train.vocoder_trainer import device_name
from audiogan.tts.alignment import beta_binomial_prior, forward_sum_loss
from audiogan.tts.mel_discriminator import MelDiscriminator, mel_windows
from audiogan.tts.model import AcousticConfig, AcousticModel
from audiogan.tts.phonemes import SymbolTable
from audiogan.vocoder.losses import discriminator_accuracy, discriminator_loss, feature_loss, generator_loss

log = logging.getLogger(__name__)
LOSSES = ("loss", "mel_l1", "duration", "pitch", "energy", "align", "bin", "grad_norm", "skipped")
GAN_LOSSES = ("adversarial", "feature", "d_loss", "d_acc")


@dataclass
class TTSTrainConfig:
    batch_size: int = 16
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-6
    warmup_steps: int = 1000
    grad_clip: float = 1.0
    nan_patience: int = 20          # this many non-finite steps in a row stop the run (no update is applied)
    length_buckets: int = 4        # draw this many batches' worth, sort by length, train on one group
    duration_weight: float = 0.1
    pitch_weight: float = 0.1
    energy_weight: float = 0.1
    align_weight: float = 1.0
    bin_weight: float = 1.0
    bin_start_steps: int = 2000   # the hard-vs-soft alignment loss waits until the aligner has found the diagonal
    # Exports leave the aligner out, so a run that continues one (--init-generator) starts a fresh aligner
    # and trains it alone against the frozen model this long: joint steps on a random alignment would
    # teach the decoder and duration predictor wrong durations. On the bundled voice the frozen model's
    # teacher-forced mel L1 was still falling at 1,000 steps (0.47) and near its trained level by 2,000 (0.38).
    align_head_start_steps: int = 2000
    # Optional mel discriminator (0 = off): least-squares adversarial loss and feature matching on random
    # windows of the teacher-forced mel. Its weight ramps in over adversarial_ramp_steps from the first
    # joint step, while the fresh discriminator learns; it is never exported.
    adversarial_weight: float = 0.0
    feature_weight: float = 2.0
    adversarial_ramp_steps: int = 500
    disc_frames: int = 64
    disc_channels: int = 32
    disc_learning_rate: float = 2e-4
    max_steps: int = 100_000
    max_minutes: float = 0.0
    bf16: bool = True
    log_every: int = 50
    validate_every_minutes: float = 5.0
    checkpoint_every_minutes: float = 5.0
    # >0: export the model (fp16, with a card) into snapshots/ every so often: a GPU lease returns files of
    # at most 16 MiB, which the export is and a checkpoint with optimizer state is not.
    snapshot_every_minutes: float = 0.0
    seed: int = 1234

    def __post_init__(self) -> None:
        check_run_numbers(self)


@dataclass
class TTSTrainingConfig:
    name: str = "tts"
    model: AcousticConfig = field(default_factory=AcousticConfig)
    train: TTSTrainConfig = field(default_factory=TTSTrainConfig)
    data: TTSDataConfig = field(default_factory=TTSDataConfig)
    sources: dict[str, str] = field(default_factory=dict)


def training_batch(items: list[Utterance], stats: dict[str, float], device: torch.device) -> dict[str, Any]:
    """A padded batch plus the aligner's diagonal prior: everything a teacher-forced pass takes."""
    batch = collate(items, stats, device)
    batch["prior"] = beta_binomial_prior((batch["tokens"] != 0).sum(1), batch["mel_lens"])
    return batch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(1)
    return (x * mask).sum() / (mask.expand_as(x).sum()).clamp(min=1)


def tts_losses(out: dict[str, torch.Tensor], batch: dict[str, Any], tc: TTSTrainConfig,
               aligner_step: int) -> dict[str, torch.Tensor]:
    """The weighted losses; ``aligner_step`` counts the steps the aligner has trained (the binarisation
    loss ramps in by it)."""
    text_mask, frame_mask = out["text_mask"], out["frame_mask"]
    text_lens, mel_lens = text_mask.sum(1), batch["mel_lens"]
    losses = {
        "mel_l1": masked_mean((out["mel"].float() - batch["mel"]).abs(), frame_mask),
        "duration": masked_mean((out["log_duration"].float() - torch.log1p(out["durations"].float())) ** 2, text_mask),
        "pitch": masked_mean((out["pitch"].float() - out["target_pitch"]) ** 2, text_mask),
        "energy": masked_mean((out["energy"].float() - out["target_energy"]) ** 2, text_mask),
        "align": forward_sum_loss(out["log_probs"].float(), text_lens, mel_lens),
    }
    soft = F.log_softmax(out["log_probs"].float(), dim=-1)
    losses["bin"] = -(soft * out["hard"]).sum() / out["hard"].sum().clamp(min=1)
    bin_on = min(1.0, max(0.0, (aligner_step - tc.bin_start_steps) / max(tc.bin_start_steps, 1)))
    losses["alignment"] = tc.align_weight * losses["align"] + tc.bin_weight * bin_on * losses["bin"]
    losses["loss"] = (losses["mel_l1"] + tc.duration_weight * losses["duration"] + tc.pitch_weight * losses["pitch"]
                      + tc.energy_weight * losses["energy"] + losses["alignment"])
    return losses


class TTSTrainer:
    def __init__(self, config: TTSTrainingConfig, data_dirs: list[str], run_dir: str | Path, device: str = "auto",
                 resume: str | None = None, init_generator: str | None = None) -> None:
        self.cfg = config
        tc = config.train
        self.dist, self.device = init_distributed(device)
        self.run_dir = Path(run_dir)
        self.run_lock = claim_run_dir(self.run_dir, resume) if self.dist.main else None
        torch.manual_seed(tc.seed + self.dist.rank)
        self.gen = torch.Generator().manual_seed(tc.seed + 1000 * self.dist.rank)
        if resume and init_generator:
            raise ValueError("choose one of resume and init_generator")
        export = read_export(init_generator, "tts", AcousticConfig, config.model) if init_generator else None
        ck = load_checkpoint(resume, self.device, "tts") if resume else None
        if ck is not None:  # before the features are built: a recipe that does not fit fails at once
            check_model_config(resume, ck["config"]["model"], AcousticConfig, config.model)
            note_recipe_changes(resume, ck["config"], config)
        # A continued or resumed model keeps the symbol table its embedding rows were trained for, and the
        # normalisation its pitch and energy predictors learned (the data's may have changed since).
        trained = export[1] if export else ck
        self.table = SymbolTable.from_dict(trained["symbols"]) if trained else SymbolTable()
        # Rank 0 computes the feature cache alone; the other ranks then read it. Parallel builds would do the
        # work twice and race on numba's cache (two fresh processes compiling librosa's pYIN corrupted it).
        if self.dist.world > 1 and not self.dist.main:
            torch.distributed.barrier()
        utterances = build_features(data_dirs, config.data, config.model.mel, self.table)
        if self.dist.world > 1 and self.dist.main:
            torch.distributed.barrier()
        self.train_set, self.valid_set = split(utterances, config.data)
        speakers = 1 + max((u.speaker for u in utterances), default=0)  # build_features numbers them
        recorded = len(set(config.data.speaker_numbers(data_dirs)))
        if speakers > 1 and config.model.n_speakers < speakers:
            raise ValueError(f"{recorded} speaker(s) in the data folders with {len(config.data.augment_speeds)} speed "
                             f"perturbation(s) make {speakers} speakers: set model.n_speakers to {speakers} "
                             f"(it is {config.model.n_speakers})")
        if not self.train_set:
            raise ValueError(f"no training utterances in {data_dirs}")
        self.stats = statistics(self.train_set)
        if trained and trained["stats"] != self.stats:
            log.info("keeping the pitch and energy statistics the model was trained with (%s), not these "
                     "data's (%s)", _rounded(trained["stats"]), _rounded(self.stats))
            self.stats = dict(trained["stats"])
        if not all(math.isfinite(v) for v in self.stats.values()):
            raise ValueError(f"no voiced frame in the training clips (pitch searched at {config.data.fmin:g}-"
                             f"{config.data.fmax:g} Hz, data.fmin/data.fmax): silent or unpitched audio, or a "
                             f"search range that misses the voice")
        self.data_info = {Path(d).name: self.cfg.sources.get(Path(d).name, "unspecified") for d in data_dirs}
        self.data_info["utterances"] = {"train": len(self.train_set), "validation": len(self.valid_set),
                                        "train_minutes": round(sum(u.mel.shape[-1] for u in self.train_set)
                                                               * config.model.mel.hop_length
                                                               / config.model.mel.sample_rate / 60, 2)}
        if config.data.transcripts:
            self.data_info["transcripts"] = dict(config.data.transcripts)
        if config.data.augment_speeds:
            self.data_info["augmentation"] = {"speed_perturbation": config.data.augment_speeds,
                                              "pseudo_speakers": speakers - recorded}
        self.model = AcousticModel(config.model, len(self.table)).to(self.device)
        self.params = list(self.model.parameters())
        named = list(self.model.named_parameters())
        # Two groups, so that a fresh aligner under a continued model gets its own warm-up (see _lr).
        self.opt = torch.optim.AdamW([{"params": [p for n, p in named if not n.startswith("aligner.")]},
                                      {"params": [p for n, p in named if n.startswith("aligner.")]}],
                                     tc.learning_rate, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
        self.step, self.prior_minutes, self.t0 = 0, 0.0, time.monotonic()
        self.align_from = self.head_start_until = 0  # where the aligner started; joint training resumes at the latter
        self.continued_from: dict[str, Any] = {}
        self.D = MelDiscriminator(tc.disc_channels).to(self.device) if tc.adversarial_weight > 0 else None
        self.opt_d = (torch.optim.AdamW(self.D.parameters(), tc.disc_learning_rate, betas=(0.8, 0.99))
                      if self.D is not None else None)
        self.adversarial_from = 0
        self.loss_names = LOSSES + (GAN_LOSSES if self.D is not None else ())
        if export:
            self._init_generator(*export)
        if ck is not None:
            self.model.load_state_dict(ck["model"])
            self.opt.load_state_dict(ck["opt"])
            self.step, self.prior_minutes = ck["step"], ck["device_minutes"]
            self.align_from, self.continued_from = ck.get("align_from", 0), ck.get("continued_from", {})
            if self.D is not None and "discriminator" in ck:
                self.D.load_state_dict(ck["discriminator"])
                self.opt_d.load_state_dict(ck["opt_d"])
                self.adversarial_from = ck["adversarial_from"]
            elif self.D is not None:
                self.adversarial_from = self.step
                log.info("%s has no mel discriminator: a fresh one starts at step %d", resume, self.step)
            # From the recipe, not the checkpoint: a resumed head start can be lengthened with --set.
            if self.continued_from:
                self.head_start_until = self.align_from + tc.align_head_start_steps
            set_rng_state(ck["rng"])
            self.gen.set_state(ck["data_rng"])
            log.info("resumed from %s at step %d", resume, self.step)
        self.run_model, self.d_run = self.model, self.D
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # While the aligner trains alone the rest of the model gets no gradient, which DDP must be told.
            self.run_model = DDP(self.model, device_ids=ids, find_unused_parameters=self.step < self.head_start_until)
            if self.D is not None:
                self.d_run = DDP(self.D, device_ids=ids)
        self.runlog = RunLog(self.run_dir, self.step if resume else None) if self.dist.main else None
        if resume and self.runlog:  # a run killed after its last checkpoint: the time since is on its log
            self.prior_minutes += self.runlog.minutes_after(resume, self.prior_minutes)
        if self.runlog:
            log.info("TTS: %d training / %d validation utterances, %.1f M parameters", len(self.train_set),
                     len(self.valid_set), sum(p.numel() for p in self.params) / 1e6)

    def _init_generator(self, wpath: Path, card: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
        """Continue an exported acoustic model (across sessions only exports are kept): its weights, step
        count and device minutes; a fresh aligner trains alone until ``head_start_until``."""
        self.model.load_export(state, wpath.name)
        self.step = self.align_from = int(card["training"]["steps"])
        self.prior_minutes = float(card["training"]["device_minutes"])
        self.head_start_until = self.step + self.cfg.train.align_head_start_steps
        self.adversarial_from = self.head_start_until
        self.continued_from = continuation(card, wpath)
        log.info("initialised the acoustic model from %s (step %d); a fresh aligner trains alone until step %d",
                 wpath, self.step, self.head_start_until)

    def _lr(self, origin: int = 0) -> float:
        """Inverse-square-root schedule with warm-up, counted from step ``origin``."""
        tc = self.cfg.train
        step = self.step - origin
        warm = min(1.0, (step + 1) / max(tc.warmup_steps, 1))
        return tc.learning_rate * warm * min(1.0, math.sqrt(max(tc.warmup_steps, 1) / (step + 1)))

    def _batch(self, items: list[Utterance]) -> dict[str, Any]:
        return training_batch(items, self.stats, self.device)

    def train_step(self) -> torch.Tensor:
        tc = self.cfg.train
        size, groups = tc.batch_size, max(tc.length_buckets, 1)
        pool = torch.randint(len(self.train_set), (size * groups,), generator=self.gen).tolist()
        # Batches of similar lengths waste less compute on padding (on the LJ prompts, 66 % of the frames are
        # real in a random batch of 16 and 89 % in a group of 16 out of 64 sorted); picking the group at random
        # leaves every utterance equally likely to be trained on.
        pool.sort(key=lambda i: self.train_set[i].mel.shape[-1])
        group = int(torch.randint(groups, (1,), generator=self.gen))
        batch = self._batch([self.train_set[i] for i in pool[group * size:(group + 1) * size]])
        model_group, aligner_group = self.opt.param_groups
        model_group["lr"], aligner_group["lr"] = self._lr(), self._lr(self.align_from)
        aligning_only = self.step < self.head_start_until
        for p in model_group["params"]:
            p.requires_grad_(not aligning_only)  # frozen params get no gradient, so AdamW leaves them be
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=tc.bf16 and self.device.type == "cuda"):
            out = self.run_model(batch["tokens"], batch["mel"], batch["mel_lens"], batch["pitch"], batch["energy"],
                                 batch["voiced"], batch["prior"], batch["speakers"])
        losses = tts_losses(out, batch, tc, self.step - self.align_from)
        if self.D is not None:
            self._adversarial(losses, out["mel"], batch, active=not aligning_only)
        self.opt.zero_grad(set_to_none=True)
        losses["alignment" if aligning_only else "loss"].backward()
        losses["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.params, tc.grad_clip)
        finite = torch.isfinite(losses["grad_norm"])
        if finite:
            self.opt.step()
        # A step counts as skipped when either update was (as the vocoder trainer counts its two).
        critic_skipped = losses.get("d_skipped", torch.zeros((), device=self.device))
        losses["skipped"] = torch.maximum((~finite).float(), critic_skipped)
        self.step += 1
        return torch.stack([losses[k].detach().float() for k in self.loss_names])

    def _adversarial(self, losses: dict[str, torch.Tensor], pred: torch.Tensor, batch: dict[str, Any],
                     active: bool) -> None:
        """One discriminator step on random mel windows, then its losses for the acoustic model."""
        tc = self.cfg.train
        if not active:
            losses.update({k: torch.zeros((), device=self.device) for k in GAN_LOSSES})
            return
        real, fake = mel_windows(batch["mel"], pred.float(), batch["mel_lens"], tc.disc_frames, self.gen)
        (score_r, _), (score_f, _) = self.d_run(real, fake.detach())
        losses["d_loss"] = discriminator_loss(score_r, score_f)
        losses["d_acc"] = discriminator_accuracy(score_r, score_f).detach()
        self.opt_d.zero_grad(set_to_none=True)
        losses["d_loss"].backward()
        # The generator's guard, for the critic: a diverged critic's non-finite update would make its weights
        # NaN, to be checkpointed and to feed the model NaN gradients from then on.
        d_norm = torch.nn.utils.get_total_norm([p.grad for p in self.D.parameters() if p.grad is not None])
        losses["d_skipped"] = (~torch.isfinite(losses["d_loss"]) | ~torch.isfinite(d_norm)).float()
        if not losses["d_skipped"]:
            self.opt_d.step()
        (_, feats_r), (score_f, feats_f) = self.d_run(real, fake)
        losses["adversarial"] = generator_loss(score_f)
        losses["feature"] = feature_loss([[f.detach() for f in fs] for fs in feats_r], feats_f)
        ramp = min(1.0, (self.step - self.adversarial_from + 1) / max(tc.adversarial_ramp_steps, 1))
        losses["loss"] = losses["loss"] + ramp * (tc.adversarial_weight * losses["adversarial"]
                                                  + tc.feature_weight * losses["feature"])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.valid_set:
            return {}
        self.model.eval()
        batch = self._batch(self.valid_set)
        out = self.model(batch["tokens"], batch["mel"], batch["mel_lens"], batch["pitch"], batch["energy"],
                         batch["voiced"], batch["prior"], batch["speakers"])
        losses = tts_losses(out, batch, self.cfg.train, self.step - self.align_from)
        # Free-running: predicted durations against the aligner's, as a total-length ratio.
        mel, frames, _ = self.model.infer(batch["tokens"], speakers=batch["speakers"])
        ratio = (frames.float() / batch["mel_lens"].float()).mean()
        self.model.train()
        if self.runlog:
            self.runlog.spectrogram_image("valid/predicted_mel", mel[0, :, : int(frames[0])], self.step)
        return {f"valid_{k}": float(v) for k, v in losses.items()} | {"valid_length_ratio": float(ratio)}

    def device_minutes(self) -> float:
        return self.prior_minutes + (time.monotonic() - self.t0) / 60 * self.dist.world

    def checkpoint(self) -> Path:
        return save_checkpoint(self.run_dir / "checkpoint.pt", {
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
            "device_minutes": self.device_minutes(), "rng": rng_state(), "data_rng": self.gen.get_state(),
            "config": to_dict(self.cfg), "stats": self.stats, "symbols": self.table.to_dict(),
            "device": device_name(self.device), "data": self.data_info, "align_from": self.align_from,
            "continued_from": self.continued_from,
            **({"discriminator": self.D.state_dict(), "opt_d": self.opt_d.state_dict(),
                "adversarial_from": self.adversarial_from} if self.D is not None else {})})

    def export(self, path: Path, validation: dict[str, float] | None = None) -> Path:
        """Without ``validation`` (a snapshot), the card takes the last figures logged."""
        if validation is None:
            validation = validation_at(self.run_dir / "metrics.jsonl", self.step)
        return export_tts(self.model, self.cfg, path, self.step, self.device_minutes(), device_name(self.device),
                          self.data_info, self.stats, self.table, validation, continued_from=self.continued_from)

    @checkpoint_on_interrupt
    def fit(self) -> dict[str, float]:
        tc = self.cfg.train
        self.prior_minutes, self.t0 = self.device_minutes(), time.monotonic()
        last_val = last_ck = last_log = last_snap = self.t0
        acc = torch.zeros(len(self.loss_names), device=self.device)
        n = 0
        row: dict[str, Any] = {}
        bar = tqdm(total=tc.max_steps, initial=self.step, disable=not self.dist.main, mininterval=5,
                   desc="train tts", unit="step")
        self.model.train()
        skipped = self.loss_names.index("skipped")
        bad = NonFiniteSteps(tc.nan_patience, self.device)
        while self.step < tc.max_steps:
            stats = self.train_step()
            acc += stats
            n += 1
            bad.add(stats[skipped])
            bar.update(1)
            if self.step % tc.log_every and self.step < tc.max_steps:
                continue
            now = time.monotonic()
            timed_out = rank0_decides(tc.max_minutes > 0 and (now - self.t0) / 60 >= tc.max_minutes,
                                      self.dist, self.device)
            row = mean_row(acc, n, self.loss_names, self.dist)
            row["skipped"] *= n
            row.update(step=self.step, lr=self._lr(), device_minutes=self.device_minutes(),
                       steps_per_s=n / max(now - last_log, 1e-9))
            bad.check(self.step, row["skipped"])
            acc.zero_()
            n, last_log = 0, now
            if self.dist.main and now - last_val >= tc.validate_every_minutes * 60:
                row.update(self.validate())
                last_val = now
            if self.dist.main:
                self.runlog.row(self.step, row)
                bar.set_postfix(mel=f"{row['mel_l1']:.3f}", align=f"{row['align']:.2f}")
            if self.dist.main and now - last_ck >= tc.checkpoint_every_minutes * 60:
                self.checkpoint()
                last_ck = now
            if self.dist.main and tc.snapshot_every_minutes > 0 and now - last_snap >= tc.snapshot_every_minutes * 60:
                self.export(self.run_dir / "snapshots" / f"step{self.step:07d}.safetensors")
                last_snap = now
            if timed_out:
                log.info("time budget of %.1f min reached at step %d", tc.max_minutes, self.step)
                break
        bar.close()
        return finish_run(self, row)


def _rounded(stats: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in stats.items())


def export_tts(model: nn.Module, cfg: TTSTrainingConfig, path: Path, step: int, minutes: float, device: str,
               data: dict[str, Any], stats: dict[str, float], table: SymbolTable, validation: dict[str, float],
               dtype: torch.dtype = torch.float16, continued_from: dict[str, Any] | None = None) -> Path:
    """Inference weights (the aligner is training-only and left out) plus the model card."""
    state = {k: v for k, v in unwrap(model).state_dict().items() if not k.startswith("aligner.")}
    card = {"name": path.stem, "kind": "tts", "language": cfg.data.language, "config": to_dict(cfg.model),
            "symbols": table.to_dict(), "stats": stats, "parameters": sum(v.numel() for v in state.values()),
            "dtype": str(dtype).removeprefix("torch."),
            "training": {"steps": step, "device_minutes": round(minutes, 2), "device": device,
                         "recipe": to_dict(cfg.train), "date": date.today().isoformat(),
                         **({"continued_from": continued_from} if continued_from else {})},
            "data": data, "validation": validation}
    return weights.write_weights(path, state, card, dtype)


def model_from_checkpoint(ck: dict[str, Any]) -> tuple[TTSTrainingConfig, SymbolTable, AcousticModel]:
    """The training config, symbol table and model (aligner included) of a loaded training checkpoint."""
    cfg = from_dict(TTSTrainingConfig, ck["config"])
    table = SymbolTable.from_dict(ck["symbols"])
    model = AcousticModel(cfg.model, len(table))
    model.load_state_dict(ck["model"])
    return cfg, table, model


def export_tts_checkpoint(checkpoint: str | Path, out: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    ck = load_checkpoint(checkpoint, torch.device("cpu"), "tts")
    cfg, table, model = model_from_checkpoint(ck)
    validation = validation_at(Path(checkpoint).parent / "metrics.jsonl", ck["step"])
    return export_tts(model, cfg, Path(out), ck["step"], ck["device_minutes"], ck.get("device", "unknown"),
                      ck.get("data", {}), ck["stats"], table, validation, dtype, ck.get("continued_from"))
