"""English text normalisation: what the reader would say, written out in words, punctuation kept.

Numbers, ordinals, years, currency, percentages, times and common abbreviations become words before the
phonemizer sees them (espeak reads "$3.50" as "dollar three point five zero"). Sentence splitting keeps
long input whole: every character of a 5,000-word text ends up in some sentence.
"""

from __future__ import annotations

import re
import unicodedata

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "prof": "professor",
    "jr": "junior", "sr": "senior", "co": "company", "ltd": "limited", "inc": "incorporated", "vs": "versus",
    "etc": "et cetera", "no": "number", "gen": "general", "capt": "captain", "lt": "lieutenant", "col": "colonel",
    "sgt": "sergeant", "rev": "reverend", "hon": "honorable", "mt": "mount", "ft": "fort", "approx": "approximately",
    "dept": "department", "e.g": "for example", "i.e": "that is", "a.m": "a m", "p.m": "p m",
}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at ", "#": " number "}


def number_words(n: int) -> str:
    """0 <= n < 10**15 in words: 1234 -> 'one thousand two hundred thirty four'."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for value, name in SCALES:
        if n >= value:
            if n >= value * 1000:
                break  # beyond trillions: read digit by digit
            rest = n % value
            return number_words(n // value) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(ONES[int(d)] for d in str(n))


def ordinal_words(n: int) -> str:
    words = number_words(n).split()
    last = words[-1]
    if last in ORDINAL_WORDS:
        words[-1] = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """1984 -> 'nineteen eighty four', 2005 -> 'two thousand five', 1900 -> 'nineteen hundred'."""
    if 2000 <= n < 2010 or n < 1000 or n >= 10000:
        return number_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_words(high) + " hundred"
    return number_words(high) + " " + ("oh " + ONES[low] if low < 10 else number_words(low))


def _digits_words(text: str) -> str:
    return " ".join(ONES[int(d)] for d in text)


def _currency(match: re.Match[str]) -> str:
    symbol, whole, frac, scale = match.group(1), match.group(2).replace(",", ""), match.group(3), match.group(4)
    one, many, sub_one, sub_many = CURRENCIES[symbol]
    if scale:  # $3.5 million -> three point five million dollars
        amount = number_words(int(whole)) + (" point " + _digits_words(frac) if frac else "")
        return f"{amount} {scale} {many}"
    units, cents = int(whole), int((frac or "0").ljust(2, "0")[:2])
    parts = []
    if units or not cents:
        parts.append(f"{number_words(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{number_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(match: re.Match[str]) -> str:
    hours, minutes, suffix = int(match.group(1)), int(match.group(2)), match.group(3)
    words = number_words(hours)
    if minutes:
        words += " " + ("oh " + ONES[minutes] if minutes < 10 else number_words(minutes))
    elif not suffix:
        words += " o'clock"
    if suffix:
        words += " " + " ".join(suffix.lower().replace(".", "").strip())
    return words


def _number(match: re.Match[str]) -> str:
    text = match.group(0)
    whole, _, frac = text.replace(",", "").partition(".")
    if not frac and "," not in text and len(whole) == 4 and 1100 <= int(whole) <= 2099:
        return year_words(int(whole))
    words = number_words(int(whole)) if len(whole) <= 15 else _digits_words(whole)
    return words + (" point " + _digits_words(frac) if frac else "")


def _abbreviation(match: re.Match[str]) -> str:
    word = match.group(1)
    expansion = ABBREVIATIONS[word.lower().rstrip(".")]
    return expansion.capitalize() if word[0].isupper() else expansion


_ABBREV_RE = re.compile(r"\b(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
                        + r")\.(?=\s|$)", re.IGNORECASE)
_CURRENCY_RE = re.compile(r"([$£€¥])\s?(\d+(?:,\d{3})*)(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?")
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\s?([ap]\.?m\.?)?(?=\W|$)", re.IGNORECASE)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE_RE = re.compile(r"\b(1[1-9]|20)(\d)0s\b")
_NUMBER_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_SPACES_RE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Written English -> spoken-form English, punctuation kept as prosody hints."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2014", ", ").replace("\u2013", " to ").replace("\u2026", "...")
    text = _CURRENCY_RE.sub(_currency, text)
    text = re.sub(r"\b(\d+)\s?¢", lambda m: f"{number_words(int(m.group(1)))} cent{'' if m.group(1) == '1' else 's'}",
                  text)
    text = _TIME_RE.sub(_time, text)
    text = _ABBREV_RE.sub(_abbreviation, text)
    text = _DECADE_RE.sub(lambda m: year_words(int(m.group(1) + m.group(2) + "0"))[:-1] + "ies"
                          if year_words(int(m.group(1) + m.group(2) + "0")).endswith("y")
                          else year_words(int(m.group(1) + m.group(2) + "0")) + "s", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"(?<=\d)\s*%", " percent", text)
    text = re.sub(r"(?<=\d)-(?=\d)", " to ", text)
    text = _NUMBER_RE.sub(_number, text)
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    return _SPACES_RE.sub(" ", text).strip()


_ENDS_WITH_ABBREVIATION = re.compile(r"\b(" + "|".join(re.escape(a) for a in ABBREVIATIONS) + r")\.$",
                                     re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences, each at most ``max_chars`` (long ones are cut at commas, then at spaces); nothing is
    dropped: the pieces joined with spaces are the input with its whitespace collapsed."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        pieces: list[str] = []
        for piece in _SENTENCE_END.split(_SPACES_RE.sub(" ", paragraph).strip()):
            if pieces and _ENDS_WITH_ABBREVIATION.search(pieces[-1]):
                pieces[-1] += " " + piece  # "Mr. Smith" is one sentence
            else:
                pieces.append(piece)
        for sentence in pieces:
            sentences.extend(_cut(sentence.strip(), max_chars))
    return [s for s in sentences if s]


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    for separator in (", ", "; ", " "):
        cut = sentence.rfind(separator, 0, max_chars)
        if cut > max_chars // 3:
            head = sentence[: cut + len(separator.rstrip())]
            return [head, *_cut(sentence[cut + len(separator):].strip(), max_chars)]
    return [sentence[:max_chars], *_cut(sentence[max_chars:], max_chars)]
