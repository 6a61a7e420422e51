"""English text normalisation: what the reader would say, written out in words, punctuation kept.

Numbers, ordinals, years and eras, dates, currency, percentages, times, units, heights, phone
numbers, web and IP addresses, version numbers, Roman numerals and common abbreviations become words
before the phonemizer sees them (espeak reads "$3.50" as "dollar three point five zero" and
"12/25/2023" as three numbers). The rules run in a fixed order, most specific first, because a later
rule would misread an earlier one's input: a phone number is not a range, a date is not a fraction.
Sentence splitting keeps long input whole: every character of a 5,000-word text ends up in some sentence.
What the voice cannot say is dropped with a warning (see ``_unsayable``): espeak-ng reads an emoji by its
name ("red heart"), CJK as "Chinese letter", and stops reading a sentence at a NUL byte.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from audiogan.tts.numbers import (
    ONES,
    TENS,
    digit_words,
    fraction_words,
    number_words,
    ordinal_words,
    plural_words,
    roman_value,
    year_words,
)

log = logging.getLogger(__name__)

# Expanded wherever they stand before a period. Titles and place words precede a name, so a sentence
# never ends at them: the splitter keeps "Dr. Smith" together.
TITLES = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "prof": "professor", "rev": "reverend",
    "hon": "honorable", "gen": "general", "capt": "captain", "lt": "lieutenant", "col": "colonel",
    "sgt": "sergeant", "gov": "governor", "sen": "senator", "rep": "representative", "pres": "president",
    "mt": "mount", "vs": "versus", "approx": "approximately", "e.g": "for example", "i.e": "that is",
    "cf": "compare",
}
# May end a sentence: a period that follows them at the end of the text is kept.
TRAILING = {
    "jr": "junior", "sr": "senior", "co": "company", "corp": "corporation", "ltd": "limited",
    "inc": "incorporated", "etc": "et cetera", "dept": "department", "univ": "university", "ave": "avenue",
    "blvd": "boulevard", "rd": "road", "a.m": "eigh em", "p.m": "pee em",
}
# Letters said by name, respelled so that espeak-ng cannot take one for a word ("a" alone is the article).
LETTER_NAMES = dict(zip("abcdefghijklmnopqrstuvwxyz",
                        ["eigh", "bee", "see", "dee", "ee", "ef", "gee", "aitch", "eye", "jay", "kay", "el", "em",
                         "en", "oh", "pee", "cue", "ar", "ess", "tee", "yoo", "vee", "double you", "ex", "why",
                         "zee"], strict=True))
# Only before a number: "no. 7" is "number seven", but "the answer was no." stays "no".
BEFORE_NUMBERS = {"no": "number", "nos": "numbers", "p": "page", "pp": "pages", "vol": "volume",
                  "ch": "chapter", "fig": "figure", "ca": "circa", "approx": "approximately"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Capitalised only: "Jan." and "Wed." are months and days; "mar" or "sat" are verbs.
CAPITALISED = {**{m[:3]: m for m in MONTHS}, "Sept": "September", "Mon": "Monday", "Tue": "Tuesday",
               "Tues": "Tuesday", "Wed": "Wednesday", "Thu": "Thursday", "Thur": "Thursday", "Thurs": "Thursday",
               "Fri": "Friday", "Sat": "Saturday", "Sun": "Sunday", "Ft": "Fort"}
# Words after which a Roman numeral is a count ("World War two"); after other names it is a regnal
# ordinal ("Henry the eighth").
COUNTING_WORDS = {"chapter", "part", "book", "volume", "act", "scene", "war", "section", "article", "phase",
                  "stage", "level", "type", "class", "round", "episode", "season", "grade", "appendix", "title",
                  "canto", "psalm", "series", "vol"}
# Capitalised words that are no name: "An IV drip" is not "an the fourth drip".
NOT_NAMES = {"A", "An", "The", "In", "On", "At", "Of", "For", "To", "And", "Or", "But", "So", "If", "With", "By",
             "From", "As", "Is", "Was", "My", "His", "Her", "Our", "Their", "Its", "This", "That", "Get", "Got"}
# Case-sensitive unit symbols after a number: (singular, plural). Left out on purpose: "m" (metres or
# millions), "in" (inches or the word), "s", "h", "l" and "V" (too often something else).
UNITS = {
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "nm": ("nanometer", "nanometers"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "mi": ("mile", "miles"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"), "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
    "Mbps": ("megabit per second", "megabits per second"), "Gbps": ("gigabit per second", "gigabits per second"),
    "ms": ("millisecond", "milliseconds"), "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"), "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"), "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowatt hour", "kilowatt hours"), "W": ("watt", "watts"),
    "dB": ("decibel", "decibels"), "px": ("pixel", "pixels"), "fps": ("frame per second", "frames per second"),
    "rpm": ("revolution per minute", "revolutions per minute"), "bpm": ("beat per minute", "beats per minute"),
    "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"), "qt": ("quart", "quarts"),
    "gal": ("gallon", "gallons"),
}
# Eras after a year: said letter by letter ("AD" alone would be read as the word "ad").
ERAS = {"AD": "eigh dee", "A.D.": "eigh dee", "BC": "bee see", "B.C.": "bee see", "BCE": "bee see ee",
        "CE": "see ee"}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
CURRENCY_SCALES = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion"}
SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ",
           "°": " degrees", "~": " about ", "×": " times ", "©": " copyright "}
TOP_LEVEL_DOMAINS = "com|org|net|edu|gov|io|ai|dev|info|co|uk|us|de|fr|eu|ca|au"

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_MONTH_RE = (r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
             r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")


def _month(name: str) -> str:
    return next(m for m in MONTHS if m.startswith(name[:3]))


def _two_digit_year(text: str) -> str:
    n = int(text)
    return year_words(n) if len(text) == 4 else ("oh " + ONES[n] if n < 10 else number_words(n))


def _email(m: re.Match[str]) -> str:
    user, domain = m.group(1), m.group(2)
    return f"{user.replace('.', ' dot ')} at {domain.replace('.', ' dot ')}"


def _web(m: re.Match[str]) -> str:
    host, path = m.group(1), m.group(2) or ""
    parts = ["w w w" if p.lower() == "www" else p for p in host.split(".")]
    words = " dot ".join(parts)
    path = path.rstrip("/")
    return words + (" slash " + " slash ".join(p for p in path.strip("/").split("/") if p) if path else "")


def _phone(m: re.Match[str]) -> str:
    groups = [g for g in m.groups() if g]
    return ", ".join(digit_words(g) for g in groups)


def _numeric_date(m: re.Match[str]) -> str:
    a, b, year = int(m.group(1)), int(m.group(2)), m.group(3)
    month, day = (a, b) if a <= 12 else (b, a)  # US order unless the first cannot be a month
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{MONTHS[month - 1]} {ordinal_words(day)}, {_two_digit_year(year)}"


def _iso_date(m: re.Match[str]) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{MONTHS[month - 1]} {ordinal_words(day)}, {year_words(year)}"


def _currency(m: re.Match[str]) -> str:
    whole, frac, scale = m["whole"].replace(",", ""), m["frac"], m["scale"]
    one, many, sub_one, sub_many = CURRENCIES[m["symbol"]]
    sign = "minus " if m["minus"] or m["minus_after"] else ""  # -$5 and $-5
    if scale:  # $3.5 million -> three point five million dollars
        scale = CURRENCY_SCALES.get(scale.lower(), scale.lower())
        amount = number_words(int(whole)) + (" point " + digit_words(frac) if frac else "")
        return f"{sign}{amount} {scale} {many}"
    units, cents = int(whole), int((frac or "0").ljust(2, "0")[:2])
    parts = []
    if units or not cents:
        parts.append(f"{number_words(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{number_words(cents)} {sub_one if cents == 1 else sub_many}")
    return sign + " and ".join(parts)


def _time(m: re.Match[str]) -> str:
    found = m.groupdict()
    hours, minutes, seconds = (int(found.get(part) or 0) for part in ("hours", "minutes", "seconds"))
    suffix = found["suffix"]
    if found["hours"] == "00" and not suffix:  # the 24-hour clock's midnight hour: 00:15 is 12:15 a.m.
        hours, suffix = 12, "am"
    words = number_words(hours)
    if minutes:
        words += " " + ("oh " + ONES[minutes] if minutes < 10 else number_words(minutes))
    elif not suffix:
        words += " o'clock"
    if suffix:
        words += " " + " ".join(LETTER_NAMES[c] for c in suffix.lower() if c.isalpha())
    if seconds:
        words += f" and {number_words(seconds)} second{'' if seconds == 1 else 's'}"
    # The suffix's last period may also end the sentence; keep it where the text ends.
    return words + ("." if suffix and suffix.endswith(".") and m.end() == len(m.string) else "")


def _day_of_month(article: str | None, day: int, month: str) -> str:
    """'the fifth of December', keeping the text's own article where it has one ("on the 5th of June")."""
    return f"{article or 'the'} {ordinal_words(day)} of {month}"


