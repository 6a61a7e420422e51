"""Text-to-speech: normalisation, phonemes, alignment, a tiny model trained on CPU, the TTS API."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from audiogan.config import load_yaml
from audiogan.tts.alignment import beta_binomial_prior, forward_sum_loss, monotonic_alignment_search
from audiogan.tts.normalize import normalize, split_sentences
from audiogan.tts.phonemes import SymbolTable, phonemize

REPO = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get)")



@pytest.mark.parametrize(("text", "spoken"), [
    ("It cost $3.50.", "It cost three dollars and fifty cents."),
    ("£1 and 1¢ or 5¢", "one pound and one cent or five cents"),
    ("$2.5 million", "two point five million dollars"),
    ("Mr. Smith met Dr. Jones.", "Mister Smith met Doctor Jones."),
    ("the 21st and 3rd", "the twenty first and third"),
    ("in 1984 and 2005", "in nineteen eighty four and two thousand five"),
    ("the 1990s", "the nineteen nineties"),
    ("at 10:30 p.m.", "at ten thirty pee em."),  # the suffix's period also ends the sentence
    ("at 9:05", "at nine oh five"),
    ("45% of 2,500", "forty five percent of two thousand five hundred"),
    ("pages 10-20, then", "pages ten to twenty, then"),
    ("3.14", "three point one four"),
    ("1,000,000", "one million"),
    ("You & me", "You and me"),
    # dates, months and days
    ("on Jan. 5th, 2024", "on January fifth, twenty twenty four"),
    ("due 12/25/2023 or 25/12/23", "due December twenty fifth, twenty twenty three or December twenty fifth, "
                                   "twenty three"),
    ("from 2024-03-15 on", "from March fifteenth, twenty twenty four on"),
    ("It was 5 Jan.", "It was the fifth of January."),
    ("Open Mon. to Fri.", "Open Monday to Friday."),
    # times without minutes
    ("at 3pm or 11 a.m. sharp", "at three pee em or eleven eigh em sharp"),
    # units, temperatures, phone numbers, web addresses
    ("70kg, 1 km, 1.5 km and 20 min.", "seventy kilograms, one kilometer, one point five kilometers and twenty "
                                       "minutes."),
    ("a 6 ft wall at 60 mph", "a six feet wall at sixty miles per hour"),
    ("-5°C, 5-10°F", "minus five degrees Celsius, five to ten degrees Fahrenheit"),
    ("Call 555-1234 or (555) 123-4567.", "Call five five five, one two three four or five five five, one two "
                                         "three, four five six seven."),
    ("me@x.com or https://www.example.org/docs/", "me at x dot com or w w w dot example dot org slash docs"),
    # fractions, ranges, signs, alphanumerics
    ("3/4 full, 1/2 mile, 24/7", "three quarters full, one half mile, twenty four seven"),
    ("a 4x4, -3, .25, 007", "a four by four, minus three, point two five, zero zero seven"),
    ("221B Baker St. in 42k", "two hundred twenty one B Baker Street in forty two k"),
    ("the '90s and the 1900s", "the nineties and the nineteen hundreds"),
    ("$5k and $2.5bn", "five thousand dollars and two point five billion dollars"),
    # abbreviations by context
    ("St. Louis, Main St.", "Saint Louis, Main Street."),
    ("Dr. Lee lives at 12 Oak Dr. in Elk City, near Sunset Dr., and Dr. Who on Elm Dr. Then",
     "Doctor Lee lives at twelve Oak Drive in Elk City, near Sunset Drive, and Doctor Who on Elm Drive. Then"),
    ("Ask Dr. Ray, see the Dr. now, on Mulholland Dr.", "Ask Doctor Ray, see the Doctor now, on Mulholland Drive."),
    ("no. 7, pp. 12-15, vol. 3", "number seven, pages twelve to fifteen, volume three"),
    ("The answer was no.", "The answer was no."),
    ("apples, pears, etc.", "apples, pears, et cetera."),
    ("Henry VIII, World War II, Chapter IV", "Henry the eighth, World War two, Chapter four"),
    ("An IV drip. Then I left.", "An eye vee drip. Then I left."),  # espeak-ng would say "roman four"
    ("Paris \u2013 a city; 10\u201320", "Paris, a city; ten to twenty"),
    # dotted numbers: versions, addresses, day-first dates
    ("torch 2.11.0 or v1.2.3", "torch two point eleven point zero or version one point two point three"),
    ("ping 192.168.0.1 now", "ping one hundred ninety two dot one hundred sixty eight dot zero dot one now"),
    ("on 5.12.2024 we met", "on the fifth of December, twenty twenty four we met"),
    # heights, kitchen units, eras
    ("5'11\" tall, 2 tsp, 1 tbsp", "five feet eleven inches tall, two teaspoons, one tablespoon"),
    ("in 55 BC, AD 800 and 1066 A.D.", "in fifty five bee see, eigh dee eight hundred and ten sixty six eigh dee."),
    ("the year 1066", "the year ten sixty six"),
    # a date's own "the" is not doubled
    ("the 1st of May, on the 5th of June", "the first of May, on the fifth of June"),
    ("The 3rd of Jan.", "The third of January."),
    ("on the 5.12.2024 we met", "on the fifth of December, twenty twenty four we met"),
    # Unicode fractions (NFKC writes "3½" as "31⁄2") and mixed numbers read as 1/2 is
    ("½ cup, 3½ hours, ¾ full", "one half cup, three and one half hours, three quarters full"),
    ("3 1/2 miles or 1\u20442", "three and one half miles or one half"),
    # signed money
    ("a loss of -$5.20, $-5 or -£3.5m", "a loss of minus five dollars and twenty cents, minus five dollars or "
                                        "minus three point five million pounds"),
    ("$5-$10 or £3 - £4", "five dollars to ten dollars or three pounds to four pounds"),  # ranges, not signs
    # times with seconds, the 24-hour clock's midnight hour
    ("at 10:30:15 or 10:00:01", "at ten thirty and fifteen seconds or ten o'clock and one second"),
    ("at 00:15 or 00:00", "at twelve fifteen eigh em or twelve eigh em"),
    ("at 9:05 or 10:30 and", "at nine oh five or ten thirty and"),  # the space after a time is kept
    # phone numbers digit by digit, in groups
    ("Call 1-800-555-1234 or +1-800-555-1234.", "Call one, eight zero zero, five five five, one two three four or "
                                                "plus one, eight zero zero, five five five, one two three four."),
    ("+44 20 7946 0958 or 07700 900123", "plus four four, two zero, seven nine four six, zero nine five eight or "
                                         "zero seven seven zero zero, nine zero zero one two three"),
    ("Dial 911 now, or call 999 or 112.", "Dial nine one one now, or call nine nine nine or one one two."),
    # exponents and squared units, written as superscripts or with a caret; footnote marks are dropped
    ("10⁶, 2⁵, 10^6, x² and E=mc²", "ten to the sixth, two to the fifth, ten to the sixth, x "
                                                      "squared and E equals mc squared"),
    ("20 m², 1 m³ and a footnote¹ here.²", "twenty square meters, one cubic meter and a "
                                                             "footnote here."),
    # "#" is "number" before a digit only
    ("#MeToo, C# and F#, #1", "hashtag MeToo, C sharp and F sharp, number one"),
    ("# Heading", "Heading"),
    # Roman numerals: espeak-ng would say "roman four"
    ("I need an IV now, he scored XV points", "I need an eye vee now, he scored fifteen points"),
    ("Apollo XI, Rocky II, Pope John Paul II, Queen Elizabeth I.", "Apollo eleven, Rocky two, Pope John Paul the "
                                                                   "second, Queen Elizabeth the first."),
    ("Then Mary I said Vol. II is out, MMXXIV", "Then Mary I said Volume two is out, twenty twenty four"),
    # years, and numbers that are no years
    ("born in 1066, in 1000 years", "born in ten sixty six, in one thousand years"),
    ("My PIN is 1234, ext. 1234, page 1234, zip code 90210", "My PIN is one two three four, extension one two three "
     "four, page one thousand two hundred thirty four, zip code nine zero two one zero"),
    # times: ranges, the 24-hour clock, a period for a colon, minutes past 59
    ("9:00-17:00, 7:30-8:30, 9am-5pm", "nine o'clock to seventeen hundred, seven thirty to eight thirty, nine eigh "
                                       "em to five pee em"),
    ("at 13:00 or 3.30pm, not 12:75", "at thirteen hundred or three thirty pee em, not twelve to seventy five"),
    # money, fractions, dates, units, signs
    ("$.50 or $5.999", "fifty cents or five point nine nine nine dollars"),
    ("on 12/25, on 9/11, 9/11 and 5/16", "on December twenty fifth, on September eleventh, nine eleven and five "
                                         "sixteenths"),
    ("5 lbs. of flour", "five pounds of flour"),
    ("x >= 5, y <= 3, z != 4, I <3 you", "x greater than or equal to five, y less than or equal to three, z is not "
                                         "equal to four, I heart you"),
    ("the 100s, the 300s", "the hundreds, the three hundreds"),
    ("Est. 1990, Smith a.k.a. Smitty", "Established nineteen ninety, Smith also known as Smitty"),
    ("zero​width‮space", "zero width space"),
])
def test_normalisation(text, spoken):
    assert normalize(text) == spoken


@pytest.mark.parametrize(("text", "spoken", "dropped"), [
    ("I ❤ you ★", "I you", "'❤' (U+2764), '★' (U+2605)"),
    ("日本 is Japan, Москва Moscow", "is Japan, Moscow", "'日' (U+65E5), '本' (U+672C), 'М' (U+041C)"),
    ("Hello\x00 world and more.", "Hello world and more.", "'\\x00' (U+0000)"),
    ("Ελλάδα or Greece", "or Greece", "'Ε' (U+0395)"),  # a Greek word; a lone letter ("β") is kept
])
def test_characters_the_voice_cannot_say_are_dropped_with_a_warning(text, spoken, dropped, caplog):
    with caplog.at_level("WARNING", logger="audiogan.tts"):
        assert normalize(text) == spoken
    (record,) = caplog.records
    assert "cannot say" in record.getMessage() and dropped in record.getMessage()


def test_what_the_voice_can_say_is_kept_without_a_warning(caplog):
    text = "Café naïve, ± 3, the β test, © 2024, 5€, 20°, co\u00adoperate « yes »"  # \u00ad: a soft hyphen
    with caplog.at_level("WARNING", logger="audiogan.tts"):
        assert normalize(text) == ("Café naïve, ± three, the β test, copyright twenty twenty four, five€, twenty "
                                   "degrees, cooperate « yes »")
    assert not caplog.records


def test_one_warning_for_a_whole_text(caplog):
    from audiogan.tts.normalize import one_drop_warning
    from audiogan.tts.script import plain

    with caplog.at_level("WARNING", logger="audiogan.tts"), one_drop_warning():
        sentences = plain("I ❤ you. And ★ you. Once more ❤.")
        assert not caplog.records  # warned once, at the end
    assert [s.pieces[0].said for s in sentences] == ["I you.", "And you.", "Once more."]
    (record,) = caplog.records
    assert "'❤' (U+2764), '★' (U+2605)" in record.getMessage()


@needs_espeak
def test_a_nul_byte_no_longer_ends_the_sentence():
    assert phonemize([normalize("Hello\x00 world and more.")]) == phonemize(["Hello world and more."])


def test_normalisation_of_long_runs_never_hangs():
    # Each of these once cost a rule quadratic time: minutes at 100,000 characters.
    start = time.monotonic()
    for text in ("1" * 100_000, "1." * 50_000, "x." * 50_000, "a-" * 50_000, "a@" * 50_000, "1/" * 50_000):
        assert normalize(text)
    assert time.monotonic() - start < 30


def test_turkish_dotted_and_dotless_i_are_read_never_a_crash():
    from audiogan.tts.lexicon import Lexicon
    from audiogan.tts.normalize import TRAILING, _abbreviation

    # A case-insensitive pattern takes "İ" and "ı" for "i"; their lower case is no key of the tables.
    assert normalize("Koç Holding İNC. reported profits.") == "Koç Holding Incorporated reported profits."
    assert normalize("See FİG. 3, ı.e. this") == "See Figure three, that is this"
    expand = _abbreviation(TRAILING)
    assert expand(re.search(r"(İNC)\.", "Koç İNC. now")) == "Incorporated"
    assert expand(re.search(r"(x)\.", "a x. b")) == "x."  # what the table lacks stays as written
    lexicon = Lexicon({"Siobhan": "shivawn"})
    assert lexicon.segments("Hello SİOBHAN.") == ["Hello ", "shivawn", "."]


def test_emoji_skin_tones_go_with_their_emoji(caplog):
    with caplog.at_level("WARNING", logger="audiogan.tts"):
        assert normalize("Hi \U0001f44d\U0001f3fd there.") == "Hi there."
    assert "U+1F3FD" in caplog.records[0].getMessage()


@needs_espeak
def test_espeak_never_says_roman():
    text = "I need an IV now. He scored XV points. Apollo XI flew. The IX line. Vol. II is out. Chapter VII."
    (tokens,) = phonemize([" ".join(normalize(s) for s in split_sentences(text))])
    assert "ɹˈoʊmən" not in "".join(tokens).replace("ˌ", "ˈ")


def test_splitting_runs_of_abbreviations_takes_linear_time():
    from audiogan.tts import ssml

    # Each merge once rescanned the sentence gathered so far: 68 s for 32 KB of "Dr. ".
    for unit in ("Dr. ", "J. ", "St. "):
        start = time.monotonic()
        assert " ".join(split_sentences(unit * 8192)) == (unit * 8192).strip()
        assert time.monotonic() - start < 2
    start = time.monotonic()
    ssml.parse("<speak>" + "Dr. " * 8192 + "</speak>")
    assert time.monotonic() - start < 10


def test_line_breaks_end_headings_list_items_and_verse_but_not_wrapped_prose():
    assert split_sentences("Chapter One\nThe night was dark.") == ["Chapter One", "The night was dark."]
    assert split_sentences("Roses are red\nViolets are blue") == ["Roses are red", "Violets are blue"]
    assert split_sentences("Buy:\n- eggs\n- milk\n1. Mix it\n2. Bake it") == [
        "Buy:", "- eggs", "- milk", "1. Mix it", "2. Bake it"]
    wrapped = ("The night was dark and the wind blew hard across the moor, and\nJohn walked on. He was\n"
               "cold and tired.")
    assert split_sentences(wrapped) == ["The night was dark and the wind blew hard across the moor, and John "
                                        "walked on.", "He was cold and tired."]


def test_sentences_do_not_end_at_abbreviations_or_initials():
    text = ("J. K. Rowling met Dr. Smith on Jan. 5. See no. 7 now. I said no. "
            "Go to St. Louis. It was in the U.S. Then it ended.")
    assert split_sentences(text) == ["J. K. Rowling met Dr. Smith on Jan. 5.", "See no. 7 now.", "I said no.",
                                     "Go to St. Louis.", "It was in the U.S.", "Then it ended."]
    # Before a word that opens sentences they end one; before another capitalised word, or a number, not.
    assert split_sentences("The U.S. Army is large. It ended in Jan. Then Feb. came.") == [
        "The U.S. Army is large.", "It ended in Jan.", "Then Feb. came."]
    assert split_sentences("The answer is no. 5 people agreed. Smith, a.k.a. Smitty. Est. 1990. Vol. II is out.") == [
        "The answer is no.", "5 people agreed.", "Smith, a.k.a. Smitty.", "Est. 1990.", "Vol. II is out."]


def test_sentence_splitting_keeps_everything():
    text = " ".join(f"Sentence number {i} talks about Mr. Smith, who paid $3.50 for it." for i in range(800))
    sentences = split_sentences(text)
    assert len(sentences) == 800
    assert " ".join(sentences) == text
    long = "word " * 400
    pieces = split_sentences(long)
    assert all(len(p) <= 300 for p in pieces) and " ".join(pieces).split() == long.split()


def test_symbol_table_round_trip():
    table = SymbolTable()
    tokens = ["h", "ə", "l", "ˈ", "oʊ", " ", "w", "ˈ", "ɜː", "l", "d", "!"]
    assert table.decode(table.encode(tokens)) == tokens
    again = SymbolTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.symbols == table.symbols and again.version == table.version
    assert table.encode(["h", "🙂", "ə"]) == table.encode(["h", "ə"])  # unknown: dropped with a warning


def test_lexicon_entries_and_their_errors(tmp_path):
    from audiogan.tts.lexicon import Lexicon, phoneme_tokens

    table = SymbolTable()
    path = tmp_path / "lexicon.txt"
    path.write_text("# names\nNguyen   win\nSiobhan\t/ʃɪvˈɔːn/  # IPA\nSQL sequel\n\n", encoding="utf-8")
    lexicon = Lexicon.read(path, table)
    assert lexicon.entries == {"nguyen": "win", "siobhan": ["ʃ", "ɪ", "v", "ˈ", "ɔː", "n"], "SQL": "sequel"}
    assert lexicon.segments("NGUYEN met siobhan, then SQL and sql.") == [
        "win", " met ", ["ʃ", "ɪ", "v", "ˈ", "ɔː", "n"], ", then ", "sequel", " and sql."]
    assert [getattr(s, "word", None) for s in lexicon.segments("NGUYEN met siobhan.")] == [
        "NGUYEN", None, "siobhan", None]
    assert lexicon.segments("Nguyens and Nguyen's stay") == ["Nguyens and Nguyen's stay"]  # whole words only
    assert phoneme_tokens("tʃˈiːz bɔːɹd", table) == ["tʃ", "ˈ", "iː", "z", " ", "b", "ɔːɹ", "d"]
    for text, message in [("Nguyen\n", "line 1: 'Nguyen' has no pronunciation"),
                          ("x /wɪn\n", "line 1: phonemes go between two slashes"),
                          ("\nx /wɪʁ/\n", "line 2: 'ʁ' is no phoneme of this voice; it knows"),
                          ("New York /nuː/\n", "phonemes go between two slashes"),
                          ("a,b c\n", "'a,b' is not one word")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            Lexicon.read(path, table)
    path.write_bytes(b"caf\xe9 cafe")
    with pytest.raises(ValueError, match="not UTF-8"):
        Lexicon.read(path, table)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Lexicon.read(tmp_path / "none.txt", table)


@needs_espeak
def test_lexicon_says_words_its_way():
    from audiogan.tts.lexicon import Lexicon
    from audiogan.tts.lines import LEAD_IN, to_lines
    from audiogan.tts.script import plain

    table = SymbolTable()
    lexicon = Lexicon({"Nguyen": "win", "Siobhan": ["ʃ", "ɪ", "v", "ˈ", "ɔː", "n"]})
    said = to_lines(plain("Nguyen met Siobhan, then left. Hello there."), table, "en-us", lexicon)
    spoken = phonemize(["win met", ", then left.", "Hello there."])
    assert said[0].ids == table.encode([LEAD_IN, *spoken[0], " ", "ʃ", "ɪ", "v", "ˈ", "ɔː", "n", *spoken[1]])
    assert said[1].ids == table.encode([LEAD_IN, *spoken[2]])
    # Timings name the written words, not their respellings.
    assert said[0].words == ["Nguyen", "met", "Siobhan", "then", "left"]


@needs_espeak
def test_phonemize_keeps_punctuation_and_words():
    (tokens,) = phonemize(["Hello, world!"])
    text = "".join(tokens)
    assert "," in text and text.endswith("!") and text.count(" ") == 1
    assert "ˈ" in text  # stress marks are kept


def brute_force_alignment(lp: torch.Tensor) -> torch.Tensor:
    t, n = lp.shape
    best, bounds = None, None
    for cuts in itertools.combinations(range(1, t), n - 1):
        b = (0, *cuts, t)
        score = sum(float(lp[i, k]) for k in range(n) for i in range(b[k], b[k + 1]))
        if best is None or score > best:
            best, bounds = score, b
    path = torch.zeros(t, n)
    for k in range(n):
        path[bounds[k]:bounds[k + 1], k] = 1
    return path


def test_monotonic_alignment_search_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    for _ in range(25):
        t, n = int(torch.randint(2, 9, (), generator=gen)), int(torch.randint(1, 5, (), generator=gen))
        n = min(n, t)
        lp = torch.randn(t, n, generator=gen)
        batch = torch.full((2, 10, 6), -3.0)
        batch[1, :t, :n] = lp
        path = monotonic_alignment_search(batch, torch.tensor([3, n]), torch.tensor([7, t]))
        assert torch.equal(path[1, :t, :n], brute_force_alignment(lp))
        assert path[1].sum() == t and path[1, t:].sum() == 0 and path[1, :, n:].sum() == 0


def test_prior_and_forward_sum():
    prior = beta_binomial_prior(torch.tensor([5, 3]), torch.tensor([20, 9]))
    torch.testing.assert_close(prior[0].sum(-1), torch.ones(20))
    torch.testing.assert_close(prior[1, :9].sum(-1), torch.ones(9))
    assert prior[1, 9:].sum() == 0 and prior[1, :, 3:].sum() == 0
    assert prior[0, 0].argmax() == 0 and prior[0, -1].argmax() == 4  # the diagonal is favoured
    diagonal = torch.log(prior + 1e-8)
    uniform = torch.log(torch.full_like(prior, 0.2))
    lens = (torch.tensor([5, 3]), torch.tensor([20, 9]))
    assert forward_sum_loss(diagonal, *lens) < forward_sum_loss(uniform, *lens)


def test_tiny_model_learns(tiny_voice):
    _, rows = tiny_voice
    train = [r for r in rows if "mel_l1" in r and not r.get("final")]
    assert len(train) >= 6
    # The total rises when the binarisation loss switches on (step 20), so judge its parts.
    assert train[-1]["mel_l1"] < 0.75 * train[0]["mel_l1"], [round(r["mel_l1"], 3) for r in train]
    assert train[-1]["duration"] < train[0]["duration"]
    assert "valid_mel_l1" in rows[-1]


def test_checkpoint_resume_continues(espeak_corpus, tiny_voice, tmp_path):
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    checkpoint = tiny_voice[0].parent / "checkpoint.pt"
    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tiny_voice[0].parent / "cache")
    cfg.train.max_steps = 45
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path, device="cpu", resume=str(checkpoint))
    assert trainer.step == 40
    trainer.fit()
    assert trainer.step == 45


def test_snapshots_are_exports_a_lease_can_bring_back(espeak_corpus, tiny_voice, tmp_path):
    from audiogan import weights
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tiny_voice[0].parent / "cache")
    cfg.train.max_steps, cfg.train.log_every, cfg.train.snapshot_every_minutes = 43, 1, 1e-9
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path, device="cpu",
                         resume=str(tiny_voice[0].parent / "checkpoint.pt"))
    trainer.fit()
    snaps = sorted((tmp_path / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["step0000041.safetensors", "step0000042.safetensors",
                                       "step0000043.safetensors"]
    card = weights.read_card(snaps[-1])
    assert card["training"]["steps"] == 43 and card["symbols"] == weights.read_card(tiny_voice[0])["symbols"]
    final = weights.read_weights(tmp_path / tiny_voice[0].name)
    last = weights.read_weights(snaps[-1])
    assert last.keys() == final.keys() and all(torch.equal(last[k], final[k]) for k in final)
    assert all(p.stat().st_size < 16 * 2**20 for p in snaps)


def test_init_generator_continues_an_export_with_a_fresh_aligner(espeak_corpus, tiny_voice, tmp_path):
    from audiogan import weights
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    exported = tiny_voice[0]
    card = weights.read_card(exported)
    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(exported.parent / "cache")
    cfg.train.align_head_start_steps, cfg.train.max_steps = 4, 46
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path, device="cpu", init_generator=str(exported))
    assert (trainer.step, trainer.head_start_until) == (40, 44)
    assert trainer.stats == card["stats"]  # the predictors' normalisation, not one recomputed from this data
    state = trainer.model.state_dict()
    shipped = weights.read_weights(exported)
    assert all(torch.equal(state[k], v.float()) for k, v in shipped.items())
    assert not any(k.startswith("aligner.") for k in shipped)

    def snapshot() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        named = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        return ({k: v for k, v in named.items() if k.startswith("aligner.")},
                {k: v for k, v in named.items() if not k.startswith("aligner.")})

    aligner0, rest0 = snapshot()
    for _ in range(4):
        trainer.train_step()
    aligner1, rest1 = snapshot()
    assert all(torch.equal(rest0[k], rest1[k]) for k in rest0)  # frozen while the aligner catches up
    assert not all(torch.equal(aligner0[k], aligner1[k]) for k in aligner0)
    trainer.train_step()
    assert not all(torch.equal(rest1[k], v) for k, v in snapshot()[1].items())  # then everything trains
    trainer.fit()
    continued = json.loads((tmp_path / "tts-tiny.json").read_text())["training"]
    assert continued["steps"] == 46
    assert continued["continued_from"]["steps"] == 40
    assert continued["continued_from"]["from"] == exported.stem
    cfg.train.align_head_start_steps, cfg.train.max_steps = 10, 48  # a resumed head start can be lengthened
    resumed = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path, device="cpu", resume=str(tmp_path / "checkpoint.pt"))
    assert (resumed.step, resumed.align_from, resumed.head_start_until) == (46, 40, 50)

    cfg.model.dim = 48
    with pytest.raises(ValueError, match="different model config"):
        TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "other", device="cpu", init_generator=str(exported))


def test_speed_perturbed_copies_are_pseudo_speakers_and_never_leak_the_held_out(espeak_corpus, tmp_path):
    from audiogan.train.tts_data import build_features, split, statistics
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    plain = build_features([str(espeak_corpus)], cfg.data, cfg.model.mel, SymbolTable())
    cfg.data.augment_speeds = [0.9, 1.1]
    feats = build_features([str(espeak_corpus)], cfg.data, cfg.model.mel, SymbolTable())
    assert len(feats) == 3 * len(plain)
    by_key = {(u.id, u.speed): u for u in feats}
    for u in plain:
        for speaker, factor in enumerate((1.0, 0.9, 1.1)):
            copy = by_key[(u.id, factor)]
            assert copy.speaker == speaker and torch.equal(copy.tokens, u.tokens)
            assert copy.mel.shape[-1] == pytest.approx(u.mel.shape[-1] / factor, abs=2)
        shift = [float(by_key[(u.id, f)].pitch[by_key[(u.id, f)].voiced > 0].median()) for f in (0.9, 1.0, 1.1)]
        assert shift[0] < shift[1] < shift[2]  # semitones move with the speed: 12 log2(1.1) = +1.65
        assert shift[2] - shift[1] == pytest.approx(1.65, abs=0.6)
    train, valid = split(feats, cfg.data)
    held = {u.id for u in valid}
    assert len(valid) == cfg.data.validation_count and all(u.speed == 1.0 for u in valid)
    assert not held & {u.id for u in train}  # no perturbed copy of a held-out sentence is trained on
    assert statistics(train) == statistics(split(plain, cfg.data)[0])  # the recordings' normalisation

    with pytest.raises(ValueError, match=r"set model\.n_speakers to 3"):
        TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")
    cfg.model.n_speakers, cfg.train.max_steps = 3, 2
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")
    trainer.fit()
    assert trainer.data_info["augmentation"] == {"speed_perturbation": [0.9, 1.1], "pseudo_speakers": 2}
    tokens = train[0].tokens[None]
    trainer.model.eval()
    unnamed, *_ = trainer.model.infer(tokens)
    first, *_ = trainer.model.infer(tokens, speakers=torch.tensor([0]))
    other, *_ = trainer.model.infer(tokens, speakers=torch.tensor([2]))
    assert torch.equal(unnamed, first) and not torch.equal(unnamed[..., :5], other[..., :5])
    from audiogan.tts import TTS

    voice = TTS.load(tmp_path / "run" / "tts-tiny.safetensors", device="cpu")
    assert voice.speakers == 3
    ids = [voice.lines("Hello there.")[0].ids]
    assert torch.equal(voice.mels(ids)[0], voice.mels(ids, speaker=0)[0])
    assert not torch.equal(voice.mels(ids)[0][:, :5], voice.mels(ids, speaker=2)[0][:, :5])
    wave, _ = voice("Hello there.", speaker=2)
    assert len(wave) > 0 and len(wave) == sum(len(c) for c in voice.stream("Hello there.", speaker=2))
    with pytest.raises(ValueError, match="speaker 3 is out of range"):
        voice("Hello there.", speaker=3)
    with pytest.raises(ValueError, match="augment_speeds"):
        cfg.data.__class__(augment_speeds=[1.0])


def test_messy_transcripts_and_recordings_cost_their_own_clips_only(espeak_corpus, tmp_path, caplog):
    """A blank transcript used to shift every later clip onto its neighbour's phonemes, silently."""
    import soundfile as sf

    from audiogan.train.tts_data import build_features
    from audiogan.train.tts_trainer import TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    plain = {u.id: u for u in build_features([str(espeak_corpus)], cfg.data, cfg.model.mel, SymbolTable())}
    messy = tmp_path / "messy"
    shutil.copytree(espeak_corpus, messy)
    texts = [line.split("|")[1] for line in (espeak_corpus / "metadata.csv").read_text().splitlines()]
    rows = ["E000||", f"E001|{texts[1]}|{texts[1]}", "E002|\U0001f600|\U0001f600", f"E003|{texts[3]}|{texts[3]}",
            f"E004|He said a|b and left.|{texts[4]}|{texts[4]}", f"E005|{texts[5]}|{texts[5]}"]
    (messy / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")  # with a byte-order mark
    sf.write(messy / "wavs" / "E005.wav", [0.0] * 8000, 16000)  # silence: nothing to learn
    with caplog.at_level(logging.WARNING):
        feats = build_features([str(messy)], cfg.data, cfg.model.mel, SymbolTable())
    assert [u.id for u in feats] == ["E001", "E003"]
    for u in feats:
        assert torch.equal(u.tokens, plain[u.id].tokens) and torch.equal(u.mel, plain[u.id].mel)
    assert "skipping 2 clip(s) whose text has nothing to say (empty, or only characters the voice cannot say): " \
        "E000, E002" in caplog.text
    assert "metadata.csv line 5: skipped: expected id|text or id|text|normalized text, got 5 field(s) (a '|' " \
        "inside the text?)" in caplog.text
    assert f"skipping 1 silent file(s) (peak below -60 dBFS): {messy / 'wavs' / 'E005.wav'}" in caplog.text

    # A recording edited in place at the same size (here: made quieter) is not read from the stale cache.
    edited = messy / "wavs" / "E001.wav"
    audio, rate = sf.read(edited, dtype="int16")
    sf.write(edited, audio // 2, rate, subtype="PCM_16")
    again = {u.id: u for u in build_features([str(messy)], cfg.data, cfg.model.mel, SymbolTable())}
    assert not torch.equal(again["E001"].mel, plain["E001"].mel)


def test_a_corpus_without_voiced_frames_is_refused_before_training(espeak_corpus, tmp_path):
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.fmin, cfg.data.fmax = 1000.0, 1200.0  # no voice there: NaN statistics, NaN losses, "done"
    with pytest.raises(ValueError, match=r"no voiced frame in the training clips \(pitch searched at 1000-1200 Hz"):
        TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")


def test_a_folder_without_metadata_trains_from_a_transcript_file_as_the_same_speaker(espeak_corpus, tmp_path):
    from audiogan.train.tts_data import build_features
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    bare = tmp_path / "second_take"  # the same voice's recordings, shipped without a metadata.csv
    shutil.copytree(espeak_corpus / "wavs", bare / "wavs")
    transcripts = tmp_path / "second_take.csv"
    transcripts.write_text("\n".join((espeak_corpus / "metadata.csv").read_text().splitlines()[:3]) + "\n")
    folders = [str(espeak_corpus), str(bare)]
    with pytest.raises(FileNotFoundError, match=r"data\.transcripts"):
        build_features(folders, cfg.data, cfg.model.mel, SymbolTable())
    cfg.data.transcripts = {"second_take": str(tmp_path / "missing.csv")}
    with pytest.raises(FileNotFoundError, match=r"missing\.csv is not a file"):
        build_features(folders, cfg.data, cfg.model.mel, SymbolTable())

    cfg.data.transcripts = {"second_take": str(transcripts)}
    two = build_features(folders, cfg.data, cfg.model.mel, SymbolTable())
    n_first = len((espeak_corpus / "metadata.csv").read_text().splitlines())
    assert len(two) == n_first + 3  # only the transcribed clips of the bare folder
    assert {u.speaker for u in two} == {0, 1}  # unnamed folders are speakers of their own
    cfg.data.speakers = {"second_take": 0}  # the named folder takes 0, so the unnamed one is another voice
    assert {u.speaker for u in build_features(folders, cfg.data, cfg.model.mel, SymbolTable())} == {0, 1}
    cfg.data.speakers = {espeak_corpus.name: 0, "second_take": 0}
    one = build_features(folders, cfg.data, cfg.model.mel, SymbolTable())
    assert {u.speaker for u in one} == {0}
    same = {u.id: u for u in one[n_first:]}
    for u in one[:3]:  # the same recording under the same text gives the same features
        assert torch.equal(same[u.id].mel, u.mel) and torch.equal(same[u.id].tokens, u.tokens)

    cfg.train.max_steps = 2
    trainer = TTSTrainer(cfg, folders, tmp_path / "run", device="cpu")  # one voice: no speaker table needed
    trainer.fit()
    assert trainer.data_info["utterances"]["train"] + trainer.data_info["utterances"]["validation"] == len(one)
    assert trainer.data_info["transcripts"] == {"second_take": str(transcripts)}  # recorded in the model card
    cfg.data.speakers = {"second_take": 2}
    with pytest.raises(ValueError, match="without a gap"):
        build_features(folders, cfg.data, cfg.model.mel, SymbolTable())
    cfg.data.speakers = {"elsewhere": 0}
    with pytest.raises(ValueError, match="not among the data folders"):
        build_features(folders, cfg.data, cfg.model.mel, SymbolTable())
    cfg.data.speakers, cfg.data.transcripts = {}, {"second_tke": str(transcripts)}  # a typo names no folder
    with pytest.raises(ValueError, match=r"data\.transcripts names \['second_tke'\]"):
        build_features(folders, cfg.data, cfg.model.mel, SymbolTable())


def test_mel_windows_cut_the_same_valid_frames_from_both():
    from audiogan.tts.mel_discriminator import mel_windows

    real = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
    fake = -real
    r, f = mel_windows(real, fake, torch.tensor([10, 4]), 6, torch.Generator().manual_seed(0))
    assert r.shape == f.shape == (2, 3, 6)
    start = int(r[0, 0, 0])
    assert torch.equal(r[0], real[0, :, start:start + 6]) and torch.equal(f[0], fake[0, :, start:start + 6])
    # The short item: its 4 valid frames, then its own floor instead of batch padding.
    assert torch.equal(r[1, :, :4], real[1, :, :4]) and torch.equal(f[1, :, :4], fake[1, :, :4])
    assert (r[1, :, 4:] == real[1].min()).all() and (f[1, :, 4:] == real[1].min()).all()


def test_mel_discriminator_trains_alongside_and_stays_out_of_the_export(espeak_corpus, tiny_voice, tmp_path):
    from audiogan import weights
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tiny_voice[0].parent / "cache")
    cfg.train.adversarial_weight, cfg.train.adversarial_ramp_steps, cfg.train.disc_frames = 1.0, 4, 16
    cfg.train.max_steps = 44
    # From a checkpoint without a discriminator: a fresh one starts where the run resumes.
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path, device="cpu",
                         resume=str(tiny_voice[0].parent / "checkpoint.pt"))
    assert trainer.adversarial_from == 40
    before = {k: v.detach().clone() for k, v in trainer.D.state_dict().items()}
    result = trainer.fit()
    assert all(math.isfinite(result[k]) for k in ("adversarial", "feature", "d_loss", "d_acc", "mel_l1"))
    assert 0.0 <= result["d_acc"] <= 1.0
    assert any(not torch.equal(before[k], v) for k, v in trainer.D.state_dict().items())
    exported = weights.read_weights(tmp_path / "tts-tiny.safetensors")
    assert set(exported) == set(weights.read_weights(tiny_voice[0]))  # the same inference weights, no critic
    resumed = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "again", device="cpu",
                         resume=str(tmp_path / "checkpoint.pt"))
    assert resumed.adversarial_from == 40
    assert all(torch.equal(resumed.D.state_dict()[k], v) for k, v in trainer.D.state_dict().items())


