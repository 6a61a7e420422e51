"""SSML: the part of the W3C Speech Synthesis Markup Language that the voices can honour.

Text that starts with ``<speak>`` (after an optional XML declaration) is read as SSML, as NVIDIA Riva and
the cloud voices read it::

    <speak>
      Your code is <say-as interpret-as="characters">XK7</say-as>.<break time="600ms"/>
      <prosody rate="slow" pitch="-2st">Please write it down.</prosody>
      <phoneme alphabet="ipa" ph="ʃɪvˈɔːn">Siobhan</phoneme> will call you at
      <say-as interpret-as="telephone">555-0142</say-as>.
    </speak>

Elements: ``speak``, ``p``/``paragraph``, ``s``/``sentence``, ``break`` (time or strength), ``prosody``
(rate, pitch, volume), ``emphasis``, ``sub``, ``say-as``, ``phoneme`` (IPA in the voice's symbols) and
``mark`` (its time, where the next word begins, is reported with the timings).
Anything else is an error that names it, never silently skipped: a user who marks something up means it.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from audiogan.tts.normalize import LETTER_NAMES, MONTHS, RULES, normalize, readings_kept, split_sentences
from audiogan.tts.numbers import digit_words, fraction_words, number_words, ordinal_words, year_words
from audiogan.tts.script import PLAIN, SENTENCE_GAP_SECONDS, VOLUME_RANGE, Piece, Sentence, Style

PhonemeReader = Callable[[str, str], list[str]]  # (IPA, where) -> the voice's tokens; raises ValueError

BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.05, "weak": SENTENCE_GAP_SECONDS, "medium": 0.25, "strong": 0.5,
                   "x-strong": 1.0}
PARAGRAPH_GAP_SECONDS = BREAK_STRENGTHS["strong"]
MAX_BREAK_SECONDS = 10.0
RATES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "fast": 1.25, "x-fast": 1.6, "default": 1.0}
PITCHES = {"x-low": -4.0, "low": -2.0, "medium": 0.0, "high": 2.0, "x-high": 4.0, "default": 0.0}
SILENT_DB = VOLUME_RANGE[0]
VOLUMES = {"silent": SILENT_DB, "x-soft": -12.0, "soft": -6.0, "medium": 0.0, "loud": 4.0, "x-loud": 8.0,
           "default": 0.0}
# Emphasis as a speaker makes it: slower, higher, louder (or the reverse, reduced).
EMPHASIS = {"strong": Style(0.85, 2.0, 3.0), "moderate": Style(0.92, 1.0, 1.5), "none": PLAIN,
            "reduced": Style(1.1, -1.0, -3.0)}
DATE_FORMATS = ("mdy", "dmy", "ymd", "ydm", "md", "dm", "ym", "my", "y", "m", "d")
ELEMENTS = ("speak", "p", "paragraph", "s", "sentence", "break", "prosody", "emphasis", "sub", "say-as",
            "phoneme", "mark")
SSML_NAMESPACE = "http://www.w3.org/2001/10/synthesis"
# Elements are read recursively; markup nested deeper than any author writes is refused before Python's
# recursion limit turns it into an internal error.
MAX_DEPTH = 100
# Said as one unit: never split into sentences or normalised again.
_ATOM = "Zq"


def is_ssml(text: str) -> bool:
    return _START.match(text) is not None


_START = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?(?:<speak[\s>/]|<!DOCTYPE)", re.IGNORECASE)


def parse(text: str, phonemes: PhonemeReader | None = None) -> list[Sentence]:
    """SSML -> sentences; ``phonemes`` checks ``<phoneme>`` contents against a voice (without it,
    their tokens are the characters, for validation before any voice is loaded)."""
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise ValueError("SSML may not declare a DOCTYPE or entities")
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise ValueError(f"SSML is not well-formed XML: {exc}") from None
    if _tag(root) != "speak":
        raise ValueError(f"SSML starts with <speak>, not <{_tag(root)}>")
    reader = _Reader(phonemes or (lambda ipa, where: list(ipa.replace(" ", ""))))
    with readings_kept():
        reader.children(root, PLAIN)
        reader.close(0.0, 0.0)
    spoken = [s for s in reader.sentences if s.pieces]
    if spoken:
        spoken[-1].end_marks += reader.marks  # after the last word
    return reader.sentences


def problem(text: str) -> str | None:
    """Why this SSML cannot be said (for validating render manifests up front), or None."""
    try:
        parse(text)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass
class _Run:
    said: str | list[str]
    style: Style
    atomic: bool  # said as given: spelled-out letters, an alias, phonemes
    written: str | None = None
    mark: str | None = None  # a <mark>: says nothing, names a point in time
    pause: float | None = None  # a <break>: says nothing, ends the line here with this much silence


class _Reader:
    """Walks the element tree, gathering runs of text until a boundary, then splits them into sentences."""

    def __init__(self, phonemes: PhonemeReader) -> None:
        self.phonemes = phonemes
        self.sentences: list[Sentence] = []
        self.runs: list[_Run] = []
        self.marks: list[str] = []  # marks not yet placed: they go where the next word begins
        self.depth = 0

    def children(self, element: ET.Element, style: Style) -> None:
        if element.text:
            self.runs.append(_Run(element.text, style, atomic=False))
        for child in element:
            self.element(child, style)
            if child.tail:
                self.runs.append(_Run(child.tail, style, atomic=False))

    def element(self, element: ET.Element, style: Style) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"SSML nests elements more than {MAX_DEPTH} deep")
        try:
            self._element(element, style)
        finally:
            self.depth -= 1

    def _element(self, element: ET.Element, style: Style) -> None:
        tag = _tag(element)
        namespace = element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else SSML_NAMESPACE
        if tag not in ELEMENTS or namespace != SSML_NAMESPACE:
            vendor = f" (a vendor extension, namespace {namespace})" if namespace != SSML_NAMESPACE else ""
            raise ValueError(f"SSML element <{tag}>{vendor} is not supported; the voices understand "
                             + ", ".join(f"<{e}>" for e in ELEMENTS))
        if tag == "speak":
            raise ValueError("SSML <speak> may not be nested")
        if tag in ("p", "paragraph", "s", "sentence"):
            gap = PARAGRAPH_GAP_SECONDS if tag in ("p", "paragraph") else SENTENCE_GAP_SECONDS
            self.close(gap, 0.0)
            self.children(element, style)
            self.close(gap, 0.0)
        elif tag == "break":
            # A pause, not the end of what is said: the words on either side read as one sentence.
            self.runs.append(_Run("", style, atomic=False, pause=_break_seconds(element)))
        elif tag == "mark":
            self.runs.append(_Run("", style, atomic=False, mark=_required(element, "name")))
        elif tag == "prosody":
            self.children(element, _prosody(element, style))
        elif tag == "emphasis":
            self.children(element, style.then(EMPHASIS[_attribute(element, "level", "moderate", EMPHASIS)]))
        else:
            self.atom(element, tag, style)

    def atom(self, element: ET.Element, tag: str, style: Style) -> None:
        """``sub``, ``say-as`` and ``phoneme``: text only inside, said as the attributes direct."""
        if len(element):
            raise ValueError(f"SSML <{tag}> holds text only, not <{_tag(element[0])}>")
        content = (element.text or "").strip()
        if tag == "sub":
            alias = _required(element, "alias")
            self.runs.append(_Run(normalize(alias), style, atomic=True, written=content or alias))
        elif tag == "say-as":
            words = say_as(content, _required(element, "interpret-as"), element.get("format", ""))
            self.runs.append(_Run(words, style, atomic=True, written=content))
        else:
            alphabet = element.get("alphabet", "ipa")
            if alphabet != "ipa":
                raise ValueError(f"SSML <phoneme alphabet={alphabet!r}> is not supported; use alphabet=\"ipa\"")
            ipa = _required(element, "ph")
            tokens = self.phonemes(ipa, f"SSML <phoneme ph={ipa!r}>")
            self.runs.append(_Run(tokens, style, atomic=True, written=content or ipa))

    def close(self, gap: float, pause: float) -> None:
        """End the current sentence(s) here, with this much silence after."""
        sentences, self.marks = _split(self.runs, self.marks, gap, pause)
        self.runs = []
        self.sentences += sentences


def _split(runs: list[_Run], marks: list[str], gap: float, pause: float) -> tuple[list[Sentence], list[str]]:
    """Runs -> sentences: the text is split as plain text is, then each sentence is cut back into the runs
    (styles) it came from, and into lines at each ``<break>``: the lines before a break, or a silence alone,
    end with its pause, and those after the last with ``gap`` and ``pause``. Every run is read with its
    whole sentence in view, across the breaks in it. An atomic run stands in the text as one capitalised
    word. ``marks`` (and the runs' own) go to the piece that begins at or after them; those left over are
    returned."""
    text, owner = "", []
    placed = [(0, name) for name in marks]  # (position in the text, mark)
    breaks: list[tuple[int, float]] = []  # (position in the text, seconds)
    for index, run in enumerate(runs):
        if run.mark is not None:
            placed.append((len(text), run.mark))
            continue
        if run.pause is not None:
            breaks.append((len(text), run.pause))
        written = f" {_ATOM} " if run.atomic else " " if run.pause is not None else re.sub(r"\s+", " ", str(run.said))
        for char in written:
            if char == " " and (not text or text[-1] == " "):
                continue
            text += char
            owner.append(index)
    _whole_words(text, owner, runs)
    spans: list[tuple[int, int]] = []  # each sentence's (start, end) in the text
    for part in split_sentences(text):
        start = text.find(part, spans[-1][1] if spans else 0)
        spans.append((start, start + len(part)))
    breaks = _past_phrases(text, spans, breaks, owner, runs)
    lines: list[tuple[int, Sentence]] = []  # (where it ends in the text, line)
    for start, position in spans:
        inside = breaks[bisect_right(breaks, (start, math.inf)):bisect_left(breaks, (position, -math.inf))]
        cuts = [start, *(at for at, _ in inside), position]
        said_atoms: set[int] = set()
        for begin, stop in pairwise(cuts):
            pieces: list[Piece] = []
            written = ""  # the line as the markup wrote it, for captions
            while begin < stop:
                end = begin
                while end < stop and owner[end] == owner[begin]:
                    end += 1
                run = runs[owner[begin]]
                before = len(pieces)
                if run.atomic:
                    if owner[begin] not in said_atoms and text[begin:end].strip():
                        said_atoms.add(owner[begin])
                        pieces.append(Piece(run.said, run.style, run.written))
                        written += f" {run.written} "
                else:
                    written += text[begin:end]
                    # Read with the rest of its sentence in view: "<emphasis>Dr.</emphasis> Smith" is
                    # "Doctor Smith", without a period that would end the sentence mid-way, and "Henry
                    # <emphasis>VIII</emphasis>" is "Henry the eighth".
                    if words := normalize(text[begin:end], following=text[end:position],
                                          preceding=text[start:begin]):
                        pieces.append(Piece(words, run.style))
                if len(pieces) > before:  # a new piece: the marks before its end are where it begins
                    pieces[-1].marks = [name for at, name in placed if at < end]
                    placed = [(at, name) for at, name in placed if at >= end]
                begin = end
            if pieces:
                written = re.sub(r"\s+", " ", written).strip()
                lines.append((stop, Sentence(pieces, text=re.sub(r"\s+(?=[,.;:!?])", "", written))))
    # Each break, and the end, ends the lines before it (since the one before), or stands alone as a silence.
    sentences: list[Sentence] = []
    done = 0  # lines ended
    for at, after, seconds in [*((at, SENTENCE_GAP_SECONDS, seconds) for at, seconds in breaks),
                               (len(text), gap, pause)]:
        ends = done
        while ends < len(lines) and lines[ends][0] <= at:
            ends += 1
        ended = [line for _, line in lines[done:ends]] or [Sentence([])]
        ended[-1].gap, ended[-1].pause = after, seconds
        sentences += ended
        done = ends
    return sentences, [name for _, name in placed]


# A phrase that starts with a number or a currency sign: "5 p.m.", "$5", "5 kg", "3 1/2", "555-0142".
_NUMBER_FIRST = re.compile(r"\s*[-+]?[\d$£€¥]")
_WORD_REST = re.compile(r"\S*")


def _past_phrases(text: str, sentences: list[tuple[int, int]], breaks: list[tuple[int, float]],
                  owner: list[int], runs: list[_Run]) -> list[tuple[int, float]]:
    """``breaks`` (position in the text, seconds), each that falls inside a phrase that a rule reads as one
    and that starts with a number or a currency sign moved to the end of the phrase's last word, and the
    phrase made one run's (see ``_whole``): each line, and each run, is read apart, so "at 5 <break/>p.m."
    said "at five", the pause, "pee em", and "$<break/>5" "$", the pause, "five". The phrase is said
    whole, then the pause. A break after a word that a rule reads a number by ("Call <break/>911", "page
    <break/>1984") stays: the words on either side read as one sentence already, and the pause between
    them is the author's."""
    phrases: dict[int, list[tuple[int, int]]] = {}  # by sentence start: the phrases in it
    moved = []
    for at, seconds in breaks:
        for start, end in sentences:
            if start < at < end:
                if start not in phrases:
                    sentence = text[start:end]
                    phrases[start] = [(start + m.start(), start + m.end()) for pattern, _ in RULES
                                      for m in pattern.finditer(sentence) if _NUMBER_FIRST.match(m.group(0))]
                at = _end_of_phrases(text, phrases[start], at, owner, runs)
                break
        moved.append((at, seconds))
    return sorted(moved, key=lambda b: b[0])


def _end_of_phrases(text: str, phrases: list[tuple[int, int]], at: int, owner: list[int],
                    runs: list[_Run]) -> int:
    """``at``, or past the end of the word that ends the phrase it falls inside, until it falls in none."""
    inside = True
    while inside:
        inside = False
        for begin, end in phrases:
            if begin < at < end and text[begin:at].strip() and text[at:end].strip():
                at, inside = _WORD_REST.match(text, end).end(), True
                _whole(owner, runs, begin, at)
    return at


def _whole_words(text: str, owner: list[int], runs: list[_Run]) -> None:
    """A word marked up in part ("$<emphasis>5</emphasis>", "1,<emphasis>000</emphasis>") becomes one run's,
    so that it is normalised whole ("five dollars", not "dollar five")."""
    for word in re.finditer(r"\S+", text):
        _whole(owner, runs, word.start(), word.end())


def _whole(owner: list[int], runs: list[_Run], begin: int, end: int) -> None:
    """The text from ``begin`` to ``end`` made one run's (unless it holds an atomic one), said in the style
    the markup gave it, or where styles meet in it, in the one most of its characters have; the space a
    ``<break>`` stands for says nothing and lends none."""
    owners = owner[begin:end]
    if owners.count(owners[0]) == len(owners) or any(runs[o].atomic for o in owners):
        return
    chosen = max((o for o in owners if runs[o].pause is None),
                 key=lambda o: (runs[o].style != PLAIN, owners.count(o)))
    owner[begin:end] = [chosen] * len(owners)


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]  # without the SSML namespace, if one is declared


def _required(element: ET.Element, name: str) -> str:
    value = element.get(name, "").strip()
    if not value:
        raise ValueError(f"SSML <{_tag(element)}> needs a {name}=\"...\" attribute")
    return value


def _attribute(element: ET.Element, name: str, default: str, allowed: dict[str, object]) -> str:
    value = element.get(name, default).strip()
    if value not in allowed:
        raise ValueError(f"SSML <{_tag(element)} {name}={value!r}>: use one of {', '.join(allowed)}")
    return value


def _break_seconds(element: ET.Element) -> float:
    time = element.get("time")
    if time is None:
        return BREAK_STRENGTHS[_attribute(element, "strength", "medium", BREAK_STRENGTHS)]
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", time)
    if not m:
        raise ValueError(f"SSML <break time={time!r}>: give a time like \"500ms\" or \"1.5s\"")
    seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if seconds > MAX_BREAK_SECONDS:
        raise ValueError(f"SSML <break time={time!r}> is longer than {MAX_BREAK_SECONDS:g} s")
    return seconds


def _prosody(element: ET.Element, style: Style) -> Style:
    unknown = sorted(set(element.attrib) - set(PROSODY))
    if unknown:
        raise ValueError(f"SSML <prosody {unknown[0]}=...> is not supported; use rate, pitch and volume")
    value = {name: _prosody_value(name, element.attrib[name]) for name in PROSODY if name in element.attrib}
    return style.then(Style(value.get("rate", 1.0), value.get("pitch", 0.0), value.get("volume", 0.0)))


@dataclass(frozen=True)
class _Scale:
    """How one prosody attribute is written: keywords, or a number in a unit, within bounds."""
    keywords: dict[str, float]
    pattern: str
    number: Callable[[re.Match[str]], float]
    bounds: tuple[float, float]
    written_bounds: str
    example: str


def _relative_rate(m: re.Match[str]) -> float:
    number = float(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    # "80%" is 0.8 of normal speed; "+20%" / "-20%" are relative; a bare number multiplies.
    return (1 + number / 100 if m.group(1) else number / 100) if m.group(3) else number


PROSODY = {
    "rate": _Scale(RATES, r"([+-]?)(\d+(?:\.\d+)?)(%?)", _relative_rate, (0.25, 4.0), "25%..400%",
                   "a percentage such as \"80%\""),
    "pitch": _Scale(PITCHES, r"([+-]?\d+(?:\.\d+)?)(st|%)",
                    lambda m: float(m.group(1)) if m.group(2) == "st"
                    else 12 * math.log2(max(1 + float(m.group(1)) / 100, 1e-6)),
                    (-12.0, 12.0), "-12st..+12st", "semitones (\"+2st\") or a percentage (\"-10%\")"),
    "volume": _Scale(VOLUMES, r"([+-]?\d+(?:\.\d+)?)dB", lambda m: float(m.group(1)), (-40.0, VOLUME_RANGE[1]),
                     "-40dB..+12dB", "decibels (\"+6dB\")"),
}


def _prosody_value(name: str, value: str) -> float:
    scale, value = PROSODY[name], value.strip()
    if value in scale.keywords:
        return scale.keywords[value]
    m = re.fullmatch(scale.pattern, value)
    if not m:
        raise ValueError(f"SSML <prosody {name}={value!r}>: use {', '.join(scale.keywords)} or {scale.example}")
    number = scale.number(m)
    if not scale.bounds[0] <= number <= scale.bounds[1]:
        raise ValueError(f"SSML <prosody {name}={value!r}> is out of range {scale.written_bounds}")
    return number


def say_as(text: str, interpret_as: str, format: str = "") -> str:
    """``<say-as>`` content -> spoken-form words."""
    kind = interpret_as.strip().lower()
    where = f"SSML <say-as interpret-as={interpret_as!r}>"
    if not text:
        raise ValueError(f"{where} is empty")
    if kind in ("characters", "spell-out", "verbatim", "letters"):
        said = [LETTER_NAMES.get(c.lower()) or (digit_words(c) if c.isdigit() else "") for c in text]
        if not any(said):
            raise ValueError(f"{where}: {text!r} has no letters or digits to spell")
        return " ".join(s for s in said if s)
    if kind in ("cardinal", "number"):
        m = re.fullmatch(r"([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?", text)
        if not m:
            raise ValueError(f"{where}: {text!r} is not a number")
        words = number_words(int(m.group(2).replace(",", "")))
        words = ("minus " if m.group(1) == "-" else "") + words
        return words + (" point " + digit_words(m.group(3)) if m.group(3) else "")
    if kind == "ordinal":
        m = re.fullmatch(r"(\d+)(?:st|nd|rd|th)?", text.replace(",", ""))
        if not m:
            raise ValueError(f"{where}: {text!r} is not an ordinal number")
        return ordinal_words(int(m.group(1)))
    if kind == "digits":
        if not any(c.isdigit() for c in text):
            raise ValueError(f"{where}: {text!r} has no digits")
        return digit_words(text)
    if kind == "telephone":
        groups = re.findall(r"\d+", text)
        if not groups:
            raise ValueError(f"{where}: {text!r} has no digits")
        return ("plus " if text.startswith("+") else "") + ", ".join(digit_words(g) for g in groups)
    if kind == "fraction":
        m = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
        if not m or int(m.group(2)) == 0:
            raise ValueError(f"{where}: {text!r} is not a fraction like 3/4")
        return fraction_words(int(m.group(1)), int(m.group(2)))
    if kind == "date":
        return _date(text, format.strip().lower() or "mdy", where)
    if kind in ("time", "currency", "measure", "unit", "address"):
        return normalize(text)  # the normaliser reads these; say-as only says where they are
    raise ValueError(f"{where} is not supported; use characters, spell-out, cardinal, number, ordinal, "
                     "digits, telephone, fraction, date, time, currency or measure")


def _date(text: str, format: str, where: str) -> str:
    if format not in DATE_FORMATS:
        raise ValueError(f"{where} format={format!r}: use one of {', '.join(DATE_FORMATS)}")
    fields = re.findall(r"\d+", text)
    if len(fields) != len(format):
        raise ValueError(f"{where}: {text!r} does not have the {len(format)} numbers of format {format!r}")
    parts = dict(zip(format, (int(f) for f in fields), strict=True))
    if not 1 <= parts.get("m", 1) <= 12 or not 1 <= parts.get("d", 1) <= 31:
        raise ValueError(f"{where}: {text!r} is not a date in format {format!r}")
    year = parts.get("y")
    if year is not None and len(fields[format.index("y")]) == 2:
        year += 2000 if year < 50 else 1900
    month = MONTHS[parts["m"] - 1] if "m" in parts else ""
    day = ordinal_words(parts["d"]) if "d" in parts else ""
    if day and not month:
        day = "the " + day
    words = " ".join(w for w in (month, day) if w)
    if year is not None:
        words = f"{words}, {year_words(year)}" if day else f"{words} {year_words(year)}".strip()
    return words