def _dotted(m: re.Match[str]) -> str:
    """Three or more dot-separated numbers: a day-first date (5.12.2024), an IP address, or a version."""
    article, groups = m.group(1), m.group(2).split(".")
    if len(groups) == 3 and len(groups[2]) == 4 and 1 <= int(groups[1]) <= 12 and 1 <= int(groups[0]) <= 31:
        return f"{_day_of_month(article, int(groups[0]), MONTHS[int(groups[1]) - 1])}, {year_words(int(groups[2]))}"
    said = [digit_words(g) if len(g) > 1 and g.startswith("0") else number_words(int(g)) for g in groups]
    is_address = len(groups) == 4 and all(int(g) <= 255 for g in groups)
    return (f"{article} " if article else "") + (" dot " if is_address else " point ").join(said)


def _feet_inches(m: re.Match[str]) -> str:
    feet, inches = int(m.group(1)), int(m.group(2))
    return (f"{number_words(feet)} {'foot' if feet == 1 else 'feet'} "
            f"{number_words(inches)} {'inch' if inches == 1 else 'inches'}")


def _era(m: re.Match[str]) -> str:
    return f"{year_words(int(m.group(1)))} {ERAS[m.group(2)]}" + ("." if m.group(2).endswith(".")
                                                                 and m.end() == len(m.string) else "")


