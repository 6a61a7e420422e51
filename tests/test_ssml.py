"""SSML: parsing, what each element does to the bundled voice's audio, and clear errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from audiogan.tts import ssml
from audiogan.tts.normalize import normalize, split_sentences

SENTENCE = "The rainbow is a division of white light into many beautiful colors."


@pytest.fixture(scope="module")
def voice():
    from audiogan.tts import TTS

    return TTS.load("default", device="cpu")


def _decibels(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(wave**2))))


def _median_f0(wave: np.ndarray, rate: int) -> float:
    import librosa

    return float(np.median(librosa.yin(wave, fmin=60, fmax=400, sr=rate, frame_length=1024)))


def test_ssml_without_markup_says_what_plain_text_says(voice):
    text = "Hello there. How are you today, Dr. Smith?"
    plain, ssml_lines = voice.lines(text), voice.lines(f"<speak>\n  {text}\n</speak>")
    assert [x.ids for x in plain] == [x.ids for x in ssml_lines]
    assert [(x.lead, x.pause) for x in plain] == [(x.lead, x.pause) for x in ssml_lines] == [(0, 0.12), (0, 0)]


def test_breaks_paragraphs_and_sentences_set_the_silences(voice):
    lines = voice.lines('<speak><break time="300ms"/>One.<break time="0.7s"/>Two <s>three</s>'
                        '<p>Four.</p><p>Five.</p><break strength="x-strong"/></speak>')
    assert [x.text for x in lines] == ["One.", "Two", "three", "Four.", "Five."]
    assert lines[0].lead == pytest.approx(0.3)
    assert [x.pause for x in lines] == pytest.approx([0.7, 0.12, ssml.PARAGRAPH_GAP_SECONDS,
                                                      ssml.PARAGRAPH_GAP_SECONDS, 1.0])
    # The audio holds exactly those silences around each sentence's own waveform.
    wave, rate = voice('<speak>One.<break time="700ms"/>Two.</speak>')
    one, _ = voice("One.")
    two, _ = voice("Two.")
    assert len(wave) == len(one) + round(0.7 * rate) + len(two)
    assert np.abs(wave[len(one):len(one) + round(0.7 * rate)]).max() == 0


def test_prosody_rate_pitch_and_volume_change_the_audio_as_asked(voice):
    base, rate = voice(SENTENCE)

    def styled(attributes: str) -> np.ndarray:
        return voice(f"<speak><prosody {attributes}>{SENTENCE}</prosody></speak>")[0]

    assert len(styled('rate="50%"')) / len(base) == pytest.approx(2.0, abs=0.15)
    assert len(styled('rate="x-fast"')) / len(base) == pytest.approx(1 / 1.6, abs=0.1)
    assert 12 * np.log2(_median_f0(styled('pitch="+4st"'), rate) / _median_f0(base, rate)) == pytest.approx(4, abs=1)
    assert _decibels(styled('volume="+6dB"')) - _decibels(base) == pytest.approx(6, abs=0.5)
    assert _decibels(styled('volume="soft"')) - _decibels(base) == pytest.approx(-6, abs=0.5)
    assert np.abs(styled('volume="silent"')).max() < 1e-3
    # A style is the same as the call's own speed and pitch shift.
    np.testing.assert_array_equal(styled('rate="200%" pitch="+2st"'), voice(SENTENCE, speed=2.0, pitch_shift=2)[0])


def test_a_style_applies_to_its_words_only(voice):
    plain = voice.lines("The rainbow is a division of white light.")[0]
    (line,) = voice.lines('<speak>The rainbow is a <prosody rate="50%" volume="loud">division</prosody> '
                          "of white light.</speak>")
    assert line.ids == plain.ids
    styled = [s for s in line.styles if s != ssml.PLAIN]
    assert 6 <= len(styled) <= 12 and all(s.rate == 0.5 and s.volume == ssml.VOLUMES["loud"] for s in styled)
    slow, normal = voice.mels([line])[0], voice.mels([plain])[0]
    assert 1.05 < slow.shape[-1] / normal.shape[-1] < 1.6


def test_nested_styles_combine(voice):
    (line,) = voice.lines('<speak><prosody rate="50%" pitch="+1st"><prosody rate="200%" volume="-3dB">'
                          '<emphasis level="strong">Now</emphasis></prosody></prosody>.</speak>')
    strong = ssml.EMPHASIS["strong"]
    assert {s for s in line.styles if s != ssml.PLAIN} == {
        ssml.Style(0.5 * 2.0 * strong.rate, 1 + strong.pitch, -3 + strong.volume)}


def test_nested_loudness_stays_in_range_and_loud_words_never_clip(voice):
    (line,) = voice.lines('<speak><prosody volume="+12dB"><prosody volume="+12dB"><prosody volume="+12dB">'
                          "Loud loud loud.</prosody></prosody></prosody></speak>")
    assert {s.volume for s in line.styles} == {12.0}  # not +36 dB
    for text in ('<speak><prosody volume="+12dB">Loud words here.</prosody></speak>', "tomato", "paper"):
        whole, _ = voice(text)
        # Before, +12 dB cut 495 samples flat at full scale, and plain "paper" 18.
        assert 0.9 < np.abs(whole).max() < 0.999
        np.testing.assert_array_equal(np.concatenate(list(voice.stream(text, chunk_frames=16))), whole)
    plain, _ = voice("Loud words here.")
    assert np.abs(plain).max() < 0.9  # below the limiter's knee: untouched


def test_markup_inside_a_number_reads_the_number_whole(voice):
    for marked, written in [("I paid $<emphasis>5</emphasis>.", "I paid $5."),
                            ("Call 555-<emphasis>123</emphasis>-4567.", "Call 555-123-4567."),
                            ("About 1,<emphasis>000</emphasis> people.", "About 1,000 people.")]:
        (line,) = voice.lines(f"<speak>{marked}</speak>")
        assert line.ids == voice.lines(written)[0].ids, marked  # was "dollar five", "one, zero zero zero"
        assert line.text == written
    (sentence,) = ssml.parse("<speak>I paid $<emphasis>5</emphasis>.</speak>")
    assert [(p.said, p.style) for p in sentence.pieces] == [("I paid", ssml.PLAIN),
                                                            ("five dollars.", ssml.EMPHASIS["moderate"])]


def test_deep_nesting_is_refused_clearly(voice):
    deep = "<speak>" + "<emphasis>" * 600 + "Hi." + "</emphasis>" * 600 + "</speak>"
    with pytest.raises(ValueError, match="SSML nests elements more than 100 deep"):
        voice.lines(deep)
    (line,) = voice.lines("<speak>" + "<emphasis>" * 50 + "Hi." + "</emphasis>" * 50 + "</speak>")
    assert line.text == "Hi."


def test_say_as_sub_and_phoneme_say_what_they_mean(voice):
    from audiogan.tts.phonemes import phonemize

    def same(marked: str, written: str) -> None:
        assert [x.ids for x in voice.lines(f"<speak>{marked}</speak>")] == [x.ids for x in voice.lines(written)]

    same('Code <say-as interpret-as="characters">XK7</say-as>.', "Code ex kay seven.")
    same('<say-as interpret-as="cardinal">1,234.5</say-as> apples.', "one thousand two hundred thirty four "
                                                                     "point five apples.")
    same('The <say-as interpret-as="ordinal">21st</say-as> time.', "The twenty first time.")
    same('Dial <say-as interpret-as="telephone">555-0142</say-as>.', "Dial five five five, zero one four two.")
    same('On <say-as interpret-as="date" format="dmy">25/12/23</say-as>.', "On December twenty fifth, twenty "
                                                                          "twenty three.")
    same('<sub alias="World Wide Web Consortium">W3C</sub> agrees.', "World Wide Web Consortium agrees.")
    same('It is <sub alias="Koç İnc.">KH</sub>', "It is Koç Incorporated.")  # once a KeyError
    win = "".join(phonemize(["win"])[0])
    same(f'<phoneme alphabet="ipa" ph="{win}">Nguyen</phoneme> is here.', "win is here.")


@pytest.mark.parametrize(("markup", "said"), [
    # Each read otherwise before: a rule that looks back did not see the run before ("nine hundred eleven",
    # "Henry eight", "Elm Doctor", "twelve twenty five", "an four drip", "Elizabeth I", "five kg", "three one
    # half", "nine eigh em - five pee em").
    ('Call <mark name="m"/>911 now.', "Call nine one one now."),
    ("Read page <emphasis>1984</emphasis> first.", "Read page one thousand nine hundred eighty four first."),
    ("King Henry <emphasis>VIII</emphasis> ruled.", "King Henry the eighth ruled."),
    ("He lives on Elm <emphasis>Dr.</emphasis> now.", "He lives on Elm Drive now."),
    ("It is due on <emphasis>12/25</emphasis>.", "It is due on December twenty fifth."),
    ("He needs an <emphasis>IV</emphasis> drip.", "He needs an eye vee drip."),
    ("He was born in <emphasis>1066</emphasis>.", "He was born in ten sixty six."),
    ("It was Queen Elizabeth <emphasis>I</emphasis>.", "It was Queen Elizabeth the first."),
    ('It weighs 5 <prosody rate="slow">kg</prosody> now.', "It weighs five kilograms now."),
    ("It cost 3 <emphasis>1/2</emphasis> dollars.", "It cost three and one half dollars."),
    ("Open 9am <emphasis>- 5pm</emphasis> daily.", "Open nine eigh em to five pee em daily."),
    # The text after a run, which a look-ahead did not see either ("No. five").
    ("See <emphasis>No.</emphasis> 5 here, then <emphasis>Vol.</emphasis> II.",
     "See Number five here, then Volume two."),
    # And what read the same keeps its reading.
    ("We met on the <emphasis>5th</emphasis> of June.", "We met on the fifth of June."),
    ('We met at 5 <mark name="m"/>p.m. Then we left.', "We met at five pee em. Then we left."),
])
def test_a_run_reads_with_the_text_before_it_in_view(markup, said):
    sentences = ssml.parse(f"<speak>{markup}</speak>")
    joined = " ".join(" ".join(p.said for p in s.pieces if isinstance(p.said, str)) for s in sentences)
    assert re.sub(r"\s+(?=[,.;:!?])", "", joined) == said == normalize(re.sub(r"<[^>]+>", "", markup))


@pytest.mark.parametrize(("markup", "said", "pause"), [
    # A break is a pause inside the sentence: the words on either side read together, as without it
    # (before: "nine hundred eleven", "Doctor." with a period, "eight", "No.").
    ('Call <break time="200ms"/>911 now.', ["Call", "nine one one now."], 0.2),
    ("I saw Dr.<break/> Smith. Then I left.", ["I saw Doctor", "Smith.", "Then I left."],
     ssml.BREAK_STRENGTHS["medium"]),
    ("King Henry <break/>VIII ruled.", ["King Henry", "the eighth ruled."], ssml.BREAK_STRENGTHS["medium"]),
    ('See No.<break time="1s"/> 5 now.', ["See Number", "five now."], 1.0),
])
def test_words_across_a_break_read_as_one_sentence_and_the_break_keeps_its_pause(markup, said, pause):
    sentences = ssml.parse(f"<speak>{markup}</speak>")
    assert [" ".join(p.said for p in s.pieces) for s in sentences] == said
    assert [s.pause for s in sentences] == [pause] + [0.0] * (len(said) - 1)
    # Captions: the text as written, cut at the break and at the sentences' ends.
    before, after = re.sub(r"<(?!break)[^>]+>", "", markup).split(re.search(r"<break[^>]*>", markup).group(0))
    assert [s.text for s in sentences] == split_sentences(before) + split_sentences(after)


@pytest.mark.parametrize(("markup", "said", "written", "pause"), [
    # Each line was read apart: "at five", the pause, "pee em."; "It cost $", the pause, "five now."
    ("We met at 5 <break/>p.m. Then we left.", ["We met at five pee em.", "Then we left."],
     ["We met at 5 p.m.", "Then we left."], ssml.BREAK_STRENGTHS["medium"]),
    ("It cost $<break/>5 now.", ["It cost five dollars", "now."], ["It cost $ 5", "now."],
     ssml.BREAK_STRENGTHS["medium"]),
    ("Take 5 <break time='300ms'/>kg now.", ["Take five kilograms", "now."], ["Take 5 kg", "now."], 0.3),
    ("Open at 10:30 <emphasis>a.m.<break time='1s'/> daily</emphasis>.", ["Open at ten thirty eigh em", "daily."],
     ["Open at 10:30 a.m.", "daily."], 1.0),
    ("It is 3 <break/>1/2 cups.", ["It is three and one half", "cups."], ["It is 3 1/2", "cups."],
     ssml.BREAK_STRENGTHS["medium"]),
])
def test_a_break_inside_a_number_and_what_it_is_read_with_comes_after_them(markup, said, written, pause):
    sentences = ssml.parse(f"<speak>{markup}</speak>")
    assert [" ".join(p.said for p in s.pieces) for s in sentences] == said
    assert [s.text for s in sentences] == written
    assert [s.pause for s in sentences] == [pause, 0.0]
    # Said as the plain sentence says them.
    assert " ".join(said) == normalize(re.sub(r"<[^>]+>", "", markup))


def test_preceding_text_is_looked_at_never_said(caplog):
    assert normalize("VIII ruled.", preceding="King Henry ") == "the eighth ruled."
    assert normalize("VIII ruled.") == "eight ruled."
    assert normalize("Dr. now.", preceding="word " * 100 + "on Elm ") == "Drive now."  # its end is enough
    # A rule that reads across the seam and changes the text before leaves the run to read alone.
    assert normalize("5", preceding="It cost $") == "five"
    # Only the run's own characters the voice cannot say are reported.
    with caplog.at_level("WARNING", logger="audiogan.tts"):
        assert normalize("you \u2605", preceding="I \u2764 ") == "you"
    (record,) = caplog.records
    assert "U+2605" in record.getMessage() and "U+2764" not in record.getMessage()


# Sentences whose words a rule reads with the word before ("5 mph", "10:30 hours", "$5 thousand", "Monday
# through Friday", a function word before "U.S."), and words none does.
LOOKED_BACK = ["We drove at 5 mph now.", "It took 10:30 hours later.", "It cost $5 thousand dollars.",
               "Open Monday through Friday.", "He grew up near the U.S. People moved.",
               "The quick brown fox jumps over the lazy dog near 5 kg of hay on Jan. 5 at 10:30 a.m. in the U.S."]


@pytest.mark.parametrize("sentence", LOOKED_BACK)
def test_a_run_reads_alone_only_where_reading_it_with_the_text_before_gives_the_same(sentence):
    from audiogan.tts import normalize as normalizer

    words = sentence.split(" ")
    for cut in range(1, len(words)):
        preceding, text = " ".join(words[:cut]) + " ", " ".join(words[cut:])
        assert normalize(text, preceding=preceding) == normalizer._after_preceding(text, preceding), text
    # Words that rules name are read with the text before them.
    assert not normalizer._reads_alone("mph now.", "We drove at 5 ")
    assert not normalizer._reads_alone("through Friday.", "Open Monday ")


def test_each_text_is_read_once_in_a_parse(monkeypatch):
    """Every run is read after its sentence so far: without keeping readings, each prefix was read twice
    (as the text before one run, then with that run), and a plain word was read with all of it."""
    from audiogan.tts import normalize as normalizer

    read: list[tuple[str, str]] = []
    plain = normalizer._normalize

    def counted(text: str) -> str:
        read.append((text, normalizer._FOLLOWING.get()[:normalizer._LOOK_AHEAD]))
        return plain(text)

    monkeypatch.setattr(normalizer, "_normalize", counted)
    words = " ".join(LOOKED_BACK).split()
    ssml.parse("<speak>" + " ".join(f"<mark name='m{i}'/>{w}" for i, w in enumerate(words)) + "</speak>")
    assert read and len(read) == len(set(read))
    # A word no rule names is read alone, not with the sentence before it.
    assert [text for text, _ in read if text.strip() == "quick"]
    assert not [text for text, _ in read if text.endswith("The quick ")]


def test_the_voice_says_a_marked_up_run_as_the_plain_sentence(voice):
    marked = voice.lines('<speak>King Henry <emphasis>VIII</emphasis> said to call <mark name="m"/>911.</speak>')
    assert [line.ids for line in marked] == [line.ids for line in voice.lines("King Henry VIII said to call 911.")]
    assert marked[0].marks and marked[0].words[2:4] == ["the", "eighth"]


@pytest.mark.parametrize(("kind", "fmt", "text", "words"), [
    ("digits", "", "0451", "zero four five one"),
    ("number", "", "-12", "minus twelve"),
    ("fraction", "", "3/4", "three quarters"),
    ("date", "ymd", "2024-03-15", "March fifteenth, twenty twenty four"),
    ("date", "my", "3/1999", "March nineteen ninety nine"),
    ("date", "d", "5", "the fifth"),
    ("telephone", "", "+1 (555) 010-4477", "plus one, five five five, zero one zero, four four seven seven"),
    ("spell-out", "", "a-b", "eigh bee"),
    ("time", "", "3:30pm", "three thirty pee em"),
])
def test_say_as_kinds(kind, fmt, text, words):
    assert ssml.say_as(text, kind, fmt) == words


def test_stream_equals_whole_with_markup(voice):
    text = ('<speak><break time="200ms"/>First <prosody pitch="+2st" volume="-4dB">part</prosody>.'
            '<break time="400ms"/><p>Then <emphasis>more</emphasis>.</p><break time="300ms"/></speak>')
    whole, rate = voice(text)
    chunks = list(voice.stream(text, chunk_frames=8))
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-4)
    assert np.abs(whole[: round(0.2 * rate)]).max() == 0 and np.abs(whole[-round(0.3 * rate):]).max() == 0


@pytest.mark.parametrize(("text", "message"), [
    ("<speak>Hello <b>there</b>.</speak>", r"<b> is not supported"),
    ('<speak xmlns:amazon="http://amazon.com/ssml">Hi <amazon:effect name="whispered">there</amazon:effect>'
     "</speak>", r"<effect> \(a vendor extension, namespace http://amazon.com/ssml\) is not supported"),
    ("<speak>Hello", "not well-formed"),
    ('<!DOCTYPE speak [<!ENTITY a "aaaa">]><speak>&a;</speak>', "DOCTYPE"),
    ("<speak><speak>Hi.</speak></speak>", "may not be nested"),
    ('<speak><break time="soon"/>Hi.</speak>', r"give a time like"),
    ('<speak><break time="20s"/>Hi.</speak>', "longer than 10 s"),
    ('<speak><break strength="huge"/>Hi.</speak>', "use one of none, x-weak"),
    ('<speak><prosody rate="10%">Hi.</prosody></speak>', r"out of range 25%\.\.400%"),
    ('<speak><prosody pitch="+30Hz">Hi.</prosody></speak>', "semitones"),
    ('<speak><prosody pitch="+20st">Hi.</prosody></speak>', "out of range -12st"),
    ('<speak><prosody volume="+30dB">Hi.</prosody></speak>', "out of range -40dB"),
    ('<speak><prosody duration="2s">Hi.</prosody></speak>', r"duration=\.\.\.> is not supported"),
    ('<speak><emphasis level="max">Hi.</emphasis></speak>', "use one of strong"),
    ("<speak><sub>WWW</sub></speak>", r'needs a alias="\.\.\."'),
    ('<speak><say-as interpret-as="expletive">darn</say-as></speak>', "is not supported"),
    ('<speak><say-as interpret-as="cardinal">many</say-as></speak>', "'many' is not a number"),
    ('<speak><say-as interpret-as="date" format="dmy">2024</say-as></speak>', "does not have the 3 numbers"),
    ('<speak><say-as interpret-as="date" format="mdy">13/40/2024</say-as></speak>', "is not a date"),
    ('<speak><say-as interpret-as="characters">x<b/></say-as></speak>', "holds text only"),
    ('<speak><phoneme alphabet="x-sampa" ph="w I n">win</phoneme></speak>', "use alphabet=\"ipa\""),
    ('<speak><phoneme ph="wɪ§n">win</phoneme></speak>', "'§' is no phoneme of this voice"),
    ("<speak><break/></speak>", "nothing pronounceable"),
    ("<speak>Hi <mark/> there.</speak>", r'<mark> needs a name="\.\.\."'),
])
def test_bad_markup_is_a_clear_error(voice, text, message):
    with pytest.raises(ValueError, match=message):
        voice(text)


def test_the_w3c_namespace_and_declaration_are_welcome(voice):
    text = ('<?xml version="1.0"?>\n<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" '
            'xml:lang="en-US"><p><s>Hello <prosody rate="90%">there</prosody>.</s></p></speak>')
    (line,) = voice.lines(text)
    assert line.text == "Hello there." and {s.rate for s in line.styles} == {1.0, 0.9}


def test_problem_checks_markup_without_a_voice():
    assert ssml.problem("<speak>Fine <break/> text.</speak>") is None
    assert "not well-formed" in ssml.problem("<speak>broken")
    assert ssml.is_ssml("  \n<speak>x</speak>") and not ssml.is_ssml("I speak <b>loudly</b>")
