"""The TTS front end's text: where sentences end after abbreviations, day and month ranges, colons that are
no time of day, and abbreviations at the edge of SSML markup. Each reading is checked as the sentences the
splitter makes and as the words they are said with, through plain text, SSML and the bundled voice."""

from __future__ import annotations

import re
import shutil

import pytest

from audiogan.tts import ssml
from audiogan.tts.normalize import normalize, split_sentences
from audiogan.tts.script import plain

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get)")


def _said(sentences) -> list[str]:
    """Each sentence as the voice is asked to say it, its pieces joined as espeak-ng reads them."""
    joined = [" ".join(p.said for p in s.pieces if isinstance(p.said, str)) for s in sentences]
    return [re.sub(r"\s+(?=[,.;:!?])", "", s) for s in joined]


@pytest.mark.parametrize(("text", "sentences", "said"), [
    # A letter abbreviation ends a sentence before a word that opens one, and reads on before a name.
    ("He moved to the U.S. Then he left.", ["He moved to the U.S.", "Then he left."],
     ["He moved to the yoo ess.", "Then he left."]),
    ("He joined the U.S. Army. Dr. Smith and Mr. Jones came.",
     ["He joined the U.S. Army.", "Dr. Smith and Mr. Jones came."],
     ["He joined the yoo ess Army.", "Doctor Smith and Mister Jones came."]),
    ("We met at 5 p.m. Then we ate. At 6 p.m. Eastern it ended.",
     ["We met at 5 p.m.", "Then we ate.", "At 6 p.m. Eastern it ended."],
     ["We met at five pee em.", "Then we ate.", "At six pee em Eastern it ended."]),
    # The same after a time no clock shows, read as written (numbers, then letters).
    ("The clock read 12:75 p.m. Then it stopped.", ["The clock read 12:75 p.m.", "Then it stopped."],
     ["The clock read twelve seventy five pee em.", "Then it stopped."]),
    ("It rained in Jan. Then it snowed on 5 Jan. After that it stopped.",
     ["It rained in Jan.", "Then it snowed on 5 Jan.", "After that it stopped."],
     ["It rained in January.", "Then it snowed on the fifth of January.", "After that it stopped."]),
    # Words that close a list or a name end a sentence before any capitalised word.
    ("We bought apples, pears, etc. Then we left. Apple Inc. Shares rose.",
     ["We bought apples, pears, etc.", "Then we left.", "Apple Inc.", "Shares rose."],
     ["We bought apples, pears, et cetera.", "Then we left.", "Apple Incorporated.", "Shares rose."]),
    # A street's "St." and "Dr." end one before a sentence's opening word; before a name they do not.
    ("He lived on Main St. Then he moved to St. Louis. Ask Dr. Lee on Elm Dr. Now.",
     ["He lived on Main St.", "Then he moved to St. Louis.", "Ask Dr. Lee on Elm Dr.", "Now."],
     ["He lived on Main Street.", "Then he moved to Saint Louis.", "Ask Doctor Lee on Elm Drive.", "Now."]),
    # Closing quotes and brackets stay with the sentence they close.
    ('He said, "Go home." Then he left (slowly.) Then he ran.',
     ['He said, "Go home."', "Then he left (slowly.)", "Then he ran."],
     ['He said, "Go home."', "Then he left (slowly.)", "Then he ran."]),
])
def test_abbreviations_end_a_sentence_where_the_splitter_and_the_normaliser_agree(text, sentences, said):
    assert split_sentences(text) == sentences
    assert _said(plain(text)) == said
    # Normalised whole, the text keeps a period exactly where the splitter ends a sentence.
    assert normalize(text) == " ".join(said)


