"""Inference front door: ``TimbreModel.load()`` then ``model.note(60, instrument="violin")``."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogan import weights
from audiogan.audio.io import recording, resample
from audiogan.config import from_dict, is_int, is_real
from audiogan.timbre.analysis import analyse
from audiogan.timbre.choices import MODES, SEED_MAX, SEED_RANGE, seed_problem  # noqa: F401 (SEED_RANGE: users import it here)
from audiogan.timbre.expression import CombConfig, harmonic_comb, sound_onset
from audiogan.timbre.model import NoteGANConfig, slerp
from audiogan.timbre.spectral import NoteSpectrogram, midi_to_hz
from audiogan.vocoder.inference import pick_device

Timbre = str | Sequence[float] | torch.Tensor
SILENCE = 1e-4  # a peak below -80 dBFS: nothing to match
# Seeds below this draw torch's noise: its CPU generator reads a seed's low 32 bits only.
TORCH_SEEDS = 2**32


def check_seed(seed: object) -> None:
    if problem := seed_problem(seed):
        raise ValueError(f"seed {problem}")


def note_seeds(seed: int, start: int, count: int) -> list[int]:
    """The seeds of notes ``start`` .. ``start + count - 1`` of a piece seeded ``seed`` (conversion, MIDI): note
    i takes seed + i, wrapped, so that the largest seed also plays a piece of many notes."""
    check_seed(seed)
    return [(seed + i) % (SEED_MAX + 1) for i in range(start, start + count)]


def seed_noise(seeds: Sequence[int], dim: int) -> torch.Tensor:
    """Each seed's latent noise: [len(seeds), dim] float32 standard normals on the CPU, the same for the same
    seed and another for every other seed.

    torch's generator gave seeds 2**32 apart the same noise, so a seed below 2**32 keeps torch's noise, bit
    for bit what it always drew, and a larger one draws from Philox keyed by the whole seed instead."""
    for s in seeds:
        check_seed(s)
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(int(s))) if s < TORCH_SEEDS
            else torch.from_numpy(_philox_normals(int(s), dim)) for s in seeds]
    return torch.stack(rows) if rows else torch.empty(0, dim)


def _philox_normals(key: int, dim: int) -> np.ndarray:
    """``dim`` float32 standard normals from Philox's raw stream under ``key`` (Box-Muller in float64).
    NumPy keeps a bit generator's raw stream from version to version but not Generator's distributions
    (its policy names moving normals to another algorithm as allowed), so the normals are made here; the
    rounding to float32 hides the last-bit differences of one platform's log and cos from another's."""
    pairs = (dim + 1) // 2
    bits = np.random.Philox(key=key).random_raw(2 * pairs).reshape(2, pairs) >> np.uint64(11)
    radius = np.sqrt(-2.0 * np.log((bits[0] + 1) * 2.0**-53))  # u in (0, 1]: log(0) cannot happen
    angle = 2 * np.pi * bits[1] * 2.0**-53
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:dim].astype(np.float32)


def note_problem(cfg: NoteGANConfig, pitch: int, seconds: float | None) -> str | None:
    """Why a model with ``cfg`` cannot make this note, or None: its card alone tells (render checks lines so)."""
    if seconds is not None and (not is_real(seconds) or not np.isfinite(seconds)):
        return f"seconds {seconds!r} is not a finite number (the note's length in seconds)"
    if not cfg.pitch_min <= pitch <= cfg.pitch_max:
        return f"pitch {pitch} is outside this model's range {cfg.pitch_min}..{cfg.pitch_max}"
    spectral = cfg.spectral
    if seconds is not None and not spectral.frame_seconds <= seconds <= spectral.seconds:
        return f"seconds {seconds} is out of range {spectral.frame_seconds:.3f}..{spectral.seconds:g}"
    return None


def resolve_instrument(name: str, instruments: Sequence[str]) -> str:
    """A model's name for an instrument as a person may type it ("Acoustic Grand Piano" is
    acoustic_grand_piano); a clear error, with the nearest names, for one it does not know."""
    if name in instruments:
        return name
    key = re.sub(r"[\s-]+", "_", name.strip().lower())
    if key in instruments:
        return key
    near = difflib.get_close_matches(key, list(instruments), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
    raise ValueError(f"unknown instrument {name!r}{hint}; this model knows: {', '.join(instruments)}")


def instrument_combs(card: dict[str, Any], instruments: Sequence[str]) -> dict[str, CombConfig]:
    """A card's ``combs``: the instruments whose notes are cleaned otherwise than by the plain half-harmonic
    comb, by name; a name the model does not know is an error (its comb would silently never apply)."""
    combs = {name: from_dict(CombConfig, value, f"combs.{name}") for name, value in card.get("combs", {}).items()}
    if unknown := sorted(set(combs) - set(instruments)):
        raise ValueError(f"the card's combs name instruments this model does not know: {', '.join(unknown)}")
    return combs


class TimbreModel:
    def __init__(self, generator: torch.nn.Module, card: dict[str, Any], device: str | torch.device = "cpu",
                 comb: bool = True, phase_lock: bool = True, channels_last: bool | None = None) -> None:
        self.device = pick_device(device)
        self.comb = comb  # clean the half-harmonics out of generated notes (expression.harmonic_comb)
        self.phase_lock = phase_lock  # decode with the partials' phases locked (spectral.locked_phase)
        self.G = generator.eval().to(self.device).requires_grad_(False)  # inversion optimises a latent only
        # Channels-last weights take oneDNN's blocked convolutions: the generator ran 1.2-1.6x faster on CPU
        # (benchmarks/RESULTS.md, "channels-last note generator"). Not yet measured on a GPU, so off there.
        if self.device.type == "cpu" if channels_last is None else channels_last:
            self.G.to(memory_format=torch.channels_last)
        # Notes per forward pass; more are generated in passes of this size. Past it, the time per note
        # grew: on 2 CPU cores 10 ms at 8 against 16 ms at 64, and an H200 ran batches of 256 and 1,024
        # at 55 % of the notes/s of batches of 64 (benchmarks/RESULTS.md, "notes in passes").
        self.pass_size = 8 if self.device.type == "cpu" else 64
        self.cfg = generator.cfg
        self.card = card
        self.spectral = NoteSpectrogram(self.cfg.spectral).to(self.device)
        self.combs = instrument_combs(card, self.cfg.instruments)
        self._comb_table = self._make_comb_table()

    @classmethod
    def load(cls, name_or_path: str | Path = "default", device: str | torch.device = "auto",
             comb: bool = True, phase_lock: bool = True, channels_last: bool | None = None) -> TimbreModel:
        from audiogan.train.timbre_trainer import load_generator

        G, card = load_generator(weights.resolve(name_or_path, "timbre"))
        return cls(G, card, device, comb, phase_lock, channels_last)

    @property
    def instruments(self) -> list[str]:
        return list(self.cfg.instruments)

    @property
    def sample_rate(self) -> int:
        return self.cfg.spectral.sample_rate

    def instrument_name(self, name: str) -> str:
        return resolve_instrument(name, self.cfg.instruments)

    def timbre(self, spec: Timbre) -> torch.Tensor:
        """An instrument name or a point of the timbre space -> [timbre_dim]."""
        if isinstance(spec, str):
            index = torch.tensor([self.cfg.instruments.index(self.instrument_name(spec))], device=self.device)
            return self.G.instrument(index)[0].detach()
        vector = torch.as_tensor(spec, dtype=torch.float32, device=self.device).flatten()
        if vector.numel() != self.cfg.timbre_dim:
            raise ValueError(f"a timbre latent has {self.cfg.timbre_dim} values, got {vector.numel()}")
        if not torch.isfinite(vector).all():
            raise ValueError("timbre latent contains NaN or Inf")
        return vector

    def check_timbre(self, spec: object, argument: str, names_only: bool = False) -> None:
        """That ``argument`` is a timbre (``names_only``: an instrument name) by its type; its name and length
        are checked where it is used. The one check of every timbre argument: ``note(60, instrument=3)`` once
        failed as "a timbre latent has 64 values, got 1", naming neither the argument nor what it takes."""
        if isinstance(spec, str):
            return
        if not names_only:
            if isinstance(spec, torch.Tensor) and not (spec.dtype.is_complex or spec.dtype == torch.bool):
                return
            if isinstance(spec, np.ndarray) and spec.dtype.kind in "iuf":
                return
            if isinstance(spec, Sequence) and len(spec) > 0 and all(is_real(v) for v in spec):
                return
        name = "an instrument name (a str, one of .instruments)"
        takes = name if names_only else f"{name} or a timbre latent ({self.cfg.timbre_dim} numbers)"
        raise ValueError(f"{argument} takes {takes}, not {type(spec).__name__} {spec!r}")

    check_seed = staticmethod(check_seed)

    def _check(self, pitch: int, velocity: int, seconds: float | None) -> None:
        for name, value in (("pitch", pitch), ("velocity", velocity)):  # 60.5 once ran as 60, or crashed in torch
            if isinstance(value, (bool, str)) or not isinstance(value, (int, np.integer, float, np.floating)) \
                    or not np.isfinite(value) or value != int(value):
                raise ValueError(f"{name} {value!r} is not a whole number (a MIDI {name})")
        if not 1 <= velocity <= 127:
            raise ValueError(f"velocity {velocity} is out of range 1..127")
        if problem := note_problem(self.cfg, pitch, seconds):
            raise ValueError(problem)

    @torch.inference_mode()
    def generate(self, pitches: Sequence[int], timbres: Sequence[Timbre], velocities: Sequence[int] | None = None,
                 seeds: Sequence[int] | None = None, seconds: float | None = None) -> np.ndarray:
        """Many notes, each generated whole, in parallel passes of up to ``pass_size`` notes -> [N, samples]
        float32. Same seed and condition, same note."""
        if isinstance(timbres, str):  # its letters would be taken as n instruments, or n as a wrong length
            raise ValueError(f"timbres is one string ({timbres!r}); give one timbre per pitch, e.g. [{timbres!r}]")
        n = len(pitches)
        # "is None", not "or": an array's truth value is ambiguous
        velocities = [100] * n if velocities is None else list(velocities)
        seeds = [0] * n if seeds is None else list(seeds)
        if not n or len(timbres) != n or len(velocities) != n or len(seeds) != n:
            raise ValueError("pitches, timbres, velocities and seeds must be non-empty and the same length")
        for p, v in zip(pitches, velocities, strict=True):
            self._check(p, v, seconds)
        for i, t in enumerate(timbres):
            self.check_timbre(t, f"timbres[{i}]")
        for s in seeds:
            self.check_seed(s)
        pitches, velocities = [int(p) for p in pitches], [int(v) for v in velocities]
        step = self.pass_size
        return np.concatenate([self._generate(pitches[i:i + step], timbres[i:i + step], velocities[i:i + step],
                                              seeds[i:i + step], seconds) for i in range(0, n, step)])

    def _generate(self, pitches: Sequence[int], timbres: Sequence[Timbre], velocities: list[int], seeds: list[int],
                  seconds: float | None) -> np.ndarray:
        z = seed_noise(seeds, self.cfg.latent_dim).to(self.device)
        timbre = torch.stack([self.timbre(t) for t in timbres])
        spec = self.G(z, torch.tensor(list(pitches), device=self.device), timbre,
                      torch.tensor(velocities, device=self.device))
        audio = self.spectral.decode(spec.float(), lock_phase=self.phase_lock)
        if self.comb:
            f0 = midi_to_hz(torch.tensor(list(pitches), device=self.device, dtype=torch.float32))
            audio = harmonic_comb(audio, f0, self.sample_rate, **self.comb_settings(timbre))
        # Notes are trained loudness-normalised per velocity layer; velocity sets the output level.
        peak = audio.abs().amax(dim=1, keepdim=True).clamp(min=1e-6)
        gain = torch.tensor(velocities, device=self.device, dtype=torch.float32)[:, None] / 127 * 0.9
        audio = audio / peak * gain
        if seconds is not None:
            keep = int(seconds * self.sample_rate)
            fade = torch.linspace(1, 0, min(256, keep), device=self.device)
            audio = audio[:, :keep].clone()
            audio[:, keep - len(fade):] *= fade
        return audio.cpu().numpy()

    def _make_comb_table(self) -> tuple[torch.Tensor, ...] | None:
        """The instruments with a comb of their own as tensors: embeddings [M, D], the distance from each to
        the nearest other instrument's [M], their settings' departures from the plain comb [M, len(SCALARS)],
        and their partials' frequency ratios, owners and amplitudes [K]."""
        if not self.combs:
            return None
        with torch.no_grad():
            table = self.G.instrument.weight.detach()
            index = torch.tensor([self.cfg.instruments.index(n) for n in self.combs], device=self.device)
            centres = table[index]
            apart = torch.linalg.vector_norm(centres[:, None] - table[None], dim=-1)
            apart[torch.arange(len(index)), index] = torch.inf
            radius = apart.amin(dim=1).clamp(min=1e-6)  # a model of one instrument: its whole space is its own
        plain = CombConfig()
        offsets = torch.tensor([[getattr(c, k) - getattr(plain, k) for k in CombConfig.SCALARS]
                                for c in self.combs.values()], device=self.device)
        partials = [(m, ratio, db) for m, c in enumerate(self.combs.values()) for ratio, db in c.partials]
        owners = torch.tensor([m for m, _, _ in partials], device=self.device, dtype=torch.long)
        ratios = torch.tensor([r for _, r, _ in partials], device=self.device)
        amplitudes = torch.tensor([10 ** (db / 20) for _, _, db in partials], device=self.device)
        return centres, radius, offsets, ratios, owners, amplitudes

    def comb_settings(self, timbre: torch.Tensor) -> dict[str, torch.Tensor]:
        """Timbres [B, timbre_dim] -> harmonic_comb's per-note settings (none when no instrument has a comb
        of its own). An instrument's comb applies in full at its own timbre and fades linearly to the plain
        comb at the distance of the nearest other instrument, so a morph or an inverted recording near it
        gets part of it (halfway to that instrument, half) and every other instrument the plain comb, bit
        for bit (plain + 0.0)."""
        if self._comb_table is None:
            return {}
        centres, radius, offsets, ratios, owners, amplitudes = self._comb_table
        near = (1 - torch.linalg.vector_norm(timbre[:, None] - centres[None], dim=-1) / radius).clamp(0, 1)
        plain = CombConfig()
        settings = {k: getattr(plain, k) + near @ offsets[:, i] for i, k in enumerate(CombConfig.SCALARS)}
        return {**settings, "ratios": ratios, "gains": near[:, owners] * amplitudes}

    def note(self, pitch: int, instrument: str | None = None, latent: Sequence[float] | None = None,
             velocity: int = 100, seconds: float | None = None, seed: int = 0) -> np.ndarray:
        if (instrument is None) == (latent is None):
            raise ValueError("give exactly one of instrument= or latent=")
        if instrument is not None:  # a latent given as instrument= would be played, unnamed, as a latent
            self.check_timbre(instrument, "instrument", names_only=True)
        return self.generate([pitch], [instrument if instrument is not None else latent], [velocity], [seed],
                             seconds)[0]

    def interpolate(self, a: Timbre, b: Timbre, pitch: int, alpha: float | None = None, steps: int | None = None,
                    mode: str = "slerp", velocity: int = 100, seconds: float | None = None,
                    seed: int = 0) -> tuple[np.ndarray, list[float]]:
        """Notes from timbre a (alpha 0) to b (alpha 1) with the same noise, so only the timbre moves."""
        if (alpha is None) == (steps is None):
            raise ValueError("give exactly one of alpha= or steps=")
        if alpha is not None and (not is_real(alpha) or not 0.0 <= alpha <= 1.0):
            raise ValueError(f"alpha {alpha} is out of range 0..1")
        if steps is not None and (not is_int(steps) or steps < 2):
            raise ValueError(f"steps must be a whole number >= 2, got {steps!r}")
        alphas = [alpha] if alpha is not None else [i / (steps - 1) for i in range(steps)]  # type: ignore[operator]
        mixed = self.mix(a, b, alphas, mode)
        notes = self.generate([pitch] * len(alphas), list(mixed), [velocity] * len(alphas), [seed] * len(alphas),
                              seconds)
        return notes, alphas

    @torch.no_grad()
    def mix(self, a: Timbre, b: Timbre, alphas: Sequence[float], mode: str = "slerp") -> torch.Tensor:
        """Timbre vectors along the way from a to b, [len(alphas), timbre_dim]."""
        if mode not in MODES:  # else a typo would quietly mix in a straight line
            raise ValueError(f"mode {mode!r} is not {' or '.join(MODES)}")
        self.check_timbre(a, "a")
        self.check_timbre(b, "b")
        ta, tb = self.timbre(a), self.timbre(b)
        w = torch.tensor(list(alphas), device=self.device, dtype=torch.float32)
        if not ((w >= 0) & (w <= 1)).all():  # beyond the end points slerp extrapolates; NaN poisons the latent
            raise ValueError(f"alphas must lie in 0..1, got {[float(x) for x in w]}")
        if mode == "slerp":
            mixed = slerp(ta.expand(len(w), -1), tb.expand(len(w), -1), w)
        else:
            mixed = (1 - w[:, None]) * ta + w[:, None] * tb
        # Exact end points: alpha 0 and 1 are the pure timbres, not a rounding of them.
        return torch.where(w[:, None] == 0, ta, torch.where(w[:, None] == 1, tb, mixed))

    def at_rate(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """A mono recording at ``rate`` (checked) -> float32 samples at the model's rate, to analyse or match,
        without its DC offset (a cheap interface's offset made the rests between notes loud frames without a
        pitch, and conversion refused a melody as polyphonic)."""
        wave = recording(wave, rate)
        wave = (wave - wave.mean(dtype=np.float64)).astype(np.float32) if len(wave) else wave
        return resample(torch.from_numpy(wave), rate, self.sample_rate).numpy()

    def note_pitch(self, wave: np.ndarray, rate: int) -> int:
        """The MIDI pitch a recorded note is played at: the longest note conversion's analysis finds in the
        two seconds from where the recording's sound begins. Noise, drums and chords are refused as
        conversion refuses them."""
        wave = recording(wave, rate)
        start = sound_onset(wave)
        events = analyse(wave[start:start + 2 * rate], rate, (self.cfg.pitch_min, self.cfg.pitch_max))
        return max(events, key=lambda e: e.offset - e.onset).pitch  # analyse never returns none

    def invert(self, wave: np.ndarray, rate: int, pitch: int | None = None, steps: int = 200, lr: float = 0.05,
               seed: int = 0, progress: bool = False) -> tuple[torch.Tensor, list[float]]:
        """The timbre latent whose note best matches a recorded note: gradient descent on the latent, the
        noise fixed, matching log-magnitude spectrograms with the level taken out (the generator's notes are
        level-normalised). Returns (latent [timbre_dim], loss per step); the latent can be used as any
        timbre, e.g. as an interpolation end point. ``progress``: a bar with the loss."""
        from tqdm import tqdm

        wave = self.at_rate(wave, rate)
        # Generated notes sound from their first sample: a recording's lead-in silence shifted every frame of
        # the match, and 0.3 s of it inverted a violin to a flute.
        wave = wave[sound_onset(wave):]
        if float(np.abs(wave[: self.cfg.spectral.samples]).max(initial=0.0)) < SILENCE:
            raise ValueError("the recording is silent: there is no timbre to match")
        if pitch is None:
            pitch = self.note_pitch(wave, self.sample_rate)
        self._check(pitch, 100, None)
        n = self.cfg.spectral.samples
        target_wave = torch.zeros(1, n, device=self.device)
        clip = torch.as_tensor(wave[:n], dtype=torch.float32, device=self.device)
        target_wave[0, : len(clip)] = clip
        target = self.spectral.encode(target_wave)[:, 0]
        target = target - target.mean()
        z = seed_noise([seed], self.cfg.latent_dim).to(self.device)
        with torch.no_grad():
            start = self.G.instrument.weight.mean(0, keepdim=True)
        latent = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([latent], lr=lr)
        p = torch.tensor([pitch], device=self.device)
        losses = []
        with tqdm(total=steps, desc="invert", unit="step", disable=not progress) as bar:
            for _ in range(steps):
                with torch.enable_grad():
                    spec = self.G(z, p, latent)[:, 0]
                    loss = (spec - spec.mean() - target).abs().mean()
                    opt.zero_grad()
                    loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
                bar.update()
        return latent.detach()[0], losses
