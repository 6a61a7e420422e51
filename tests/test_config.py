"""Typed YAML configs: every shipped recipe loads, and mistakes are named."""

from __future__ import annotations

import pytest

from audiogan.audio import MelConfig
from audiogan.config import ConfigError, from_dict, load_yaml, override_recipe, to_dict
from audiogan.train.vocoder_trainer import VocoderTrainingConfig
from audiogan.vocoder import VocoderConfig


def write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["hifigan_v1", "hifigan_v2", "hifigan_v3", "istft_16k", "tiny_test"])
def test_shipped_recipes_load_and_round_trip(configs_dir, name):
    cfg = load_yaml(VocoderTrainingConfig, configs_dir / f"{name}.yaml")
    assert isinstance(cfg.model, VocoderConfig)
    assert cfg.model.mel == MelConfig()  # every recipe shares the one 16 kHz mel front end
    assert isinstance(cfg.train.learning_rate, float)
    assert from_dict(VocoderTrainingConfig, to_dict(cfg)) == cfg


def test_tiny_recipe_is_cpu_sized(configs_dir):
    cfg = load_yaml(VocoderTrainingConfig, configs_dir / "tiny_test.yaml")
    assert cfg.model.generator.kind == "istft"
    assert cfg.train.discriminators == ["mrd"]
    assert cfg.train.bf16 is False and cfg.train.compile is False


def test_unknown_top_level_key_is_named(tmp_path):
    path = write(tmp_path, "name: x\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml: unknown keys \['learning_rate'\]"):
        load_yaml(VocoderTrainingConfig, path)


def test_unknown_nested_key_is_named_with_its_section(tmp_path):
    path = write(tmp_path, "train:\n  batchsize: 8\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml.train: unknown keys \['batchsize'\]") as info:
        load_yaml(VocoderTrainingConfig, path)
    assert "batch_size" in str(info.value)  # the known keys are listed, so the typo is easy to spot

    path = write(tmp_path, "model:\n  generator:\n    istft: {dims: 64}\n")
    with pytest.raises(ConfigError, match=r"model.generator.istft: unknown keys \['dims'\]"):
        load_yaml(VocoderTrainingConfig, path)


def test_wrong_types_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"train.batch_size: expected int, got 'sixteen'"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {batch_size: sixteen}\n"))
    with pytest.raises(ConfigError, match=r"train.discriminators: expected a list"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {discriminators: mpd}\n"))
    with pytest.raises(ConfigError, match=r"model: expected a mapping"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "model: 3\n"))


def test_ints_are_accepted_for_floats(tmp_path):
    cfg = load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {learning_rate: 1, betas: [0, 1]}\n"))
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.train.betas == (0.0, 1.0) and all(isinstance(b, float) for b in cfg.train.betas)


def test_exponents_without_a_dot_are_numbers_and_pairs_are_pairs(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; nobody writing a learning rate means the text.
    cfg = load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {learning_rate: 1e-3}\n"))
    assert cfg.train.learning_rate == 1e-3
    assert override_recipe(cfg, "learning_rate=2E-4").train.learning_rate == 2e-4
    with pytest.raises(ConfigError, match=r"train.learning_rate: expected float, got 'nan'"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {learning_rate: nan}\n"))
    with pytest.raises(ConfigError, match=r"TrainConfig.betas: expected 2 values, got 1"):
        override_recipe(cfg, "betas=[0.8]")
    with pytest.raises(ConfigError, match=r"train.gain_range: expected 2 values, got 3"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "train: {gain_range: [0.1, 0.5, 1.0]}\n"))


def test_empty_file_gives_defaults(tmp_path):
    assert load_yaml(VocoderTrainingConfig, write(tmp_path, "")) == VocoderTrainingConfig()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_yaml(VocoderTrainingConfig, tmp_path / "nope.yaml")


def test_invalid_mel_values_are_rejected_when_loading(tmp_path):
    with pytest.raises(ValueError, match="f_max"):
        load_yaml(VocoderTrainingConfig, write(tmp_path, "model:\n  mel: {f_max: 12000.0}\n"))


def test_overrides_reach_any_section_and_bare_keys_go_to_train():
    from audiogan.config import override_recipe
    from audiogan.train.tts_trainer import TTSTrainingConfig

    cfg = TTSTrainingConfig()
    cfg = override_recipe(cfg, "max_minutes=7")
    cfg = override_recipe(cfg, "data.augment_speeds=[0.9, 1.1]")
    cfg = override_recipe(cfg, "model.n_speakers=3")
    assert (cfg.train.max_minutes, cfg.data.augment_speeds, cfg.model.n_speakers) == (7, [0.9, 1.1], 3)
    with pytest.raises(ConfigError, match="no section 'trian'"):
        override_recipe(cfg, "trian.max_minutes=7")
    with pytest.raises(ConfigError, match="n_speaker"):
        override_recipe(cfg, "model.n_speaker=3")
    with pytest.raises(ValueError, match="augment_speeds"):
        override_recipe(cfg, "data.augment_speeds=[1.0]")


def test_overrides_reach_nested_sections():
    from audiogan.config import override_recipe
    from audiogan.train.timbre_trainer import TimbreTrainingConfig

    cfg = override_recipe(TimbreTrainingConfig(), "model.spectral.frequency_scale=mel")
    cfg = override_recipe(cfg, "model.spectral.hop_length=512")
    assert (cfg.model.spectral.frequency_scale, cfg.model.spectral.hop_length, cfg.model.spectral.n_fft) == (
        "mel", 512, 1024)
    with pytest.raises(ConfigError, match="hop"):
        override_recipe(cfg, "model.spectral.hop=3")
    with pytest.raises(ValueError, match="frequency_scale"):
        override_recipe(cfg, "model.spectral.frequency_scale=bark")