# Where a sentence ends after an abbreviation, written down before the rule was chosen (the first 36), half
# ending one, half reading on into a name. 28 of these 40 were right when a letter abbreviation ended one
# only before a listed word; 38 when what the abbreviation is for and the words after it decided; all 40 now
# that a state after its city closes a place, a span of time opens a clause and a body's name reads on.
ENDS_AFTER_ABBREVIATIONS = [
    ("He grew up in the U.S. People moved west.", ["He grew up in the U.S.", "People moved west."]),
    ("We met at 5 p.m. We left.", ["We met at 5 p.m.", "We left."]),
    ("Smith Inc. The firm grew.", ["Smith Inc.", "The firm grew."]),
    ("We sold nuts, figs, etc. The shop closed.", ["We sold nuts, figs, etc.", "The shop closed."]),
    ("Breakfast ended at 9 a.m. Lunch was late.", ["Breakfast ended at 9 a.m.", "Lunch was late."]),
    ("He worked for Acme Ltd. Profits fell.", ["He worked for Acme Ltd.", "Profits fell."]),
    ("She bought it from Hill Co. Two years later it broke.", ["She bought it from Hill Co.",
                                                               "Two years later it broke."]),
    ("The speech was by Martin Luther King Jr. Everyone listened.", ["The speech was by Martin Luther King Jr.",
                                                                    "Everyone listened."]),
    ("She moved to the U.K. Her sister stayed.", ["She moved to the U.K.", "Her sister stayed."]),
    ("He flew back to the U.S. Nobody noticed.", ["He flew back to the U.S.", "Nobody noticed."]),
    ("The shop opens at 10 a.m. Customers queue outside.", ["The shop opens at 10 a.m.", "Customers queue outside."]),
    ("They lived in Washington, D.C. Years later they left.", ["They lived in Washington, D.C.",
                                                               "Years later they left."]),
    ("The talks ended at 4 p.m. Nothing was agreed.", ["The talks ended at 4 p.m.", "Nothing was agreed."]),
    ("He studied in the U.S. Prices were high there.", ["He studied in the U.S.", "Prices were high there."]),
    ("Write to Acme Corp. Someone will answer.", ["Write to Acme Corp.", "Someone will answer."]),
    ("We left at 6 a.m. Traffic was light.", ["We left at 6 a.m.", "Traffic was light."]),
    ("The parcel went to the U.S. Everything arrived.", ["The parcel went to the U.S.", "Everything arrived."]),
    ("Malcolm X. He spoke.", ["Malcolm X.", "He spoke."]),
    ("Dr. Smith examined him.", ["Dr. Smith examined him."]),
    ("They climbed Mt. Everest in May.", ["They climbed Mt. Everest in May."]),
    ("He moved to St. Louis last year.", ["He moved to St. Louis last year."]),
    ("He served in the U.S. Navy for years.", ["He served in the U.S. Navy for years."]),
    ("The U.K. Prime Minister spoke.", ["The U.K. Prime Minister spoke."]),
    ("He joined the U.S. Army in June.", ["He joined the U.S. Army in June."]),
    ("The show starts at 8 p.m. Eastern tonight.", ["The show starts at 8 p.m. Eastern tonight."]),
    ("Mr. Brown met Mrs. Green.", ["Mr. Brown met Mrs. Green."]),
    ("Yesterday the U.S. Senate voted.", ["Yesterday the U.S. Senate voted."]),
    ("She spoke at the U.N. General Assembly.", ["She spoke at the U.N. General Assembly."]),
    ("Gen. Patton led the army.", ["Gen. Patton led the army."]),
    ("We met Sen. Warren there.", ["We met Sen. Warren there."]),
    ("The U.S. Supreme Court ruled.", ["The U.S. Supreme Court ruled."]),
    ("J. K. Rowling wrote it.", ["J. K. Rowling wrote it."]),
    ("The E.U. Commission agreed.", ["The E.U. Commission agreed."]),
    ("The call is at 9 a.m. Monday.", ["The call is at 9 a.m. Monday."]),
    ("Capt. Hook sailed on.", ["Capt. Hook sailed on."]),
    ("He joined the U.S. Army based in Texas.", ["He joined the U.S. Army based in Texas."]),
    # Added after the first rule (a subject and verb after the period, wherever the abbreviation stood) split
    # the fourth.
    ("They landed in the U.K. Officials were waiting.", ["They landed in the U.K.", "Officials were waiting."]),
    ("Prices rose in Jan. Shoppers complained.", ["Prices rose in Jan.", "Shoppers complained."]),
    ("He said the U.S. Senate voted.", ["He said the U.S. Senate voted."]),
    ("He served in the U.S. Army based in Texas.", ["He served in the U.S. Army based in Texas."]),
    # Added with the rule that got the two above: the sentence before decides after a city's state, and a
    # plural span of time opens one only before a word that places it in time.
    ("They lived in Washington, D.C. Police arrested two men.", ["They lived in Washington, D.C.",
                                                                 "Police arrested two men."]),
    ("Officers of the Washington, D.C. Police arrested two men.",
     ["Officers of the Washington, D.C. Police arrested two men."]),
    # A month before the comma is no city.
    ("He said that in March, U.S. Steel shares fell.", ["He said that in March, U.S. Steel shares fell."]),
    ("Malcolm X. Years later he died.", ["Malcolm X.", "Years later he died."]),
    ("Dr. J. Weeks wrote the report.", ["Dr. J. Weeks wrote the report."]),
    # Added with the rule that reads a name's suffix by what the sentence says before it and the number of
    # the noun after it: the same suffixes and words after them, ending one.
    ("He worked for Acme Inc. Chief Executive Jane Doe resigned.", ["He worked for Acme Inc.",
                                                                    "Chief Executive Jane Doe resigned."]),
    ("Martin Luther King Jr. Crowds cheered.", ["Martin Luther King Jr.", "Crowds cheered."]),
    ("Hill Co. People complained.", ["Hill Co.", "People complained."]),
    ("They walked past Elm St. Dogs barked.", ["They walked past Elm St.", "Dogs barked."]),
    # Missed: after words of its own a name's suffix ends one before any capital. "Day in January" has no verb,
    # but telling that from "Dunmore Ltd. Staff remember him" takes a list of every verb.
    pytest.param("We celebrate Martin Luther King Jr. Day in January.",
                 ["We celebrate Martin Luther King Jr. Day in January."],
                 marks=pytest.mark.xfail(strict=True, reason="a suffix after a sentence's own words ends one")),
]