def _temperature(m: re.Match[str]) -> str:
    scale = {"C": "Celsius", "F": "Fahrenheit"}[m.group(3)]
    return f"{'minus ' if m.group(1) else ''}{m.group(2)} degrees {scale}"


def _unit(m: re.Match[str]) -> str:
    one, many = UNITS[m.group(2)]
    return f"{m.group(1)} {one if m.group(1) == '1' else many}"


def _fraction(m: re.Match[str]) -> str:
    whole, numerator, denominator = m.group(1), int(m.group(2)), int(m.group(3))
    if 0 < numerator < denominator <= 100:
        return (f"{number_words(int(whole))} and " if whole else "") + fraction_words(numerator, denominator)
    return f"{whole + ' ' if whole else ''}{m.group(2)} {m.group(3)}"  # 24/7, 50/50


def _roman(m: re.Match[str]) -> str:
    word, numeral = m.group(1), m.group(2)
    value = roman_value(numeral)
    counting = word.lower().rstrip(".") in COUNTING_WORDS
    if value is None or word in NOT_NAMES or (len(numeral) == 1 and not counting):
        return m.group(0)
    if counting:
        return f"{word} {number_words(value)}"
    return f"{word} the {ordinal_words(value)}"


def _abbreviation(table: dict[str, str]):
    def expand(m: re.Match[str]) -> str:
        word = m.group(1)
        expansion = table[word.lower()]
        expansion = expansion.capitalize() if word[0].isupper() else expansion
        # Its period may also end the sentence: keep one where the text ends.
        return expansion + ("" if m.string[m.end():].strip(" \"')]") else ".")
    return expand


def _saint_or_street(m: re.Match[str]) -> str:
    after = m.string[m.end():]
    return "Saint" if re.match(r"\s+[A-Z]", after) else "Street" + ("" if after.strip() else ".")


