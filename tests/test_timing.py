"""Sentence and word timings: exact bookkeeping, placement in the real audio, captions."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from audiogan.tts.lines import Line
from audiogan.tts.script import PLAIN
from audiogan.tts.timing import Span, Timings, check_path

TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs away. "
        "Printing, in the only sense with which we are at present concerned, differs from most arts.")


@pytest.fixture(scope="module")
def voice():
    from audiogan.tts import TTS

    return TTS.load("default", device="cpu")


def test_timings_count_frames_leads_and_pauses_exactly():
    one = Line("Hi there.", [5, 6, 1, 7, 8, 9], [PLAIN] * 6, pause=0.5, lead=0.25, words=["Hi", "there"],
               word_of=[0, 0, -1, 1, 1, -1])
    two = Line("Go.", [10, 9], [PLAIN] * 2, words=["Go"], word_of=[0, -1])
    timings = Timings.of([one, two], [[2, 3, 4, 5, 6, 1], [7, 2]], hop_length=100, sample_rate=1000)
    assert timings.words == [Span("Hi", 0.25, 0.75), Span("there", 1.15, 2.25), Span("Go", 2.85, 3.55)]
    assert timings.sentences == [Span("Hi there.", 0.25, 2.35), Span("Go.", 2.85, 3.75)]
    later = Timings.of([two], [[7, 2]], hop_length=100, sample_rate=1000, start=2850)
    assert later.words == [Span("Go", 2.85, 3.55)]


def test_timings_place_the_words_in_the_audio(voice):
    speech = voice.synthesize(TEXT)
    wave, rate, timings = speech
    np.testing.assert_array_equal(wave, voice(TEXT)[0])
    assert [s.text for s in timings.sentences] == [
        "The quick brown fox jumps over the lazy dog, and then it runs away.",
        "Printing, in the only sense with which we are at present concerned, differs from most arts."]
    # Every written word is timed once; espeak-ng runs "in the" together, so that pair shares one span.
    assert " ".join(w.text for w in timings.words).split() == TEXT.replace(",", "").replace(".", "").split()
    assert "in the" in [w.text for w in timings.words]
    ends = [(w.start, w.end) for w in timings.words]
    assert all(a < b for a, b in ends) and all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(ends))
    assert timings.sentences[-1].end == pytest.approx(len(wave) / rate)
    # The gap between the sentences is silence, and words are louder than the pauses between them.
    gap = wave[round(timings.sentences[0].end * rate):round(timings.sentences[1].start * rate)]
    assert len(gap) == round(0.12 * rate) and not gap.any()
    inside = np.zeros(len(wave), bool)
    for w in timings.words:
        inside[round(w.start * rate):round(w.end * rate)] = True
    spoken = np.zeros(len(wave), bool)
    for s in timings.sentences:
        spoken[round(s.start * rate):round(s.end * rate)] = True
    assert np.sqrt(np.mean(wave[inside] ** 2)) > 1.5 * np.sqrt(np.mean(wave[spoken & ~inside] ** 2))
    # Speaking at half speed doubles every time.
    slow = voice.synthesize(TEXT, speed=0.5).timings
    assert slow.words[-1].end / timings.words[-1].end == pytest.approx(2.0, abs=0.1)


def test_timings_name_written_words_and_keep_asked_pauses(voice):
    timings = voice.synthesize('<speak><break time="500ms"/>It cost $3.50.<break time="1s"/>'
                               'Call <say-as interpret-as="characters">XK7</say-as> now.</speak>').timings
    assert [s.text for s in timings.sentences] == ["It cost $3.50.", "Call XK7 now."]
    assert [w.text for w in timings.words] == ["It", "cost", "three", "dollars", "and", "fifty", "cents", "Call",
                                               "XK7", "now"]
    assert timings.sentences[0].start == 0.5
    assert timings.sentences[1].start - timings.sentences[0].end == pytest.approx(1.0)


def test_marks_fall_where_the_next_word_begins(voice):
    speech = voice.synthesize('<speak><mark name="a"/>Hello <mark name="b"/>world. <mark name="c"/>'
                              '<break time="1s"/> Again <prosody rate="slow">slow</prosody>. <mark name="e"/></speak>')
    marks, words = {m.text: m.start for m in speech.timings.marks}, speech.timings.words
    assert list(marks) == ["a", "b", "c", "e"] and all(m.start == m.end for m in speech.timings.marks)
    assert marks["a"] == words[0].start and words[0].end <= marks["b"] <= words[1].start
    assert marks["c"] == words[2].start and marks["c"] - words[1].end > 1.0  # after the break, not before
    assert marks["e"] == pytest.approx(len(speech.wave) / speech.sample_rate)
    assert '"marks"' in speech.timings.to_json() and "marks" not in voice.synthesize("Hi.").timings.to_json()


def test_said_words_are_matched_to_written_ones():
    from audiogan.tts.lines import _match_words

    written = ["we", "are", "at", "present", "in", "the", "house"]
    said = [2, 2, 2, 7, 4, 3]  # espeak-ng's "ɪnðɪ": "in the" as one word
    assert _match_words(written, said) == [[0], [1], [2], [3], [4, 5], [6]]
    assert _match_words(["twenty-one"], [6, 3]) == [[0], [0]]
    assert _match_words(["a", "b"], [1, 1]) == [[0], [1]]


def test_captions_and_json():
    timings = Timings([Span("Hello there.", 0.0, 1.5), Span("Bye.", 3723.25, 3724.0)],
                      [Span("Hello", 0.0, 0.6), Span("there", 0.7, 1.4), Span("Bye", 3723.25, 3723.9)])
    assert timings.to_vtt() == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
                                "01:02:03.250 --> 01:02:04.000\nBye.\n")
    assert timings.to_srt().startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:02:03,250")
    assert '"text": "there"' in timings.to_json()
    assert check_path("a/b.VTT") == ".vtt"
    with pytest.raises(ValueError, match=r"\.json, \.vtt or \.srt file, not 'b\.txt'"):
        check_path("a/b.txt")


def test_captions_escape_what_their_formats_would_read_as_markup():
    timings = Timings([Span("Use <b> & 00:00:01,000 --> 00:00:02,000 here.", 0.0, 1.5)])
    vtt = timings.to_vtt()
    assert "Use &lt;b&gt; &amp; 00:00:01,000 --&gt; 00:00:02,000 here.\n" in vtt and vtt.count("-->") == 1
    srt = timings.to_srt()
    assert srt.count("-->") == 1 and "<b> & 00:00:01,000 - > 00:00:02,000" in srt


def test_a_byte_order_mark_stays_out_of_captions(voice):
    lines = voice.lines("\ufeffHello there.")
    assert lines[0].text == "Hello there." and lines[0].ids == voice.lines("Hello there.")[0].ids


def test_say_writes_captions(tmp_path):
    out = tmp_path / "hi.wav"
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "Hello there. Good bye.", "-o", str(out),
                           "--timings", str(tmp_path / "hi.vtt"), "--plot", str(tmp_path / "hi.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vtt = (tmp_path / "hi.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "Hello there.\n" in vtt and "Good bye.\n" in vtt
    bad = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "Hi.", "-o", str(out), "--timings",
                          str(tmp_path / "hi.txt")], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and ".json, .vtt or .srt" in bad.stderr