# Held out: written before the rule that reads "Washington, D.C. Years later" and "the U.S. Army based in" was
# chosen, half ending a sentence, half reading on, over the abbreviations the table above uses and others.
# 15 of these 20 were right before that rule, 17 after, all 20 once a common verb's irregular forms counted as
# a verb and a name's suffix read on after a name alone.
HELD_OUT_ENDS = [
    ("They moved to the U.S. Decades later they returned.", ["They moved to the U.S.",
                                                             "Decades later they returned."]),
    ("The firm opened an office in Washington, D.C. Clients came from all over.",
     ["The firm opened an office in Washington, D.C.", "Clients came from all over."]),
    ("We walked down Baker St. Rain began to fall.", ["We walked down Baker St.", "Rain began to fall."]),
    ("Her father was Robert Smith Jr. Nobody called him that.", ["Her father was Robert Smith Jr.",
                                                                 "Nobody called him that."]),
    ("The package arrived at 7 a.m. Breakfast was already cold.", ["The package arrived at 7 a.m.",
                                                                   "Breakfast was already cold."]),
    ("He bought shares in Globex Inc. Analysts were surprised.", ["He bought shares in Globex Inc.",
                                                                  "Analysts were surprised."]),
    ("The plant is run by Northwind Ltd. Its owners live abroad.", ["The plant is run by Northwind Ltd.",
                                                                    "Its owners live abroad."]),
    ("The answer was no. Everyone went home.", ["The answer was no.", "Everyone went home."]),
    ("Most of the staff came from the U.K. Many stayed for years.", ["Most of the staff came from the U.K.",
                                                                     "Many stayed for years."]),
    ("She packed pens, paper, tape, etc. Friends helped her move.", ["She packed pens, paper, tape, etc.",
                                                                     "Friends helped her move."]),
    ("The U.S. Army based in Germany was reduced.", ["The U.S. Army based in Germany was reduced."]),
    ("Troops from the U.S. Army stationed in Italy returned home.",
     ["Troops from the U.S. Army stationed in Italy returned home."]),
    ("Officials from the U.K. Foreign Office attended.", ["Officials from the U.K. Foreign Office attended."]),
    ("She was treated at St. Mary's Hospital in London.", ["She was treated at St. Mary's Hospital in London."]),
    ("Officers of the Washington, D.C. Police Department arrived.",
     ["Officers of the Washington, D.C. Police Department arrived."]),
    ("The train leaves at 6 p.m. Friday from platform 2.", ["The train leaves at 6 p.m. Friday from platform 2."]),
    ("Room No. 12 is on the left.", ["Room No. 12 is on the left."]),
    ("Acme Inc. Chief Executive Jane Doe resigned.", ["Acme Inc. Chief Executive Jane Doe resigned."]),
    # "by Martin Luther King Jr. Crowds cheered" ends one: there the sentence said something before the name,
    # and a plural may be a subject bare; a singular noun after a name alone is the name's head.
    ("Martin Luther King Jr. Day falls in January.", ["Martin Luther King Jr. Day falls in January."]),
    ("He lectured at the U.S. Naval Academy for a decade.", ["He lectured at the U.S. Naval Academy for a decade."]),
]