def _drive(m: re.Match[str]) -> str:
    """"Dr." right after a capitalised name inside a sentence ("at 12 Oak Dr.", "on Sunset Dr. Then") is
    a street; "told Mary Dr. Lee" reads wrong, but is rarer than a street name in text read aloud."""
    after = m.string[m.end():]
    # Before a capital or at the end, its period also ends the sentence.
    return m.group(1) + "Drive" + ("." if re.match(r"\s+[A-Z]", after) or not after.strip() else "")


def _decade(m: re.Match[str]) -> str:
    century, decade, bare = m.groups()
    if century:
        return plural_words(year_words(int(century + decade + "0")))
    return plural_words(TENS[int(bare)])  # the '90s


def _number(m: re.Match[str]) -> str:
    text = m.group(0)
    whole, _, frac = text.replace(",", "").partition(".")
    if not frac and "," not in text and len(whole) == 4 and 1100 <= int(whole) <= 2099:
        return year_words(int(whole))
    if len(whole) > 15 or (len(whole) > 1 and whole.startswith("0")):
        words = digit_words(whole)  # 007, account numbers
    else:
        words = number_words(int(whole))
    return words + (" point " + digit_words(frac) if frac else "")


def _words(table: dict[str, str]) -> str:
    return "|".join(re.escape(a) for a in sorted(table, key=len, reverse=True))


