"""Training data: finding files, the validation split, the decode cache and the clip bank's crops."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogan.audio import MelConfig, MelSpectrogram, normalize_peak, resample
from audiogan.config import load_yaml
from audiogan.train import data as data_module
from audiogan.train.data import ClipBank, DataConfig, find_audio, load_many, split_files
from audiogan.train.vocoder_trainer import VocoderTrainingConfig

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


def lj_rows(metadata: Path) -> list[str]:
    with metadata.open(newline="", encoding="utf-8") as fh:
        return [row[0] for row in csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE) if row]


# ----- find_audio ------------------------------------------------------------------------------------------------
def test_ljspeech_folder_gives_metadata_rows_with_files(tmp_path, demo_path, demo_wave):
    root = tmp_path / "lj"
    (root / "wavs").mkdir(parents=True)
    shutil.copy(demo_path, root / "wavs" / "LJ002-0001.flac")
    sf.write(root / "wavs" / "LJ001-0005.wav", demo_wave[:16000].numpy(), 16000)
    shutil.copy(demo_path, root / "wavs" / "unlisted.flac")  # in wavs/ but not in metadata: not a training file
    (root / "metadata.csv").write_text(
        'LJ002-0001|He said "hello", then left.|He said "hello", then left.\n'
        "\n"
        "LJ009-0009|no audio for this row|no audio for this row\n"
        "LJ001-0005|Second row|Second row\n",
        encoding="utf-8",
    )
    assert find_audio(root) == [root / "wavs" / "LJ002-0001.flac", root / "wavs" / "LJ001-0005.wav"]


def test_shared_ljspeech_folder(speech_dir):
    root = speech_dir / "dctts_lj_prompts"
    ids = lj_rows(root / "metadata.csv")
    expected = [p for i in ids for p in [root / "wavs" / f"{i}.flac", root / "wavs" / f"{i}.wav"] if p.is_file()]
    found = find_audio(root)
    assert found == expected
    assert len(found) == len(ids) > 100
    assert all(p.parent == root / "wavs" for p in found)


def test_plain_folder_is_searched_recursively(tmp_path, demo_path):
    root = tmp_path / "plain"
    for rel in ["b/one.flac", "a/deep/er/two.wav", "a/three.FLAC", "top.ogg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_path, root / rel)
    (root / "a" / "notes.txt").write_text("not audio")
    (root / "a" / "fake.wav").mkdir()  # a folder named like audio is not a file
    assert find_audio(root) == sorted([root / "a/deep/er/two.wav", root / "a/three.FLAC", root / "b/one.flac",
                                       root / "top.ogg"])


def test_linked_folders_are_searched_once_each(tmp_path, demo_path, caplog):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(demo_path, corpus / "sub" / "one.flac")
    root = tmp_path / "assembled"  # a folder of links to corpora
    root.mkdir()
    (root / "first").symlink_to(corpus)
    (root / "again").symlink_to(corpus)  # the same corpus twice: its files once
    (corpus / "sub" / "loop").symlink_to(corpus)  # a link back up the tree ends, not recurses
    (root / "gone.wav").symlink_to(tmp_path / "missing.wav")
    with caplog.at_level(logging.WARNING, "audiogan.train.data"):
        found = find_audio(root)
    assert len(found) == 1 and found[0].name == "one.flac" and found[0].read_bytes() == demo_path.read_bytes()
    assert f"skipping {root / 'gone.wav'}: a broken link" in caplog.text


def test_metadata_with_a_byte_order_mark_or_in_another_encoding(tmp_path, demo_path):
    root = tmp_path / "lj"
    (root / "wavs").mkdir(parents=True)
    shutil.copy(demo_path, root / "wavs" / "LJ001-0001.flac")
    shutil.copy(demo_path, root / "wavs" / "LJ001-0002.flac")
    (root / "metadata.csv").write_text("LJ001-0001|One.|One.\nLJ001-0002|Two.|Two.\n", encoding="utf-8-sig")
    assert find_audio(root) == [root / "wavs" / "LJ001-0001.flac", root / "wavs" / "LJ001-0002.flac"]
    (root / "metadata.csv").write_text("LJ001-0001|One.|One.\nLJ001-0002|Caf\u00e9.|Caf\u00e9.\n",
                                       encoding="latin-1")
    with pytest.raises(ValueError, match=r"metadata.csv line 2: not UTF-8 text \(byte 0xe9\); save it as UTF-8"):
        find_audio(root)


def test_shared_plain_folder(speech_dir):
    root = speech_dir / "aishell1_S0913"
    expected = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    found = find_audio(root)
    assert found == expected
    assert len(found) > 50
    assert all(p.parent == root / "wavs" for p in found)  # found below the top folder


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data folder not found: .*nowhere"):
        find_audio(tmp_path / "nowhere")


# ----- split_files -----------------------------------------------------------------------------------------------
def test_validation_patterns_hold_out_every_match_and_pick_per_pattern():
    files = [Path(f"/d/spk{s}/utt{u}.flac") for s in range(1, 5) for u in range(5, 0, -1)]
    config = DataConfig(validation=["*/spk2/*", "*/spk4/utt[1-3]*", "*/spk9/*"], validation_per_pattern=2)
    train, valid = split_files(files, config)
    held = {f for f in files if f.parent.name == "spk2" or (f.parent.name == "spk4" and f.stem[-1] in "123")}
    assert set(train) == set(files) - held
    assert [f for f in files if f in set(train)] == train  # order kept
    assert valid == [Path("/d/spk2/utt1.flac"), Path("/d/spk2/utt2.flac"),
                     Path("/d/spk4/utt1.flac"), Path("/d/spk4/utt2.flac")]
    assert not set(train) & set(valid)


def test_overlapping_patterns_do_not_duplicate_validation_files():
    files = [Path(f"/d/x/{i}.wav") for i in range(6)]
    train, valid = split_files(files, DataConfig(validation=["*/x/*", "*/x/[01]*"], validation_per_pattern=3))
    assert train == []
    assert valid == [Path("/d/x/0.wav"), Path("/d/x/1.wav"), Path("/d/x/2.wav")]


def test_no_patterns_means_everything_trains():
    files = [Path("/d/a.wav"), Path("/d/b.wav")]
    assert split_files(files, DataConfig()) == (files, [])


def test_recipe_patterns_on_shared_data(speech_dir, configs_dir):
    data_cfg = load_yaml(VocoderTrainingConfig, configs_dir / "hifigan_v1.yaml").data
    for name, prefix in [("dctts_lj_prompts", "LJ001-00"), ("aishell1_S0913", "BAC009S0913W030")]:
        files = find_audio(speech_dir / name)
        train, valid = split_files(files, data_cfg)
        matching = [f for f in files if f.name.startswith(prefix) and f.name[len(prefix)] in "01234"]
        assert matching, name
        assert not set(matching) & set(train)
        assert len(train) == len(files) - len(matching)
        assert valid == sorted(matching)[: data_cfg.validation_per_pattern]


# ----- decode cache ----------------------------------------------------------------------------------------------
def test_load_many_resamples_caches_and_skips_bad_files(tmp_path, demo_path, demo_wave, monkeypatch, caplog):
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(demo_path, folder / "a.flac")
    sf.write(folder / "b.wav", resample(demo_wave[:16000], 16000, 22050).numpy(), 22050, subtype="FLOAT")
    (folder / "c.wav").write_bytes(b"RIFF but not really a wave file" * 10)
    sf.write(folder / "d.wav", np.zeros(0, np.float32), 16000)
    # Silence, 1-LSB dither, and a stereo file whose channels cancel: peak normalisation would have trained
    # on them as full-scale noise.
    sf.write(folder / "e.wav", np.zeros(16000, np.int16), 16000)
    dither = np.random.default_rng(0).integers(-1, 2, 16000).astype(np.int16)
    sf.write(folder / "f.wav", dither, 16000)
    left = demo_wave[:16000].numpy()
    sf.write(folder / "g.wav", np.stack([left, -left], 1), 16000, subtype="FLOAT")
    cache = tmp_path / "cache"

    with caplog.at_level(logging.WARNING, "audiogan.train.data"):
        read, waves = load_many(sorted(folder.iterdir()), 16000, cache, workers=2)
    assert read == [folder / "a.flac", folder / "b.wav"]  # corrupt, empty and silent files are skipped
    assert len(waves) == 2
    assert "skipping 3 silent file(s) (peak below -60 dBFS)" in caplog.text
    assert all(str(folder / n) in caplog.text for n in ("e.wav", "f.wav", "g.wav"))
    np.testing.assert_array_equal(waves[0], demo_wave.numpy())
    assert abs(waves[1].size - 16000) <= 1
    assert all(w.dtype == np.float32 for w in waves)
    cached = sorted(cache.glob("*.npy"))
    assert len(cached) == 5 and not list(cache.glob(".*"))  # the silent ones are decoded once, too

    def no_decoding(*args, **kwargs):
        raise RuntimeError("decoded again instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(data_module, "load_audio", no_decoding)
        _, again = load_many([folder / "a.flac", folder / "b.wav"], 16000, cache, workers=2)
    for a, b in zip(waves, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(cache.glob("*.npy")) == cached

    # Rewriting a file invalidates its cache entry.
    sf.write(folder / "a.flac", demo_wave[:8000].numpy(), 16000)
    _, (changed,) = load_many([folder / "a.flac"], 16000, cache, workers=1)
    np.testing.assert_allclose(changed, demo_wave[:8000].numpy(), atol=1 / 32768)
    # A different target rate is a different cache entry.
    _, (at8k,) = load_many([folder / "a.flac"], 8000, cache, workers=1)
    assert abs(at8k.size - 4000) <= 1


# ----- ClipBank --------------------------------------------------------------------------------------------------
def locate(crop: np.ndarray, clips: list[np.ndarray]) -> tuple[int, int] | None:
    """(clip index, offset) where ``crop`` occurs as a contiguous slice, or None."""
    n = crop.size
    for ci, clip in enumerate(clips):
        if clip.size < n:
            continue
        for start in np.flatnonzero(clip[: clip.size - n + 1] == crop[0]):
            if np.array_equal(clip[start:start + n], crop):
                return ci, int(start)
    return None


def test_clip_bank_crops_are_contiguous_slices_of_real_clips(demo_wave):
    sources = [demo_wave[4000:9000].numpy(), demo_wave[20000:36000].numpy(), demo_wave[50000:50700].numpy()]
    segment = 1024
    bank = ClipBank(sources, segment, torch.device("cpu"), peak=0.9)
    gen = torch.Generator().manual_seed(0)
    crops, _ = bank.sample(512, gen)
    assert crops.shape == (512, segment)
    assert crops.dtype == torch.float32
    # The bank holds each clip peak-normalised; the short one is zero-padded up to a segment.
    expected = [normalize_peak(torch.from_numpy(s), 0.9).numpy() for s in sources]
    expected[2] = np.concatenate([expected[2], np.zeros(segment - 700, np.float32)])
    hits = [locate(c, expected) for c in crops.numpy()]
    assert all(h is not None for h in hits)
    clips = np.array([h[0] for h in hits])
    # Clips are drawn in proportion to their number of distinct crops (3977, 14977, 1).
    share = np.bincount(clips, minlength=3) / clips.size
    assert share[1] == pytest.approx(14977 / 18955, abs=0.06)
    offsets = {h[1] for h in hits}
    assert len(offsets) > 400  # crops start all over the clips, not at a few fixed places
    assert crops.abs().max() <= 0.9 + 1e-6


def test_clip_bank_short_clip_is_zero_padded(demo_wave):
    clip = demo_wave[30000:30300].numpy()
    bank = ClipBank([clip], 512, torch.device("cpu"), peak=0.5)
    crops, _ = bank.sample(4, torch.Generator().manual_seed(1))
    want = torch.cat([normalize_peak(torch.from_numpy(clip), 0.5), torch.zeros(212)])
    for crop in crops:
        assert torch.equal(crop, want)


def test_clip_bank_sampling_is_reproducible(demo_wave):
    bank = ClipBank([demo_wave.numpy()], 2048, torch.device("cpu"))
    a, _ = bank.sample(8, torch.Generator().manual_seed(5))
    b, _ = bank.sample(8, torch.Generator().manual_seed(5))
    c, _ = bank.sample(8, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_clip_bank_needs_audio():
    with pytest.raises(ValueError, match="no training audio could be read"):
        ClipBank([], 1024, torch.device("cpu"))


def test_clip_bank_pairs_mels_frame_aligned(demo_wave):
    """Given each clip's own mel, a paired crop's mel equals the mel of its audio crop away from the edges
    (where the crop's padding differs): the two are cut at the same frame."""
    mel = MelSpectrogram(MelConfig())
    sources = [demo_wave[:40000].numpy(), demo_wave[40000:].numpy()]
    mels = [mel(normalize_peak(torch.from_numpy(s))).numpy() for s in sources]
    bank = ClipBank(sources, 4096, torch.device("cpu"), mels=mels, hop=256)
    audio, crops = bank.sample(16, torch.Generator().manual_seed(3))
    assert audio.shape == (16, 4096) and crops.shape == (16, 80, 16)
    own = mel(audio)
    assert torch.allclose(crops[:, :, 2:-2], own[:, :, 2:-2], atol=1e-3)
    assert not torch.allclose(crops[:8], crops[8:])  # different places


def test_clip_bank_rejects_mismatched_mels(demo_wave):
    wave = demo_wave[:8000].numpy()
    with pytest.raises(ValueError, match="1 mels for 2 clips"):
        ClipBank([wave, wave], 1024, torch.device("cpu"), mels=[np.zeros((80, 31), np.float32)])
    with pytest.raises(ValueError, match="multiple of the hop"):
        ClipBank([wave], 1000, torch.device("cpu"), mels=[np.zeros((80, 31), np.float32)])