# Held out again: written before the rule that reads "Baker St. Rain began" and "Acme Inc. Chief Executive" was
# chosen, half ending a sentence, half reading on, after street, company, name, time, letter and month
# abbreviations, before subjects with their verbs, titles, names and the nouns that head a name. 14 of these
# 20 were right when they were written, all 20 with that rule.
THIRD_HELD_OUT_ENDS = [
    ("We rented a flat on Park Ave. Rent doubled within a year.", ["We rented a flat on Park Ave.",
                                                                   "Rent doubled within a year."]),
    ("The crew moved everything to Elm Dr. Neighbours helped carry the boxes.",
     ["The crew moved everything to Elm Dr.", "Neighbours helped carry the boxes."]),
    ("The museum stands on Queen St. Visitors come from everywhere.",
     ["The museum stands on Queen St.", "Visitors come from everywhere."]),
    ("Half the budget came from the U.S. Donors gave the rest.",
     ["Half the budget came from the U.S.", "Donors gave the rest."]),
    ("The flight lands at 11 p.m. Passengers then take a bus.", ["The flight lands at 11 p.m.",
                                                                 "Passengers then take a bus."]),
    ("We ordered parts from Vance Corp. Delivery took three weeks.", ["We ordered parts from Vance Corp.",
                                                                      "Delivery took three weeks."]),
    ("Her lawyer was John Reed Sr. Judges knew him well.", ["Her lawyer was John Reed Sr.",
                                                            "Judges knew him well."]),
    ("He worked for years at Dunmore Ltd. Staff remember him fondly.", ["He worked for years at Dunmore Ltd.",
                                                                        "Staff remember him fondly."]),
    ("The shop closed early in Feb. Sales had fallen for months.", ["The shop closed early in Feb.",
                                                                    "Sales had fallen for months."]),
    ("She sold her stake in Orion Inc. Chairman Lee bought it.", ["She sold her stake in Orion Inc.",
                                                                  "Chairman Lee bought it."]),
    ("Acme Corp. Vice President Ann Lee spoke first.", ["Acme Corp. Vice President Ann Lee spoke first."]),
    ("The Robert Smith Jr. Award goes to a student each year.",
     ["The Robert Smith Jr. Award goes to a student each year."]),
    ("Dr. Ruth Bell works at St. Luke's Hospital.", ["Dr. Ruth Bell works at St. Luke's Hospital."]),
    ("They climbed Mt. Hood before dawn.", ["They climbed Mt. Hood before dawn."]),
    ("Some cities, e.g. Paris and Rome, ban cars.", ["Some cities, e.g. Paris and Rome, ban cars."]),
    ("The launch is at 7 a.m. Pacific on Thursday.", ["The launch is at 7 a.m. Pacific on Thursday."]),
    ("He joined the U.S. Marine Corps in 1990.", ["He joined the U.S. Marine Corps in 1990."]),
    ("Ellis Ltd. Managing Director Tom Hale retired.", ["Ellis Ltd. Managing Director Tom Hale retired."]),
    ("The John Hay Sr. House is now a museum.", ["The John Hay Sr. House is now a museum."]),
    ("Mr. Lee met Sen. Ortiz and Gov. Hall on Friday.", ["Mr. Lee met Sen. Ortiz and Gov. Hall on Friday."]),
]


@pytest.mark.parametrize(("text", "sentences"), ENDS_AFTER_ABBREVIATIONS + HELD_OUT_ENDS + THIRD_HELD_OUT_ENDS)
def test_a_sentence_ends_after_an_abbreviation_by_its_kind_and_the_next_words(text, sentences):
    assert split_sentences(text) == sentences
    # The normaliser keeps a period at each end and none inside: "U.S." is read "yoo ess." only at its end.
    alone = [normalize(s) for s in sentences]
    assert normalize(text) == " ".join(alone)
    assert all(s.endswith(".") and not re.search(r"[a-z]\.", s[:-1]) for s in alone)


def test_no_before_a_number_is_the_word_where_the_sentence_ends_there():
    text = "The answer is no. 5 people agreed. See No. 5 and no.7, Vol. II."
    assert split_sentences(text) == ["The answer is no.", "5 people agreed.", "See No. 5 and no.7, Vol. II."]
    said = ["The answer is no.", "five people agreed.", "See Number five and number seven, Volume two."]
    assert _said(plain(text)) == said
    assert normalize(text) == " ".join(said)  # was "The answer is number. five people agreed."