# (pattern, replacement) in the order they run; see the module docstring for why order matters.
RULES: list[tuple[re.Pattern[str], object]] = [
    # Each address rule starts only where a token starts: from every character of a long dotted run it
    # would rescan the run (quadratic time).
    (re.compile(r"(?<![\w.+-])([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b"), _email),
    (re.compile(r"(?<![\w.:/-])(?:https?://)?((?:[\w-]+\.)+(?:" + TOP_LEVEL_DOMAINS + r"))\b(/[\w/.-]*)?",
                re.IGNORECASE), _web),
    (re.compile(r"(?<![\w-])(?:\((\d{3})\)\s?|(\d{3})[ .-])(\d{3})[ .-](\d{4})(?![\w-])"), _phone),
    (re.compile(r"(?<![\w-])(\d{3})-(\d{4})(?![\w-])"), _phone),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), _iso_date),
    (re.compile(r"(?<![\w.])[vV](?=\d+\.\d)"), "version "),
    (re.compile(r"(?:\b((?i:the))\s+)?(?<![\w.])(\d+(?:\.\d+){2,})(?![\w]|\.\d)"), _dotted),
    (re.compile(r"(?<![\w.'])(\d{1,2})'\s?(\d{1,2})(?:\"|'')"), _feet_inches),
    (re.compile(r"\b(\d{1,4})\s?(" + _words(ERAS) + r")(?!\w|\.\w)"), _era),
    (re.compile(r"(?<![\w.])(AD|A\.D\.)\s?(\d{1,4})\b"), lambda m: f"{ERAS[m.group(1)]} {year_words(int(m.group(2)))}"),
    (re.compile(r"\b([Yy]ear\s+)(\d{4})\b(?!\.\d)"), lambda m: m.group(1) + year_words(int(m.group(2)))),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b"), _numeric_date),
    (re.compile(r"(?<=\d)\s?[-–]\s?(?=[$£€¥]\d)"), " to "),  # $5-$10: a range, before the sign rule below
    (re.compile(r"(?:(?<![\w.])(?P<minus>-))?(?P<symbol>[$£€¥])\s?(?P<minus_after>-)?(?P<whole>\d+(?:,\d{3})*)"
                r"(?:\.(?P<frac>\d+))?(?:\s?(?P<scale>thousand|million|billion|trillion|k|mn|m|bn|b)\b)?",
                re.IGNORECASE), _currency),
    (re.compile(r"\b(\d+)\s?¢"), lambda m: f"{number_words(int(m.group(1)))} cent{'' if m.group(1) == '1' else 's'}"),
    (re.compile(r"\b(?P<hours>\d{1,2}):(?P<minutes>\d{2})(?::(?P<seconds>\d{2})\b)?(?:\s?(?P<suffix>[ap]\.?m\b\.?))?",
                re.IGNORECASE), _time),
    (re.compile(r"\b(?P<hours>\d{1,2})\s?(?P<suffix>[ap]\.m\.|[ap]m\b)", re.IGNORECASE), _time),
    (re.compile(r"\b" + _MONTH_RE + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?![:\d])"),
     lambda m: f"{_month(m.group(1))} {ordinal_words(int(m.group(2)))}"),
    (re.compile(r"(?:\b((?i:the))\s+)?\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r"\b(?:\.(?!\s*$))?"),
     lambda m: _day_of_month(m.group(1), int(m.group(2)), _month(m.group(3)))),
    (re.compile(r"(?:(?<![\w.])(-))?(?<![\d.])(\d+(?:\.\d+)?)\s?°\s?([CF])\b"), _temperature),
    (re.compile(r"(?<![\w.])(" + _NUM + r")\s?(" + _words(UNITS) + r")(?![\w/])"), _unit),
    (re.compile(r"\b(" + _words(BEFORE_NUMBERS) + r")\.(?=\s?[#\d])", re.IGNORECASE),
     _abbreviation(BEFORE_NUMBERS)),
    # A word (or house number) before the capitalised name: a sentence's first word is no street name.
    (re.compile(r"(?<![\w.])((?:\d+|[a-z,]+)\s+(?:[A-Z][\w'-]*\s+){1,3})Dr\.(?=[\s,;:)]|$)"), _drive),
    (re.compile(r"\b(" + _words(TITLES) + r")\.(?=\s|$)", re.IGNORECASE), _abbreviation(TITLES)),
    (re.compile(r"\b(" + _words(TRAILING) + r")\.(?=[\s\"')\]]|$)", re.IGNORECASE),
     _abbreviation(TRAILING)),
    (re.compile(r"\b(" + _words(CAPITALISED) + r")\.(?=\s|$)"),
     _abbreviation({k.lower(): v for k, v in CAPITALISED.items()})),
    (re.compile(r"\bvs\b"), "versus"),
    (re.compile(r"\bSt\.(?=\s|$)"), _saint_or_street),
    (re.compile(r"\b([A-Z][a-z]+\.?)\s+([IVX]+)\b(?!['\w])"), _roman),
    (re.compile(r"(?<![\w'])(?:(1[1-9]|20)(\d)|'?([2-9]))0'?s\b"), _decade),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE), lambda m: ordinal_words(int(m.group(1)))),
    (re.compile(r"(?<=\d)\s*%"), " percent"),
    (re.compile(r"(?:(?<![\w/.,])(\d+) )?(?<![\w/])(\d{1,3})/(\d{1,3})(?![\w/])"), _fraction),  # 3 1/2, 3/4
    (re.compile(r"(?<=\d)\s?[x×]\s?(?=\d)"), " by "),
    (re.compile(r"(?<=\d)\s?[-–]\s?(?=\d)"), " to "),
    (re.compile(r"(?<![\w.)])-(?=\d)"), "minus "),
    (re.compile(r"(?<![\w.])\.(\d+)"), lambda m: "point " + digit_words(m.group(1))),
    (re.compile(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)"), " "),
    (re.compile(_NUM), _number),
]
_SPACES_RE = re.compile(r"\s+")
# NFKC writes "3½" as "31⁄2": the whole number is parted from the fraction first ("three and one half").
_WHOLE_BEFORE_FRACTION = re.compile(r"(?<=\d)(?=[¼-¾⅐-⅞])")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_SHOWN_DROPPED = 20  # characters a warning names; a page of CJK would otherwise fill the log
_DROPPED: ContextVar[dict[str, None] | None] = ContextVar("dropped characters", default=None)


@contextmanager
def one_drop_warning() -> Iterator[None]:
    """Calls of :func:`normalize` inside share one warning, at the end, naming every character they dropped
    (one per text, not one per sentence)."""
    if _DROPPED.get() is not None:  # an enclosing one warns
        yield
        return
    dropped: dict[str, None] = {}  # ordered as first met
    token = _DROPPED.set(dropped)
    try:
        yield
    finally:
        _DROPPED.reset(token)
        _warn_dropped(dropped)