# -- fine-tuning the vocoder on the acoustic model's own mels -------------------------------------------------

def test_vocoder_fine_tunes_on_teacher_forced_mels(espeak_corpus, tiny_voice, tmp_path):
    import numpy as np

    from audiogan.audio.io import load_audio
    from audiogan.train.vocoder_trainer import VocoderTrainer, VocoderTrainingConfig

    mels = tmp_path / "mels"
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "data", "tts-mels", "--checkpoint",
                           str(tiny_voice[0].parent / "checkpoint.pt"), "--data", str(espeak_corpus),
                           "--out", str(mels)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wavs = sorted((espeak_corpus / "wavs").glob("*.wav"))[:-1]  # the last is the voice's held-out clip
    files = sorted(mels.glob("*.npy"))
    assert [f.stem for f in files] == [w.stem for w in wavs]
    for wav, f in zip(wavs, files, strict=True):
        predicted = np.load(f)
        # One frame per hop of the recording, so frame t and samples t*256... line up for the vocoder.
        assert predicted.shape == (80, load_audio(wav, 16000)[0].numel() // 256)
        assert np.isfinite(predicted).all()

    cfg = load_yaml(VocoderTrainingConfig, REPO / "configs" / "vocoder" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.predicted_mels = str(mels)
    cfg.train.max_steps = 10
    trainer = VocoderTrainer(cfg, [str(espeak_corpus)], tmp_path / "voc", device="cpu")
    audio, given = trainer.bank.sample(4, trainer.gen)
    assert audio.shape == (4, cfg.train.segment_size)
    assert given is not None and given.shape == (4, 80, cfg.train.segment_size // 256)
    result = trainer.fit()
    assert np.isfinite(result["mel_l1"])
    card = json.loads((tmp_path / "voc" / "tiny.json").read_text())
    assert card["data"]["predicted_mels"] == {"folder": "mels", "clips": len(files)}


def test_fine_tuning_without_matching_mels_is_a_clear_error(espeak_corpus, tmp_path):
    from audiogan.train.vocoder_trainer import VocoderTrainer, VocoderTrainingConfig

    cfg = load_yaml(VocoderTrainingConfig, REPO / "configs" / "vocoder" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.predicted_mels = str(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="predicted mels folder not found"):
        VocoderTrainer(cfg, [str(espeak_corpus)], tmp_path / "voc", device="cpu")
    (tmp_path / "empty").mkdir()
    cfg.data.predicted_mels = str(tmp_path / "empty")
    with pytest.raises(ValueError, match="no training clip has a predicted mel"):
        VocoderTrainer(cfg, [str(espeak_corpus)], tmp_path / "voc", device="cpu")


@pytest.fixture(scope="module")
def tts(tiny_voice):
    from audiogan.tts import TTS

    return TTS.load(tiny_voice[0], device="cpu")


def test_card_and_weights(tiny_voice):
    path, _ = tiny_voice
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == "tts" and card["symbols"]["version"] == SymbolTable().version
    assert card["training"]["steps"] == 40 and card["data"]["utterances"]["validation"] == 1
    assert path.stat().st_size < 16 * 2**20


def test_speech_comes_out_and_speed_changes_length(tts):
    wave, rate = tts("The quick brown fox.")
    assert rate == 16000 and wave.ndim == 1 and len(wave) > 0
    (ids,) = [line.ids for line in tts.lines("The quick brown fox jumps.")]
    normal, fast, slow = (tts.mels([ids], speed=s)[0].shape[-1] for s in (1.0, 2.0, 0.5))
    assert fast < normal < slow
    assert abs(fast / normal - 0.5) < 0.25 and abs(slow / normal - 2.0) < 0.5


def test_batched_sentences_equal_one_by_one(tts):
    lines = tts.lines("First one here. And a much longer second sentence follows it. Third.")
    together = tts.mels(lines)
    for line, mel in zip(lines, together, strict=True):
        torch.testing.assert_close(tts.mels([line.ids])[0], mel, atol=1e-4, rtol=1e-4)


def test_stream_equals_whole(tts):
    import numpy as np

    text = "Streaming starts at once. Then the rest follows."
    whole, _ = tts(text)
    chunks = list(tts.stream(text, chunk_frames=8))
    assert len(chunks) > 2
    # The stream's first sentence has an acoustic pass of its own, the whole call batches both; with the
    # untrained tiny voice the padding's float rounding reaches ~4e-4 after the vocoder (as in test_server).
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=5e-4)


def test_call_and_stream_take_their_options_by_name_alike(tts):
    import numpy as np

    # A 4th positional argument was progress to tts() and chunk_frames to tts.stream().
    for call in (tts, tts.synthesize, tts.stream):
        with pytest.raises(TypeError, match="positional argument"):
            next(iter(call("Hi there.", 1.25)))  # a stream binds its arguments as it starts
    text = "Hi there."
    options = {"speed": 1.25, "pitch_shift": 2.0, "speaker": 0}
    whole, _ = tts(text, **options)
    assert len(whole) != len(tts(text)[0])  # the options reached the voice
    # As in test_stream_equals_whole: the stream's own acoustic pass rounds differently.
    np.testing.assert_allclose(np.concatenate(list(tts.stream(text, chunk_frames=8, **options))), whole, atol=5e-4)
    np.testing.assert_array_equal(tts.synthesize(text, **options).wave, whole)


def test_stream_computes_mels_in_bounded_passes_as_it_goes(tts, monkeypatch):
    from audiogan.tts import inference

    passes: list[int] = []
    mels = tts.mels

    def counted(lines, *args):
        passes.append(len(lines))
        return mels(lines, *args)

    monkeypatch.setattr(tts, "mels", counted)
    monkeypatch.setattr(inference, "SENTENCES_PER_PASS", 4)
    stream = tts.stream(" ".join(f"Sentence {i} is here." for i in range(12)), chunk_frames=8)
    next(stream)
    assert passes == [1]  # first audio after the first sentence's pass alone
    list(stream)
    assert passes == [1, 2, 4, 4, 1]


def test_bad_text_gives_clear_errors(tts):
    for text in ("", "   \n\t "):
        with pytest.raises(ValueError, match="empty"):
            tts(text)
    with pytest.raises(ValueError, match="UTF-8"):
        tts("caf\xe9".encode("latin-1"))
    for text in (["One.", "Two."], None):  # not an AttributeError from deep inside
        with pytest.raises(TypeError, match=f"text must be a str .*not {type(text).__name__}"):
            tts(text)
    with pytest.raises(ValueError, match="pronounceable"):
        tts("... !!! ?")
    with pytest.raises(ValueError, match="speed"):
        tts("Hello.", speed=0)
    # A number as text (a form field, a CLI string) or None: named, not "'<=' not supported ..." from deep inside.
    for name, value in (("speed", "1.2"), ("pitch_shift", None), ("pitch_shift", "2")):
        with pytest.raises(TypeError, match=f"{name} must be a number, not {value!r}"):
            tts("Hello.", **{name: value})
        with pytest.raises(TypeError, match=name):
            next(tts.stream("Hello.", **{name: value}))
    assert len(tts("Hello.", speed=np.float32(1.5), pitch_shift=2)[0]) > 0  # numpy and int numbers still work
    with pytest.raises(ValueError, match=r"speaker 1 is out of range: tts-tiny knows speakers 0\.\.0"):
        tts("Hello.", speaker=1)


def test_a_voice_with_a_lexicon(tiny_voice, tts, tmp_path):
    from audiogan.tts import TTS

    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("Nguyen win\n", encoding="utf-8")
    voice = TTS.load(tiny_voice[0], device="cpu", lexicon=lexicon)
    def ids(voice, text):
        return [line.ids for line in voice.lines(text)]

    assert ids(voice, "Nguyen is here.") == ids(tts, "win is here.")
    assert ids(voice, "Nguyen is here.") != ids(tts, "Nguyen is here.")


def test_hundred_thousand_characters_come_out_whole(tts):
    text = ("This is sentence number 12, and it is not short. " * 2000)[:100_000]
    start = time.monotonic()
    lines = tts.lines(text)
    mels = tts.mels(lines)
    assert len(lines) == len(split_sentences(text)) == len(mels) == 2000
    assert time.monotonic() - start < 120


def test_say_pipes_a_wav_from_stdin_to_stdout(tiny_voice, tts):
    import io
    import wave

    import numpy as np

    text = "Piped in. Piped out."
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--file", "-", "-o", "-", "--voice",
                           str(tiny_voice[0]), "--device", "cpu"], input=text.encode(), capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    with wave.open(io.BytesIO(done.stdout)) as w:  # a streamed WAV (raw PCM16 before: --raw gives that now)
        said_rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32767
    expected, rate = tts(text)
    assert rate == said_rate == 16000
    assert len(audio) == len(expected) and f"a WAV at {rate} Hz" in done.stderr.decode()
    np.testing.assert_allclose(audio, expected, atol=16 / 32768)


def test_say_cli(tiny_voice, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("Chapter 1. It was 1984. The end.")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--file", str(book), "--voice",
                           str(tiny_voice[0]), "-o", str(tmp_path / "book.wav"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "book.wav").stat().st_size > 1000
    book.write_bytes(b"caf\xe9")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--file", str(book), "--voice",
                           str(tiny_voice[0]), "-o", str(tmp_path / "x.wav")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "not UTF-8" in done.stderr
    book.write_text("Nguyen is here.")
    (tmp_path / "lexicon.txt").write_text("Nguyen /wɪʁ/\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--file", str(book), "--voice",
                           str(tiny_voice[0]), "--lexicon", str(tmp_path / "lexicon.txt"), "-o",
                           str(tmp_path / "x.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "lexicon lexicon.txt line 1: 'ʁ' is no phoneme of this voice" in done.stderr


def test_say_show_prints_what_will_be_said_and_synthesises_nothing(tiny_voice, tmp_path):
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "say", "--show", "--voice", str(tiny_voice[0]),
                           "Chapter One\nIt cost $3.50. I need an IV now."], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == ["1. Chapter One", "   said:     Chapter One", "   phonemes: tʃˈæptɚ wˌʌn"]
    assert "   said:     It cost three dollars and fifty cents." in done.stdout
    assert "3. I need an IV now.\n   said:     I need an eye vee now.\n   phonemes: " in done.stdout
    assert not list(tmp_path.iterdir())  # no say.wav


# -- the bundled voice ---------------------------------------------------------------------------------------

def test_paired_wer_change_tells_a_real_difference_from_the_luck_of_the_sentences():
    import numpy as np

    from benchmarks.tts_intelligibility import paired_wer_change

    rng = np.random.default_rng(1)
    words = rng.integers(8, 20, size=50)
    before = np.stack([rng.binomial(words, 0.4), words], axis=1)
    assert paired_wer_change(before, before) == (0.0, 0.0, 0.0)
    # One error fewer in every sentence: about -0.07, and the interval excludes 0.
    better = before - np.array([1, 0])
    change, low, high = paired_wer_change(before, better)
    assert change == pytest.approx(-50 / words.sum()) and low <= change <= high < 0
    # The same errors shuffled among the sentences: a change of 0 stays inside the interval.
    shuffled = np.stack([rng.permutation(before[:, 0]), words], axis=1)
    change, low, high = paired_wer_change(before, shuffled)
    assert low < 0 < high


def test_bundled_voice_is_understood_by_a_recogniser_we_did_not_train():
    pytest.importorskip("pocketsphinx")
    from audiogan.tts import TTS
    from benchmarks.tts_intelligibility import SENTENCES, Judge

    sentences = [line.strip() for line in SENTENCES.read_text().splitlines() if line.strip()]
    tts = TTS.load(device="cpu")
    assert tts.name == "tts-lj-16k" and tts.sample_rate == 16000
    # Six sentences never trained on, judged among all fifty: the words must be heard, not guessed.
    pairs = [(text, tts(text)[0]) for text in sentences[:6]]
    assert Judge(sentences).wer(pairs) < 0.25