@pytest.mark.parametrize(("text", "sentences", "said"), [
    ("Queen Elizabeth I. Then she ruled.", ["Queen Elizabeth I.", "Then she ruled."],
     ["Queen Elizabeth the first.", "Then she ruled."]),
    ("World War II. After that it ended.", ["World War II.", "After that it ended."],
     ["World War two.", "After that it ended."]),
    # Before a word that could be a name too: a numeral is no initial, which a name would follow.
    ("He fought in World War I. Peace came later.", ["He fought in World War I.", "Peace came later."],
     ["He fought in World War one.", "Peace came later."]),
    ("It was Henry V. People cheered.", ["It was Henry V.", "People cheered."],
     ["It was Henry the fifth.", "People cheered."]),
    ("Read Chapter V. Smith wrote it.", ["Read Chapter V.", "Smith wrote it."],
     ["Read Chapter five.", "Smith wrote it."]),
    # A letter is still an initial: a name follows it.
    ("Plan V. Smith agreed.", ["Plan V. Smith agreed."], ["Plan V. Smith agreed."]),
])
def test_a_roman_numeral_after_a_name_ends_a_sentence_and_keeps_its_reading(text, sentences, said):
    assert split_sentences(text) == sentences
    assert _said(plain(text)) == said
    assert normalize(text) == " ".join(said)


@pytest.mark.parametrize(("text", "spoken"), [
    ("Open Mon-Fri.", "Open Monday to Friday."),
    ("Open Mon\u2013Fri, 9am\u20135pm", "Open Monday to Friday, nine eigh em to five pee em"),
    ("Closed Sat.\u2013Sun. and open 9 a.m. \u2013 5 p.m. daily",
     "Closed Saturday to Sunday and open nine eigh em to five pee em daily"),
    ("OPEN MON-FRI", "OPEN Monday to Friday"),
    ("Monday\u2013Friday or Tues - Thurs", "Monday to Friday or Tuesday to Thursday"),
    ("Mon thru Fri, from Jan to Mar", "Monday through Friday, from January to March"),
    ("Jan-Mar 2024 and Jun\u2013Sept", "January to March twenty twenty four and June to September"),
    # Not a range of days or of months: a name, a list, a day and a month.
    ("the Sun-Times on Mon-Wed-Fri", "the Sun-Times on Mon-Wed-Fri"),
])
def test_day_and_month_ranges_read_as_ranges(text, spoken):
    assert normalize(text) == spoken


def test_a_range_ending_a_sentence_keeps_its_period_once():
    text = "Open Mon.-Fri. Then closed."
    assert split_sentences(text) == ["Open Mon.-Fri.", "Then closed."]
    assert _said(plain(text)) == ["Open Monday to Friday.", "Then closed."]


@pytest.mark.parametrize(("text", "spoken"), [
    # Minutes past 59: no time of day and no duration, but a score or a ratio.
    ("The score was 12:75.", "The score was twelve to seventy five."),
    ("a 12:75 ratio, then 10:30", "a twelve to seventy five ratio, then ten thirty"),
    # Hours past 23 (but 24:00, which closes the day): no time of day either, the same reading.
    ("It ended 25:30, a record.", "It ended twenty five to thirty, a record."),
    ("24:30 and 99:59", "twenty four to thirty and ninety nine to fifty nine"),
    # With seconds, any part past what a clock shows: three numbers set against each other.
    ("It ended 25:30:10, then 10:30:75.", "It ended twenty five to thirty to ten, then ten to thirty to seventy five."),
    ("at 23:60:00 or 24:00:01", "at twenty three to sixty to zero or twenty four to zero to one"),
    # Valid times keep their reading.
    ("at 10:30, at 23:59 and at 7:05 a.m.", "at ten thirty, at twenty three fifty nine and at seven oh five eigh em."),
    ("at 12:00 or 3:16", "at twelve o'clock or three sixteen"),
    ("at 24:00, 00:15 and 17:00", "at twenty four hundred, twelve fifteen eigh em and seventeen hundred"),
    ("at 12:30 hours", "at twelve thirty hours"),
    ("at 10:30:15 and 23:59:59",
     "at ten thirty and fifteen seconds and twenty three fifty nine and fifty nine seconds"),
])
def test_a_colon_that_is_no_time_reads_as_a_ratio(text, spoken):
    assert normalize(text) == spoken