def _warn_dropped(dropped: dict[str, None]) -> None:
    if not dropped:
        return
    shown = [f"{c!r} (U+{ord(c):04X})" for c in list(dropped)[:_SHOWN_DROPPED]]
    more = f" and {len(dropped) - _SHOWN_DROPPED} more" if len(dropped) > _SHOWN_DROPPED else ""
    log.warning("dropped characters the voice cannot say: %s%s", ", ".join(shown), more)


def _is_greek(char: str) -> bool:
    return unicodedata.name(char, "").startswith("GREEK")


def _unsayable(m: re.Match[str], dropped: dict[str, None]) -> str:
    """A character outside printable ASCII -> itself where espeak-ng says it well, else a space ("" for
    what has no width), noting what is dropped. Kept: Latin letters, punctuation, math and currency
    signs (espeak-ng names them: "±" is "plus or minus", "₹" "rupee"), numbers, and a Greek letter
    standing alone ("β", "π"). Dropped: controls (a NUL ends espeak-ng's reading of the sentence),
    other symbols (emoji, "★"), and letters of other scripts, including whole Greek words (espeak-ng
    spells them letter by letter by name, or reads "Chinese letter")."""
    char = m.group(0)
    if char.isspace():
        return " "
    category = unicodedata.category(char)
    if category in ("Cf", "Mn", "Mc", "Me"):  # zero-width formatting, and marks (of dropped letters)
        return ""
    if category[0] == "L":
        if unicodedata.name(char, "").startswith("LATIN"):
            return char
        text, at = m.string, m.start()
        if _is_greek(char) and not (at and _is_greek(text[at - 1])) and not (
                at + 1 < len(text) and _is_greek(text[at + 1])):
            return char
    elif category[0] in "PNZ" or category in ("Sm", "Sc", "Sk"):
        return char
    dropped[char] = None
    return " "


def normalize(text: str) -> str:
    """Written English -> spoken-form English, punctuation kept as prosody hints; characters the voice
    cannot say are dropped, with one warning per call (or per :func:`one_drop_warning`)."""
    text = unicodedata.normalize("NFKC", _WHOLE_BEFORE_FRACTION.sub(" ", text)).replace("\u2044", "/")
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2212", "-").replace("\u2014", ", ").replace("\u2026", "...")
    # An en dash between numbers is a range (a rule below); elsewhere it is a pause.
    text = re.sub(r"\s*\u2013\s*(?!\d)|(?<!\d)\s*\u2013\s*", ", ", text)
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)  # type: ignore[arg-type]
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    if not (text.isascii() and text.isprintable()):
        gathering = _DROPPED.get()
        dropped = {} if gathering is None else gathering
        text = _NOT_PRINTABLE_ASCII.sub(lambda m: _unsayable(m, dropped), text)
        if gathering is None:
            _warn_dropped(dropped)
    text = _SPACES_RE.sub(" ", text).strip()
    return re.sub(r"\s+(?=[,.;:!?])", "", text)


# A period after these never ends a sentence: a name follows (titles, "St.", months), or a number
# ("no. 7", "pp. 12"), or they are an initial ("J. K. Rowling").
_BEFORE_NAMES = re.compile(r"(?:\b(?i:" + "|".join(re.escape(a) for a in [*TITLES, "st", "ft", "sept",
                                                                         *(m[:3].lower() for m in MONTHS)])
                           + r")|(?<![\w.])[A-Z])\.$")
_BEFORE_NUMBERS = re.compile(r"\b(?:" + _words(BEFORE_NUMBERS) + r")\.$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def _continues(previous: str, piece: str) -> bool:
    """Whether the split between two pieces fell after an abbreviation, not at a sentence's end."""
    return bool(_BEFORE_NAMES.search(previous) or (_BEFORE_NUMBERS.search(previous) and piece[:1].isdigit()))


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences, each at most ``max_chars`` (long ones are cut at commas, then at spaces); nothing is
    dropped: the pieces joined with spaces are the input with its whitespace collapsed."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        pieces: list[str] = []
        for piece in _SENTENCE_END.split(_SPACES_RE.sub(" ", paragraph).strip()):
            if pieces and _continues(pieces[-1], piece):
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