@pytest.mark.parametrize(("text", "spoken"), [
    ("The run took 25:30 min.", "The run took twenty five minutes and thirty seconds."),
    ("It lasted 25:01 hrs, then 48:00 hours", "It lasted twenty five hours and one minute, then forty eight hours"),
    ("a 30:05 minutes set and 26:15h",
     "a thirty minutes and five seconds set and twenty six hours and fifteen minutes"),
    ("It took 25:30:10 hours and 26:00:05 h", "It took twenty five hours, thirty minutes and ten seconds and "
                                            "twenty six hours and five seconds"),
    # Minutes or seconds past 59 count no duration: still a score; nor do three numbers before minutes.
    ("12:75 min", "twelve to seventy five min"),
    ("25:30:75 hours or 25:30:10 min",
     "twenty five to thirty to seventy five hours or twenty five to thirty to ten min"),
])
def test_a_unit_after_hours_past_23_reads_them_as_a_duration(text, spoken):
    assert normalize(text) == spoken


@pytest.mark.parametrize(("text", "spoken"), [
    # am or pm says a clock time was meant: not a score, but the numbers as written and the letters.
    ("at 12:75 pm", "at twelve seventy five pee em"),
    ("at 13:30 pm, 13:00 PM or 25:30 a.m.",
     "at thirteen thirty pee em, thirteen pee em or twenty five thirty eigh em."),
    ("13.30pm or 3.75pm", "thirteen thirty pee em or three seventy five pee em"),
    ("at 10:30:75 pm or 25:30:10 p.m. Then",
     "at ten thirty seventy five pee em or twenty five thirty ten pee em. Then"),
    # Valid ones keep their reading.
    ("at 12:05 pm and 11:59 p.m.", "at twelve oh five pee em and eleven fifty nine pee em."),
])
def test_am_or_pm_after_a_time_no_clock_shows_reads_the_time_as_written(text, spoken):
    assert normalize(text) == spoken


@pytest.mark.parametrize(("markup", "said"), [
    ("I saw <emphasis>Dr.</emphasis> Smith. Then I left.", ["I saw Doctor Smith.", "Then I left."]),
    ("I saw <emphasis level=\"strong\">the Dr.</emphasis>", ["I saw the Doctor."]),
    ('We bought <prosody rate="slow">apples, pears, etc.</prosody> Then we left.',
     ["We bought apples, pears, et cetera.", "Then we left."]),
    ('We bought <prosody rate="slow">apples, pears, etc.</prosody> and more.',
     ["We bought apples, pears, et cetera and more."]),
    ('We bought <prosody rate="slow">apples, etc.</prosody>, and more.', ["We bought apples, et cetera, and more."]),
    ("He joined the <emphasis>U.S.</emphasis> Army. He moved to the <emphasis>U.S.</emphasis> Then he left.",
     ["He joined the yoo ess Army.", "He moved to the yoo ess.", "Then he left."]),
    ("Visit <emphasis>St.</emphasis> Paul at <prosody rate=\"slow\">5 p.m.</prosody> Eastern.",
     ["Visit Saint Paul at five pee em Eastern."]),
    ("Open <emphasis>Mon-Fri</emphasis>.", ["Open Monday to Friday."]),
])
def test_an_abbreviation_at_the_end_of_styled_markup_reads_as_it_does_in_plain_text(markup, said):
    sentences = ssml.parse(f"<speak>{markup}</speak>")
    assert _said(sentences) == said
    bare = re.sub(r"<[^>]+>", "", markup)
    assert [s.text for s in sentences] == split_sentences(bare)
    assert _said(plain(bare)) == said


@pytest.fixture(scope="module")
def voice():
    from audiogan.tts import TTS

    return TTS.load("default", device="cpu")


@needs_espeak
def test_the_voice_says_marked_up_abbreviations_with_the_phonemes_of_plain_text(voice):
    markup = ('<speak>I saw <emphasis>Dr.</emphasis> Smith in the <emphasis>U.S.</emphasis> Army. We bought '
              '<prosody rate="slow">apples, etc.</prosody> and left <emphasis>Mon-Fri</emphasis> at 12:75.</speak>')
    marked, bare = voice.lines(markup), voice.lines(re.sub(r"<[^>]+>", "", markup))
    assert [line.ids for line in marked] == [line.ids for line in bare]
    assert len(marked) == 2
    # No period, and so no pause, inside either sentence: only its own end.
    period = voice.symbols.ids["."]
    assert [line.ids.count(period) for line in marked] == [1, 1]
    assert all(line.ids[-1] == period for line in marked)
    assert {style.rate for style in marked[1].styles} == {1.0, ssml.RATES["slow"], ssml.EMPHASIS["moderate"].rate}
