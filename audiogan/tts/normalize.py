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
from functools import cache

from audiogan.tts.numbers import (
    ONES,
    TENS,
    digit_words,
    fraction_words,
    number_words,
    ordinal_words,
    plural_words,
    power_words,
    roman_value,
    roman_year,
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
    "a.k.a": "also known as",
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
                  "ch": "chapter", "fig": "figure", "ca": "circa", "approx": "approximately",
                  "est": "established", "ext": "extension"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Capitalised only: "Jan." and "Wed." are months and days; "mar" or "sat" are verbs.
CAPITALISED = {**{m[:3]: m for m in MONTHS}, "Sept": "September", "Mon": "Monday", "Tue": "Tuesday",
               "Tues": "Tuesday", "Wed": "Wednesday", "Thu": "Thursday", "Thur": "Thursday", "Thurs": "Thursday",
               "Fri": "Friday", "Sat": "Saturday", "Sun": "Sunday", "Ft": "Fort"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Words after which a Roman numeral is a count ("World War two"); after other names it is a regnal
# ordinal ("Henry the eighth").
COUNTING_WORDS = {"chapter", "part", "book", "volume", "act", "scene", "war", "section", "article", "phase",
                  "stage", "level", "type", "class", "round", "episode", "season", "grade", "appendix", "title",
                  "canto", "psalm", "series", "vol"}
# Given names of kings, queens and popes: a Roman numeral after them is regnal ("Henry the eighth"); after
# other names it counts ("Apollo eleven", "Rocky two", "Final Fantasy seven").
REGNAL_NAMES = frozenset({
    "Alexander", "Alfonso", "Alfred", "Amenhotep", "Anne", "Benedict", "Boniface", "Carlos", "Catherine",
    "Celestine", "Charles", "Christian", "Clement", "Constantine", "David", "Edmund", "Edward", "Elizabeth",
    "Felipe", "Ferdinand", "Francis", "Frederick", "George", "Gregory", "Gustav", "Haakon", "Harold", "Henry",
    "Honorius", "Innocent", "Ivan", "James", "John", "Juan", "Julius", "Leo", "Leopold", "Louis", "Ludwig",
    "Manuel", "Mary", "Napoleon", "Nicholas", "Olaf", "Otto", "Paul", "Pedro", "Peter", "Philip", "Pius",
    "Ramesses", "Richard", "Robert", "Rudolf", "Sixtus", "Stephen", "Urban", "Victor", "Victoria", "Wilhelm",
    "William"})
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
SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", ">=": " greater than or equal to ",
           "<=": " less than or equal to ", "!=": " is not equal to ", "=": " equals ", "@": " at ", "#": " hash ",
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


# The text said after the one being normalised, in the same sentence (an SSML run's neighbours): looked at,
# never said, so that a word at the end of a run reads as it does inside the whole sentence.
_FOLLOWING: ContextVar[str] = ContextVar("text after", default="")
_LOOK_AHEAD = 64  # characters after a match that decide how it reads: far more than any rule needs
# Characters of the text said before that decide how a text reads: more than any rule looks back (a street's
# name of three words before its "Dr.", the words before an abbreviation's period).
_LOOK_BEHIND = 160
_CLOSERS = " \t\n\"')]"


def _after(m: re.Match[str]) -> str:
    """The start of what follows a match: the rest of its text, then the text said after it."""
    after = m.string[m.end():m.end() + _LOOK_AHEAD]
    return after if after.strip(_CLOSERS) else after + _FOLLOWING.get()[:_LOOK_AHEAD]


def _ends_sentence(m: re.Match[str]) -> bool:
    """Whether the period that closes a match (an abbreviation's, "p.m."'s) also ends the sentence, by the
    rule ``split_sentences`` splits at (see ``_continues``): the normaliser keeps a period exactly where
    the splitter ends a sentence, and drops it where the sentence reads on ("the U.S. Army")."""
    after = _after(m)
    if not after.strip(_CLOSERS):
        return True
    before = m.string[max(0, m.end() - _STREET_TAIL - 1):m.end()]  # and one more for look-behinds
    text = before + after
    at = len(text) - len(after.lstrip(_CLOSERS.strip()))  # past closing quotes, as the splitter goes
    gap = _SENTENCE_END.match(text, at)
    return gap is not None and not _continues(text[:at], text[gap.end():])


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


def _phone_groups(m: re.Match[str]) -> str:
    """An international ("+44 20 7946 0958") or trunk-prefixed ("07700 900123", "1-800-555-1234") number:
    each group of digits said digit by digit. Fewer than seven digits is no phone number."""
    groups = re.findall(r"\d+", m.group(0))
    if not 7 <= sum(map(len, groups)) <= 15:
        return m.group(0)
    return ("plus " if m.group(0).startswith("+") else "") + ", ".join(digit_words(g) for g in groups)


def _dialled(m: re.Match[str]) -> str:
    """"Dial 911", "call 999 or 112": short numbers one dials are said digit by digit."""
    return m.group(1) + re.sub(r"\d+", lambda d: digit_words(d.group(0)), m.group(2))


def _digits_after(m: re.Match[str]) -> str:
    """A PIN, an extension or a postal code: digit by digit ("PIN is one two three four")."""
    return m.group(1) + digit_words(m.group(2))


def _not_a_year(m: re.Match[str]) -> str:
    """"page 1234", "number 1984": an amount, not a year."""
    return f"{m.group(1)} {number_words(int(m.group(2)))}"


def _year_after(m: re.Match[str]) -> str:
    """"born in 1066": after words that introduce a year, 1001..1099 are years too ("ten sixty six")."""
    return f"{m.group(1)} {year_words(int(m.group(2)))}"


def _power(m: re.Match[str]) -> str:
    """"10^6" -> "10 to the sixth", "x^2" -> "x squared"."""
    return f"{m.group(1)} {power_words(m.group(2))}"


def _hundreds(m: re.Match[str]) -> str:
    """"the 100s" -> "the hundreds", "the 300s" -> "the three hundreds"."""
    count, scale = int(m.group(1)), "hundreds" if len(m.group(2)) == 2 else "thousands"
    return scale if count == 1 else f"{ONES[count]} {scale}"


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
    whole, frac, scale = (m["whole"] or "0").replace(",", ""), m["frac"], m["scale"]  # $.50: no whole
    one, many, sub_one, sub_many = CURRENCIES[m["symbol"]]
    sign = "minus " if m["minus"] or m["minus_after"] else ""  # -$5 and $-5
    if scale or (frac and len(frac) > 2):  # $3.5 million, $5.999: a decimal amount of dollars
        scale = " " + CURRENCY_SCALES.get(scale.lower(), scale.lower()) if scale else ""
        amount = number_words(int(whole)) + (" point " + digit_words(frac) if frac else "")
        return f"{sign}{amount}{scale} {many}"
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
    suffix, unit = found["suffix"], found.get("unit")
    parts = [hours, minutes] + ([seconds] if found.get("seconds") is not None else [])
    # 24:00 closes the day; 24:30 and 25:30 are on no clock.
    on_a_clock = minutes <= 59 and seconds <= 59 and (hours < 24 or (hours == 24 and not minutes and not seconds))
    if not on_a_clock and not suffix:
        # "25:30 min", "25:30:10 hours": the unit says what the numbers count.
        if unit and max(parts[1:]) <= 59 and len(parts) <= len(_duration_names(unit)):
            return _duration(parts, unit)
        # 12:75, 25:30 or 10:30:75 is neither a time of day nor a duration: numbers set against each other, a
        # score or a ratio, read as a careful reader reads "3:1" or "3:2:1", "to".
        last = "seconds" if len(parts) == 3 else "minutes"
        return " to ".join(number_words(n) for n in parts) + m.string[m.end(last):m.end()]
    # "12:75 pm", "13:30 pm", "10:30:75 pm": am or pm says a clock time was meant, which "to" would make a
    # score of; the clock cannot show it, so it is read as written, the numbers and then the letters.
    as_written = bool(suffix) and (hours > 12 or minutes > 59 or seconds > 59)
    if found["hours"] == "00" and not suffix:  # the 24-hour clock's midnight hour: 00:15 is 12:15 a.m.
        hours, suffix = 12, "am"
    words = number_words(hours)
    if minutes or (as_written and seconds):
        words += " " + _clock_digits(minutes)
    elif hours > 12 and not as_written:  # the 24-hour clock: 17:00 is "seventeen hundred"
        words += " hundred"
    elif not suffix:
        words += " o'clock"
    if as_written and seconds:
        words += " " + _clock_digits(seconds)
    if suffix:
        words += " " + " ".join(LETTER_NAMES[c] for c in suffix.lower() if c.isalpha())
    if seconds and not as_written:
        words += f" and {number_words(seconds)} second{'' if seconds == 1 else 's'}"
    return words + (unit or "") + ("." if suffix and suffix.endswith(".") and _ends_sentence(m) else "")


def _clock_digits(n: int) -> str:
    """Two digits of a clock as said: "05" is "oh five", "00" (minutes before seconds) "oh oh"."""
    return "oh oh" if n == 0 else "oh " + ONES[n] if n < 10 else number_words(n)


def _duration_names(unit: str) -> tuple[str, ...]:
    """What the numbers before a unit count: "25:30 h" hours and minutes (and seconds), "25:30 min" minutes
    and seconds."""
    return ("hour", "minute", "second") if unit.strip().lower().startswith("h") else ("minute", "second")


def _duration(parts: list[int], unit: str) -> str:
    """25:30 or 25:30:10 before a unit, each number with what it counts; the first is never one: only a first
    number past 23 comes here."""
    said = [f"{number_words(n)} {name}{'' if n == 1 and i else 's'}"
            for i, (n, name) in enumerate(zip(parts, _duration_names(unit), strict=False)) if n or not i]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def _full_name(written: str) -> str:
    """A day's or month's name as said: "Mon" or "MON" -> "Monday", "May" -> "May"."""
    return CAPITALISED.get(written.title(), written.title())


def _name_range(m: re.Match[str]) -> str:
    """"Mon-Fri", "Jan.–Mar.", "Mon thru Fri" -> "Monday to Friday", "January to March", "Monday through
    Friday"; the last name's period stays where it ends the sentence."""
    joint = m.group(2).strip().lower()
    joint = {"": "to", "-": "to", "\u2013": "to", "thru": "through"}.get(joint, joint)
    return (f"{_full_name(m.group(1))} {joint} {_full_name(m.group(3))}"
            + ("." if m.group(4) and _ends_sentence(m) else ""))


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
                                                                 and _ends_sentence(m) else "")


def _temperature(m: re.Match[str]) -> str:
    scale = {"C": "Celsius", "F": "Fahrenheit"}[m.group(3)]
    return f"{'minus ' if m.group(1) else ''}{m.group(2)} degrees {scale}"


def _unit(m: re.Match[str]) -> str:
    # The unit's own period ("5 lbs. of flour") is dropped where the sentence reads on (the group's third).
    one, many = UNITS[m.group(2)]
    return f"{m.group(1)} {one if m.group(1) == '1' else many}"


def _fraction(m: re.Match[str]) -> str:
    whole, numerator, denominator = m.group(1), int(m.group(2)), int(m.group(3))
    if not whole and _DATE_BEFORE.search(m.string, max(0, m.start() - 8), m.start()) and (
            1 <= numerator <= 12 and 1 <= denominator <= 31):  # "on 12/25": a date
        return f"{MONTHS[numerator - 1]} {ordinal_words(denominator)}"
    if 0 < numerator < denominator and denominator in FRACTION_DENOMINATORS:
        return (f"{number_words(int(whole))} and " if whole else "") + fraction_words(numerator, denominator)
    return f"{whole + ' ' if whole else ''}{m.group(2)} {m.group(3)}"  # 24/7, 50/50, 9/11


def _counts_or_reigns(word: str) -> bool:
    """Whether a one-letter Roman numeral after this capitalised word is a number ("World War I", "Henry V"),
    not a letter ("Plan V", "Malcolm X")."""
    bare = word.rstrip(".")
    return word not in NOT_NAMES and (bare in REGNAL_NAMES or bare.lower() in COUNTING_WORDS)


def _roman(m: re.Match[str]) -> str:
    word, numeral = m.group(1), m.group(2)
    value = roman_value(numeral)
    if value is None or word in NOT_NAMES or (len(numeral) == 1 and not _counts_or_reigns(word)):
        return m.group(0)
    if word.rstrip(".") in REGNAL_NAMES:
        # "Elizabeth I" ends a phrase; in "then Mary I said" the "I" is the speaker.
        if numeral == "I" and not re.match(r"\s*(?:[,.;:!?)]|$)", _after(m)):
            return m.group(0)
        return f"{word} the {ordinal_words(value)}"
    return f"{word} {number_words(value)}"


def _lone_roman(m: re.Match[str]) -> str:
    """A Roman numeral no name precedes: espeak-ng would say "roman fifteen" for "XV". After "a" or "an"
    it is letters ("an IV drip"), else a count ("scored XV points")."""
    value = roman_value(m.group(2))
    if value is None:
        return m.group(0)
    if m.group(1):
        return m.group(1) + " ".join(LETTER_NAMES[c.lower()] for c in m.group(2))
    return number_words(value)


def fold_case(word: str) -> str:
    """A word as a case-insensitive pattern matched it: ``re.IGNORECASE`` takes Turkish "İ" and "ı" for "i",
    but ``str.lower`` writes "İ" as "i" plus a combining dot and leaves "ı" alone."""
    return word.replace("\u0130", "i").replace("\u0131", "i").lower()


def _abbreviation(table: dict[str, str]):
    def expand(m: re.Match[str]) -> str:
        word = m.group(1)
        expansion = table.get(fold_case(word))
        if expansion is None:  # another case-insensitive look-alike: leave the text as it was
            return m.group(0)
        expansion = expansion.capitalize() if word[0].isupper() else expansion
        return expansion + ("." if _ends_sentence(m) else "")
    return expand


_NUMBER_START = re.compile(r"\s?(?:[#\d]|[IVX]{2,}\b)")


def _before_a_number(m: re.Match[str]) -> str:
    """"No. 7", "Vol. II": expanded only before a number, which may be said after the text (an SSML run's
    neighbour: "<emphasis>No.</emphasis> 5"), and where no sentence ends ("The answer is no. 5 people
    agreed" says the word, as the splitter reads it)."""
    if _NUMBER_START.match(_after(m)) and not _ends_sentence(m):
        return _abbreviation(BEFORE_NUMBERS)(m)
    return m.group(0)


def _saint_or_street(m: re.Match[str]) -> str:
    """"St." before a name is "Saint" ("St. Louis"); elsewhere, and where it ends a sentence ("on Main
    St. Then"), "Street"."""
    if _ends_sentence(m):
        return "Street."
    return "Saint" if re.match(r"\s+[A-Z]", _after(m)) else "Street"


def _drive(m: re.Match[str]) -> str:
    """"Dr." right after a capitalised name inside a sentence ("at 12 Oak Dr.", "on Sunset Dr. Then") is
    a street; "told Mary Dr. Lee" reads wrong, but is rarer than a street name in text read aloud."""
    return m.group(1) + "Drive" + ("." if _ends_sentence(m) else "")


def _initialism(m: re.Match[str]) -> str:
    """"U.S.", "J.K." -> letters by name: espeak-ng would read each period as a sentence's end."""
    letters = " ".join(LETTER_NAMES[c.lower()] for c in m.group(1) if c.isalpha())
    return letters + ("." if m.group(2) and _ends_sentence(m) else "")


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


# Denominators a fraction is read with ("five sixteenths"); others ("9/11", "12/25") are two numbers.
FRACTION_DENOMINATORS = frozenset((2, 3, 4, 5, 6, 8, 10, 12, 16, 32, 64, 100))
_DATE_BEFORE = re.compile(r"\b(?i:on|by|until|till|since|from|before|after|due)\s+$")
AREA_UNITS = {"m": ("meter", "meters"), "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
              "mm": ("millimeter", "millimeters"), "ft": ("foot", "feet"), "in": ("inch", "inches"),
              "mi": ("mile", "miles"), "yd": ("yard", "yards")}
_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
_FROM_SUPERSCRIPT = str.maketrans(_SUPERSCRIPTS + "\u207b", "0123456789-")
# NFKC would make "m²" "m2" and "10⁶" "106": read first. A unit squared or cubed after a number, an
# exponent after a number or a one- or two-letter symbol ("x²", "mc²"), and a footnote's mark after a word
# or a sentence (dropped).
_SQUARED_UNIT = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)?(\s?)\b(" + "|".join(AREA_UNITS) + r")([²³])(?!\w)")
_EXPONENT = re.compile(r"(?<![A-Za-z])(\d+|[A-Za-z]{1,2})(\u207b?[" + _SUPERSCRIPTS + "]+)")
_FOOTNOTE = re.compile(r"(?:(?<=[A-Za-z]{3})|(?<=[.,;:!?)\"']))[" + _SUPERSCRIPTS + "]+")
# Zero-width spaces and direction marks stand between words: gone, they would glue them together.
_INVISIBLE_SPACES = re.compile(r"[\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _squared_unit(m: re.Match[str]) -> str:
    number, _, unit, power = m.groups()
    one, many = AREA_UNITS[unit]
    words = f"{'square' if power == '²' else 'cubic'} {one if number == '1' else many}"
    return f"{number} {words}" if number else words


def _superscripts(text: str) -> str:
    if not any(c in _SUPERSCRIPTS for c in text):
        return text
    text = _SQUARED_UNIT.sub(_squared_unit, text)
    text = _EXPONENT.sub(lambda m: f"{m.group(1)} {power_words(m.group(2).translate(_FROM_SUPERSCRIPT))}", text)
    return _FOOTNOTE.sub("", text)


def _words(table: dict[str, str]) -> str:
    return "|".join(re.escape(a) for a in sorted(table, key=len, reverse=True))


def _range_of(names: list[str]) -> re.Pattern[str]:
    """A range between two of these days or months, each written whole or abbreviated (with or without its
    period), capitalised or in capitals; a dash or "to", "through", "thru", "till", "until" between."""
    written = [*names, *(short for short, name in CAPITALISED.items() if name in names)]
    either = "|".join(re.escape(w) for w in sorted({*written, *(w.upper() for w in written)}, key=len, reverse=True))
    joint = r"(\s?[-\u2013]\s?|\s+(?:to|through|thru|till|until)\s+)"
    return re.compile(rf"(?<![\w.-])({either})\.?{joint}({either})(?![\w-])(\.)?")


# Only day to day and month to month: "Jan-Fri" is no range.
_NAME_RANGES = [_range_of(WEEKDAYS), _range_of(MONTHS)]


# A street (see ``_continues``): a capitalised name after a lower-case word or a number, then "Dr." or "St."
# ("at 12 Oak Dr.").
_STREET_NAME = r"(?<![\w.])(?:\d+|[a-z,]+)\s+(?:[A-Z][\w'-]*\s+){1,3}"


# Where an abbreviation's period ends its word: "e.g., apples", "etc.)".
_WORD_END = r"(?=[\s,;:\"')\]]|$)"


# (pattern, replacement) in the order they run; see the module docstring for why order matters.
RULES: list[tuple[re.Pattern[str], object]] = [
    # Each address rule starts only where a token starts: from every character of a long dotted run it
    # would rescan the run (quadratic time).
    (re.compile(r"(?<![\w.+-])([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b"), _email),
    (re.compile(r"(?<![\w.:/-])(?:https?://)?((?:[\w-]+\.)+(?:" + TOP_LEVEL_DOMAINS + r"))\b(/[\w/.-]*)?",
                re.IGNORECASE), _web),
    # Markdown headings, hashtags and sharps before "#" can be read as "number" (before a digit only).
    (re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE), ""),
    (re.compile(r"\b([A-G])#(?![\w#])"), r"\1 sharp"),
    (re.compile(r"(?<![\w&#])#(?=[A-Za-z_])"), "hashtag "),
    (re.compile(r"(?<![<\w])<3(?!\d)"), " heart "),
    (re.compile(r"(?<![\w.^])(\d+(?:\.\d+)?|[A-Za-z])\s?\^\s?(-?\d{1,3})(?![\w.])"), _power),
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]\(?\d{1,5}\)?){2,5}(?![\w-])"), _phone_groups),  # +44 20 7946 0958
    (re.compile(r"(?<![\w.,+-])(?:1[ .-]\d{3}|0\d{2,4})(?:[ .-]\d{3,6}){1,2}(?![\w-])"), _phone_groups),
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
    (re.compile(r"(?:(?<![\w.])(?P<minus>-))?(?P<symbol>[$£€¥])\s?(?P<minus_after>-)?(?=\.?\d)"
                r"(?P<whole>\d+(?:,\d{3})*)?(?:\.(?P<frac>\d+))?(?:\s?(?P<scale>thousand|million|billion|trillion|k|mn|m|bn|b)\b)?",
                re.IGNORECASE), _currency),
    (re.compile(r"\b(\d+)\s?¢"), lambda m: f"{number_words(int(m.group(1)))} cent{'' if m.group(1) == '1' else 's'}"),
    # A range of times: "9:00-17:00", "9am-5pm", "7:30-8:30".
    (re.compile(r"(?:(?<=\d:\d\d)|(?<=[AaPp][Mm])|(?<=[AaPp]\.[Mm]\.))\s?[-\u2013]\s?(?=\d{1,2}(?::\d\d|\s?[ap]\.?m\b))",
                re.IGNORECASE), " to "),
    (re.compile(r"\b(?P<hours>\d{1,2}):(?P<minutes>\d{2})(?::(?P<seconds>\d{2})\b)?"
                r"(?:\s?(?P<suffix>[ap]\.?m\b\.?)|(?P<unit>\s?(?:hours?|hrs?|h|minutes?|mins?)\b))?", re.IGNORECASE),
     _time),
    (re.compile(r"(?<![\d.])(?P<hours>\d{1,2})\.(?P<minutes>\d{2})\s?(?P<suffix>[ap]\.?m\b\.?)", re.IGNORECASE),
     _time),  # 3.30pm
    (re.compile(r"\b(?P<hours>\d{1,2})\s?(?P<suffix>[ap]\.m\.|[ap]m\b)", re.IGNORECASE), _time),
    (re.compile(r"\b" + _MONTH_RE + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?![:\d])"),
     lambda m: f"{_month(m.group(1))} {ordinal_words(int(m.group(2)))}"),
    (re.compile(r"(?:\b((?i:the))\s+)?\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r"\b(\.)?"),
     lambda m: _day_of_month(m.group(1), int(m.group(2)), _month(m.group(3)))
     + ("." if m.group(4) and _ends_sentence(m) else "")),
    (re.compile(r"(?:(?<![\w.])(-))?(?<![\d.])(\d+(?:\.\d+)?)\s?°\s?([CF])\b"), _temperature),
    (re.compile(r"(?<![\w.])(" + _NUM + r")\s?(" + _words(UNITS) + r")(?![\w/])(\.(?=\s+[a-z]))?"), _unit),
    (re.compile(r"\b(" + _words(BEFORE_NUMBERS) + r")\.", re.IGNORECASE), _before_a_number),
    (re.compile(r"#(?=\s?\d)"), " number "),
    (re.compile(r"\b((?i:pin|extension|zip|zip code|postcode|passcode|code)\s*(?:is\s+|number\s+|:\s*)?)"
                r"(\d{3,10})\b(?![.,]\d)"), _digits_after),
    (re.compile(r"\b((?i:page|pages|number|numbers|room|line|item|issue|exhibit|step|figure|rule|section|"
                r"article|paragraph|verse))\s+(\d{4})\b(?![.,]\d)"), _not_a_year),
    (re.compile(r"\b((?i:in|since|by|born|until|till|before|after|circa|year))\s+(10\d[1-9]|10[1-9]\d)\b"
                r"(?![.,]\d)"), _year_after),
    (re.compile(r"\b((?i:dial|dialled|dialed|call|phone|ring|text)\s+)(\d{3}(?:,?\s+(?:or|and)\s+\d{3})*)\b"
                r"(?![\d,:/-]|\.\d)"), _dialled),
    # A word (or house number) before the capitalised name: a sentence's first word is no street name.
    (re.compile("(" + _STREET_NAME + r")Dr\.(?=[\s,;:)]|$)"), _drive),
    (re.compile(r"\b(" + _words(TITLES) + r")\." + _WORD_END, re.IGNORECASE), _abbreviation(TITLES)),
    (re.compile(r"\b(" + _words(TRAILING) + r")\." + _WORD_END, re.IGNORECASE),
     _abbreviation(TRAILING)),
    (re.compile(r"\b(" + _words(CAPITALISED) + r")\." + _WORD_END),
     _abbreviation({k.lower(): v for k, v in CAPITALISED.items()})),
    (re.compile(r"(?<![\w.])((?:[A-Z]\.)+[A-Z])(\.?)(?!\w)"), _initialism),  # U.S.A.
    (re.compile(r"\bvs\b"), "versus"),
    (re.compile(r"\bSt\.(?=\s|$)"), _saint_or_street),
    (re.compile(r"\b([A-Z][a-z]+\.?)\s+([IVX]+)\b(?!['\w])"), _roman),
    (re.compile(r"(?<![\w'])(M{1,3}[MDCLXVI]{1,12})(?![\w'])"),
     lambda m: year_words(value) if (value := roman_year(m.group(1))) else m.group(0)),  # MMXXIV
    (re.compile(r"(\b[Aa]n?\s+)?(?<![\w'])([IVX]{2,})(?![\w'])"), _lone_roman),
    (re.compile(r"(?<![\w'])(?:(1[1-9]|20)(\d)|'?([2-9]))0'?s\b"), _decade),
    (re.compile(r"(?<![\w'])([1-9])(00|000)s\b"), _hundreds),
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
_TIME_RANGE_DASH = re.compile(r"(\d\s?[AaPp]\.?[Mm]\.?)\s*\u2013\s*(?=\d)")
# NFKC writes "3½" as "31⁄2": the whole number is parted from the fraction first ("three and one half").
_WHOLE_BEFORE_FRACTION = re.compile(r"(?<=\d)(?=[¼-¾⅐-⅞])")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
# Emoji skin-tone modifiers are symbols of their own ("medium skin tone" to espeak-ng): dropped with the emoji.
_SKIN_TONES = ("\U0001f3fb", "\U0001f3ff")
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
    elif category[0] in "PNZ" or category in ("Sm", "Sc") or (category == "Sk" and not _SKIN_TONES[0] <= char
                                                                 <= _SKIN_TONES[1]):
        return char
    dropped[char] = None
    return " "


def normalize(text: str, following: str = "", preceding: str = "") -> str:
    """Written English -> spoken-form English, punctuation kept as prosody hints; characters the voice
    cannot say are dropped, with one warning per call (or per :func:`one_drop_warning`). ``following`` and
    ``preceding`` are what the sentence says after and before ``text`` (an SSML run's neighbours), looked
    at but not said: without them, the text's ends are its sentence's."""
    token = _FOLLOWING.set(following)
    try:
        if not preceding.strip() or _reads_alone(text, preceding):
            return _read(text)
        return _after_preceding(text, preceding)
    finally:
        _FOLLOWING.reset(token)


# Readings kept for the calls inside one :func:`readings_kept`, by text and the start of what follows it (all
# that ``_after`` looks at), with the characters each dropped.
_READINGS: ContextVar[dict[tuple[str, str], tuple[str, dict[str, None]]] | None] = ContextVar(
    "readings", default=None)


@contextmanager
def readings_kept() -> Iterator[None]:
    """Calls of :func:`normalize` inside read each text once: SSML reads every run after the sentence before
    it, which is the previous run's reading with that run's text ("The quick" then "The quick brown")."""
    token = _READINGS.set({})
    try:
        yield
    finally:
        _READINGS.reset(token)


def _read(text: str) -> str:
    """``_normalize(text)``, kept inside :func:`readings_kept`."""
    kept = _READINGS.get()
    if kept is None:
        return _normalize(text)
    key = (text, _FOLLOWING.get()[:_LOOK_AHEAD])
    if key not in kept:
        dropped: dict[str, None] = {}
        token = _DROPPED.set(dropped)
        try:
            kept[key] = (_normalize(text), dropped)
        finally:
            _DROPPED.reset(token)
    reading, dropped = kept[key]
    gathering = _DROPPED.get()
    if gathering is None:
        _warn_dropped(dropped)
    else:
        gathering.update(dropped)
    return reading


# A text that starts with a word of three or more lower-case letters, whole.
_PLAIN_START = re.compile(r"\s*([a-z]{3,})(?![\w'-])")


def _reads_alone(text: str, preceding: str) -> bool:
    """Whether ``text`` surely reads after ``preceding`` as it reads alone, so that the two need not be read
    together. So where a space parts them and ``text`` starts with a word of lower-case letters that no rule
    names (in a pattern or a table, ``_rule_words``): a rule reads across a seam only by a pattern that
    names the word there (a unit, "a.m.", "is" in "extension is 1234", a function word before an
    abbreviation), by a pattern whose generic part takes a lower-case word only as its first word (a
    street's), or without spaces (an address); and a look back from a match further on stops at such a
    word (``_closes_a_phrase``, ``_has_own_words``, the word before a date or a numeral). Words of one or
    two letters are never taken: rules build some from letter classes ("[ap]m")."""
    if not (preceding[-1:].isspace() or text[:1].isspace()):
        return False
    word = _PLAIN_START.match(text)
    return word is not None and word.group(1) not in _rule_words()


@cache
def _rule_words() -> str:
    """Every word this module's rules name, lower-cased, in one string to look a word up in: the rules'
    patterns (their groups and optional parts opened up: "Jan(?:uary)?" names "january") and every string
    in its tables."""
    found: list[str] = []

    def gather(value: object) -> None:
        if isinstance(value, re.Pattern):
            found.append(re.sub(r"\(\?(?:P<\w+>|[a-zA-Z]*:)|[()?]", "", value.pattern))
        elif isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.items():
                gather(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                gather(item)

    gather([v for k, v in globals().items() if not k.startswith("__")])
    return "\n".join(found).lower()


def _after_preceding(text: str, preceding: str) -> str:
    """``text`` as it reads after ``preceding``: the two read together, less the reading of ``preceding``
    alone (in view of ``text``). One way for every rule that looks back, whether by a look-behind, a word
    it matches before ("page 1984", "Henry VIII", "5 kg") or the text before a period; where a rule reads
    across the seam, so that the joint reading does not start with the preceding's own, ``text`` reads
    alone."""
    if len(preceding) > _LOOK_BEHIND:  # its end, from a word's start
        tail = preceding[-_LOOK_BEHIND:]
        space = _SPACES_RE.search(tail)
        preceding = tail[space.start():] if space else ""
    dropped: dict[str, None] = {}  # of both passes: only what ``text`` holds is reported
    dropping, reading = _DROPPED.set(dropped), _FOLLOWING.get()
    try:
        joint = _read(preceding + text)
        token = _FOLLOWING.set(text + reading)
        try:
            before = _read(preceding)
        finally:
            _FOLLOWING.reset(token)
    finally:
        _DROPPED.reset(dropping)
    said = joint[len(before):]
    if not joint.startswith(before) or said[:1].isalnum():
        return _read(text)
    own = unicodedata.normalize("NFKC", text)
    gathering = _DROPPED.get()
    mine = {c: None for c in dropped if c in text or c in own}
    if gathering is None:
        _warn_dropped(mine)
    else:
        gathering.update(mine)
    return said.strip()


def _normalize(text: str) -> str:
    text = _superscripts(_INVISIBLE_SPACES.sub(" ", text))
    text = unicodedata.normalize("NFKC", _WHOLE_BEFORE_FRACTION.sub(" ", text)).replace("\u2044", "/")
    text = text.replace("\u0130", "I").replace("\u0131", "i")  # Turkish İ and ı: espeak-ng names ı by code
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2212", "-").replace("\u2014", ", ").replace("\u2026", "...")
    for pattern in _NAME_RANGES:  # before en dashes become pauses: "Mon–Fri" is a range
        text = pattern.sub(_name_range, text)
    # An en dash between numbers, or times ("9am–5pm"), is a range (rules below); elsewhere it is a pause.
    text = _TIME_RANGE_DASH.sub(r"\1-", text)
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


# Where a period after an abbreviation ends a sentence. The splitter and the normaliser (``_ends_sentence``)
# share this rule, so a period is kept exactly where a sentence ends and dropped where it reads on. What an
# abbreviation is used for decides, and where that leaves a doubt, the shape of the words after it:
# - a title, "Mt.", "St." or "Ft." before a name, "e.g." and "a.k.a." need what follows: they never end one
#   ("Dr. Smith", "St. Louis", "Smith, a.k.a. Smitty");
# - a single initial is followed by the rest of a name, never by a function word: "J. K. Rowling" reads on,
#   "Malcolm X. He spoke" does not; a Roman numeral after a king's name or a counting word is no initial
#   ("Elizabeth I. Then", "World War I. After") and ends one as any word does;
# - "a.m." and "p.m." follow a time, which only a time zone, a day or a month may qualify ("at 5 p.m.
#   Eastern", "9 a.m. Monday"): before any other capitalised word or a number they end one;
# - letter abbreviations ("U.S."), month abbreviations and a street's "Dr." or "St." ("on Elm Dr.") may end
#   one or modify a name ("the U.S. Army", "Elm Dr. Lee"): they end one before a function word ("the U.S.
#   Then", "Nobody"), or before a subject with its verb ("People moved", "Prices were") where they close a
#   prepositional phrase in a sentence with words of its own ("He grew up in the U.S. People moved", "down
#   Baker St. Rain began"); "said the U.S. Senate voted" and "The U.S. Senate voted" read on. A verb is an
#   auxiliary, a regular past ("moved") or a form of one of English's commonest verbs (see ``VERBS``). A
#   country's or an organisation's letters before one of its bodies name that body ("the U.S. Army based in
#   Texas", "the E.U. Commission"), whatever follows; a state's or district's letters after its city and a
#   comma ("Washington, D.C.") close a place name, so that in a sentence with words of its own any other
#   capitalised word with a lower-case word after it opens a new one ("They lived in Washington, D.C. Police
#   arrested", but "Officers of the Washington, D.C. Police arrested");
# - "No.", "Vol.", "p." and the like read on before a number ("no. 7"), and otherwise end one as any word;
# - a company's or a person's suffix after a name ("Acme Inc.", "King Jr.") ends one where its sentence says
#   something of its own before it ("worked for Acme Ltd. Profits fell"). Where all before it is the name,
#   the name opens the sentence and modifies what follows: a capitalised singular noun is its head or a title
#   ("Acme Inc. Chief Executive Jane Doe", "King Jr. Day falls"), since a bare singular count noun cannot be
#   a subject on its own; a plural can ("Apple Inc. Shares rose"), and so can a function word, a number or
#   a span of time, which end one;
# - all others ("etc.", "Fri.") end one before a capital or a number, as any word's period does: they close
#   a list or a name ("We sold figs, etc. The shop closed").
# Wherever an abbreviation may end one, a span of time before its sentence's words ("Years later", "Two days
# after that") opens a clause, as a function word does: no name goes on with it.
_STREET = re.compile(_STREET_NAME + r"(?:Dr|St)\.$")
_BEFORE_NAMES = re.compile(r"\b(?i:" + "|".join(re.escape(a) for a in [*TITLES, "st", "ft"]) + r")\.$")
_INITIAL = re.compile(r"(?<![\w.])(?:([A-Z][a-z]+\.?)\s+)?([A-Z])\.$")
_CLOCK = re.compile(r"(?<![\w.])(?i:[ap]\.m)\.$")
_LETTERS = r"(?<![\w.])(?:[A-Za-z]\.){2,}"
_MODIFIERS = re.compile(r"(?:" + _LETTERS + r"|\b(?i:" + "|".join(
    ["sept", *(m[:3].lower() for m in MONTHS)]) + r")\.)$")
_LETTERS_END = re.compile(_LETTERS + "$")
# A company's or a person's suffix after a name: "Acme Inc.", "Hill Co.", "Martin Luther King Jr.", "Smith, Jr.".
_NAME_SUFFIX = re.compile(r"(?<![\w.])[A-Z][\w'-]*,?\s+(?:Jr|Sr|Co|Corp|Ltd|Inc)\.$")
# A state's or a district's letters after its city: "Washington, D.C.", "Albany, N.Y." (see ``_after_a_city``).
_AFTER_CITY = re.compile(r"(?<![\w.])([A-Z][a-z][\w'-]*),\s+(?:[A-Z]\.){2}$")
# The bodies of a country or an organisation, which its letters name ("the U.S. Army", "the U.N. Council"):
# singular count nouns, which need a determiner to be a subject ("Army based in Texas", "Senate voted" open
# no sentence). Not those a sentence opens with bare: "Congress", "Parliament", "Police", "Marines".
INSTITUTIONS = frozenset({
    "army", "navy", "guard", "corps", "command", "senate", "house", "government", "administration", "cabinet",
    "embassy", "consulate", "mission", "delegation", "department", "ministry", "office", "bureau", "agency",
    "authority", "service", "court", "treasury", "mint", "commission", "council", "assembly", "academy", "team"})
# Spans of time, which open a clause counted ("Two days later") or in the plural before a word that places
# them in time ("Years later", "Decades ago"; "J. Weeks wrote" is a name).
TIME_SPANS = frozenset({
    "second", "minute", "hour", "day", "night", "week", "month", "year", "decade", "century", "moment",
    "generation", "seconds", "minutes", "hours", "days", "nights", "weeks", "months", "years", "decades",
    "centuries", "moments", "generations"})
RELATIVE_TIME = frozenset({"later", "earlier", "ago", "after", "afterwards", "afterward", "before"})
_BEFORE_NUMBERS = re.compile(r"\b(?:" + _words(BEFORE_NUMBERS) + r")\.$", re.IGNORECASE)
# "The answer is no. 5 people agreed": "no." after these is the word, not "number".
_NO_AS_WORD = re.compile(r"\b(?i:is|was|were|are|said|says|say|answer|answered|replied|just|simply|that's|it's)"
                         r"\s+no\.$")
# What may qualify a time inside its sentence: time zones, days and months.
TIME_QUALIFIERS = frozenset({
    "eastern", "central", "mountain", "pacific", "atlantic", "alaska", "hawaii", "standard", "daylight", "local",
    "gmt", "utc", "bst", "cet", "ist", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt", "et", "ct", "mt", "pt",
    *(w.lower() for w in WEEKDAYS + MONTHS), *(w.lower() for w in CAPITALISED if w != "Ft")})
# Auxiliaries and modals: the verb of a clause. Not "will" or "may", which also start names ("Will Smith").
AUXILIARIES = frozenset({
    "am", "is", "are", "was", "were", "be", "been", "has", "have", "had", "do", "does", "did", "can", "could",
    "shall", "should", "would", "might", "must", "isn't", "aren't", "wasn't", "weren't", "hasn't", "haven't",
    "hadn't", "don't", "doesn't", "didn't", "can't", "couldn't", "shouldn't", "wouldn't", "won't"})
# The past and present of English's commonest verbs that a subject is followed by, beyond the auxiliaries and
# a regular past in "-ed". Left out: forms that are as often a noun after a capitalised one ("works", "makes",
# "stands", "remains", "pays"), which would read a name's head ("the U.S. Steel works") as a clause's verb,
# and pasts the same as their stem ("set", "cut", "put").
_IRREGULAR_PASTS = (
    "arose ate awoke became began bent bled blew bore bought bred broke brought built burnt caught chose clung came "
    "crept dealt drank drew drove dug fed fell felt fled flew flung forbade forgave forgot found froze gave got "
    "grew heard held hid hung kept knelt knew laid led left lent lost made meant met paid ran rang rode rose "
    "said sang sank sat saw sent shook shone slept slid sold sought spent spoke sprang stole stood struck stuck "
    "swam swept swore swung taught thought threw told took tore understood went wept woke won wore wrote")
_PRESENTS = (
    "say go get know think take see come give tell become seem begin bring happen write sit lose include continue "
    "learn understand follow speak allow spend grow expect")
VERBS = AUXILIARIES | frozenset(_IRREGULAR_PASTS.split()) | frozenset(
    form for verb in _PRESENTS.split() for form in (verb, verb + ("es" if verb.endswith(("o", "s")) else "s")))
# Plurals without an "s", which may be a subject bare as any plural may ("People cheered").
IRREGULAR_PLURALS = frozenset({"people", "police", "children", "men", "women"})
DETERMINERS = frozenset({"a", "an", "the"})
PREPOSITIONS = frozenset({
    "about", "above", "across", "after", "against", "along", "amid", "among", "around", "as", "at", "before",
    "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by", "despite", "down", "during",
    "except", "for", "from", "in", "inside", "into", "near", "of", "off", "on", "onto", "outside", "over", "past",
    "since", "through", "throughout", "to", "toward", "towards", "under", "unlike", "until", "up", "upon", "via",
    "with", "within", "without"})
# English's closed classes, which open sentences but never continue a name: pronouns, determiners and
# quantifiers, prepositions, conjunctions, question words, auxiliaries, and the adverbs that link a sentence
# to the one before. Words that also start names are left out ("First Lady", "Will Smith", "May 5").
FUNCTION_WORDS = AUXILIARIES | DETERMINERS | PREPOSITIONS | frozenset({
    "i", "me", "you", "he", "him", "she", "her", "it", "we", "us", "they", "them", "my", "your", "his", "its",
    "our", "their", "mine", "yours", "hers", "ours", "theirs", "myself", "yourself", "himself", "herself",
    "itself", "ourselves", "themselves", "i'm", "i've", "i'd", "i'll", "you're", "you've", "you'll", "he's",
    "he'd", "he'll", "she's", "she'd", "she'll", "it's", "it'll", "we're", "we've", "we'd", "we'll", "they're",
    "they've", "they'd", "they'll", "that's", "there's", "here's", "what's", "who's", "let", "let's",
    "everyone", "everybody", "everything", "someone", "somebody", "something", "anyone", "anybody", "anything",
    "nobody", "nothing", "none",
    "this", "that", "these", "those", "each", "every", "all", "both", "some", "any", "many", "most", "much",
    "more", "few", "several", "such", "another", "either", "neither", "no", "enough",
    "and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while", "whereas", "if", "unless",
    "when", "whenever", "where", "wherever", "whether", "once", "what", "which", "who", "whom", "whose", "why",
    "how",
    "also", "even", "here", "there", "however", "instead", "later", "meanwhile", "moreover", "nevertheless",
    "now", "still", "soon", "then", "thus", "therefore", "today", "yesterday", "tomorrow", "yes", "not", "again",
    "finally", "afterwards", "indeed", "perhaps", "otherwise", "eventually", "suddenly", "sometimes", "often",
    "never", "always"})
# After a sentence's closing punctuation and up to two closing quotes or brackets, which stay with it.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]])|(?<=[.!?][\"')\]]{2}))\s+(?=[\"'(\[]?[A-Z0-9])")
_FIRST_WORDS = re.compile(r"[\"'(\[]?([\w']+)(?:\s+([\w']+))?")
_WORD = re.compile(r"[\w']+")
_ROMAN_START = re.compile(r"[IVX]+\b")
_LIST_NUMBER = re.compile(r"\d{1,3}\.")  # "1. Mix the flour": a numbered list's item, not a sentence
_TAIL = 24  # characters of a piece's end the patterns above need: longer than any abbreviation
_STREET_TAIL = 96  # and a street's, with its name of up to three words; and the sentence's words before


def _continues(previous: str, piece: str) -> bool:
    """Whether the split between two pieces fell after an abbreviation, not at a sentence's end. Only the
    end of ``previous`` is looked at: a run of abbreviations merges piece after piece, and rescanning the
    merged whole each time took quadratic time (a minute for 32 KB of "Dr. ")."""
    tail, far = max(0, len(previous) - _TAIL), max(0, len(previous) - _STREET_TAIL)
    words = _FIRST_WORDS.match(piece)
    first, second = (words.group(1), words.group(2)) if words else ("", None)
    opens = first.lower() in FUNCTION_WORDS or _spans_time(first, second)
    if _CLOCK.search(previous, tail):
        return first.lower() in TIME_QUALIFIERS
    if _BEFORE_NAMES.search(previous, tail) and not _STREET.search(previous, far):
        return True
    if initial := _INITIAL.search(previous, tail):
        return not (opens or (initial.group(2) in "IVX" and _counts_or_reigns(initial.group(1) or "")))
    if _MODIFIERS.search(previous, tail) or _STREET.search(previous, far):
        if opens:
            return False
        if first.lower() in INSTITUTIONS and _LETTERS_END.search(previous, tail):
            return True
        if not (first[:1].isupper() and second is not None and second[:1].islower()):
            return True  # a name goes on ("U.K. Prime Minister", "Jan. 5", "Elm Dr. Lee")
        city = _after_a_city(previous, tail)
        if not (city or second in VERBS or second.endswith("ed")):
            return True
        before = _said_before(previous, far)
        return not (_has_own_words(before) and (city or _closes_a_phrase(before)))
    if _NAME_SUFFIX.search(previous, tail):
        return not (opens or not first[:1].isupper() or _plural(first) or _has_own_words(_said_before(previous, far)))
    if _BEFORE_NUMBERS.search(previous, tail) and not _NO_AS_WORD.search(previous, tail):
        return piece[:1].isdigit() or _ROMAN_START.match(piece) is not None  # "no. 7", "Vol. II"
    return False


def _said_before(previous: str, far: int) -> str:
    """What the sentence says before the abbreviation that ends ``previous``, as far back as ``far`` (the
    normaliser's text holds the sentences before too)."""
    return _SENTENCE_END.split(previous[far:len(previous) - len(previous.rsplit(None, 1)[-1])])[-1]


def _plural(word: str) -> bool:
    """Whether a noun is plural by its form: an "-s" that no singular ends in ("-ss", "-us", "-is"), or one
    of English's irregular plurals."""
    word = word.lower()
    return word in IRREGULAR_PLURALS or (word.endswith("s") and not word.endswith(("ss", "us", "is", "'s")))


def _after_a_city(previous: str, tail: int) -> bool:
    """Whether ``previous`` ends in a state's or a district's letters after its city. A country's letters
    after a comma start a phrase instead: "On Friday, U.S. Officials said", "However, U.S. Troops"."""
    city = _AFTER_CITY.search(previous, tail)
    word = city.group(1).lower() if city else ""
    return bool(word) and word not in FUNCTION_WORDS and word not in TIME_QUALIFIERS


def _spans_time(first: str, second: str | None) -> bool:
    """Whether a sentence's first words measure a span of time that opens it ("Two days later", "Years
    ago"; see ``TIME_SPANS``)."""
    if second is None:
        return False
    count = first.lower()
    if count in TIME_SPANS:
        return count.endswith("s") and second in RELATIVE_TIME
    return second in TIME_SPANS and (count in ONES or count in TENS[2:])


def _closes_a_phrase(before: str) -> bool:
    """Whether what is said before an abbreviation makes it the end of a prepositional phrase ("in the U.S.",
    "on Main St."), after which no subject can follow in the same clause: a preposition before it, past
    its determiner and the names before it. After a verb it may be a subject itself ("said the U.S. Senate
    voted")."""
    for word in reversed(_WORD.findall(before)):
        if word.lower() not in DETERMINERS and not (word[:1].isupper() and word.lower() not in PREPOSITIONS):
            return word.lower() in PREPOSITIONS
    return False


def _has_own_words(text: str) -> bool:
    """Whether a sentence's start says something beyond names and function words: a word in lower case that
    is no function word, or a number."""
    return any(w[0].isdigit() or (w[0].islower() and w not in FUNCTION_WORDS) for w in _WORD.findall(text))


# A line break ends a phrase before a list item, and where a line without closing punctuation is followed
# by one that starts anew: a heading, a line of verse. Hard-wrapped prose runs on: the next line starts in
# lower case, or the line before fills a wrapped width.
_LINE_BREAK = re.compile(r"(?<=[^\s.!?,;:-])[ \t]*\n\s*(?=[\"'(\[]?[A-Z0-9])|[ \t]*\n\s*(?=[-*\u2022]\s|\d+[.)]\s)")
_LIST_ITEM = re.compile(r"[-*\u2022]\s|\d+[.)]\s")
_WRAPPED_WIDTH = 60  # a line this long that breaks before a capital is taken for wrapped prose


def _lines(paragraph: str) -> Iterator[str]:
    """A paragraph cut at the line breaks that end a phrase (see ``_LINE_BREAK``)."""
    start = 0
    for m in _LINE_BREAK.finditer(paragraph):
        line_start = paragraph.rfind("\n", 0, m.start()) + 1
        if m.start() - line_start < _WRAPPED_WIDTH or _LIST_ITEM.match(paragraph, m.end()):
            yield paragraph[start:m.start()]
            start = m.end()
    yield paragraph[start:]


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences, each at most ``max_chars`` (long ones are cut at commas, then at spaces); nothing is
    dropped: the pieces joined with spaces are the input with its whitespace collapsed."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        for line in _lines(paragraph):
            sentence: list[str] = []  # pieces of the sentence being gathered: "Mr." and "Smith went."
            for piece in _SENTENCE_END.split(_SPACES_RE.sub(" ", line).strip()):
                listed = len(sentence) == 1 and _LIST_NUMBER.fullmatch(sentence[0]) is not None  # "1. Mix it"
                if sentence and not listed and not _continues(sentence[-1], piece):
                    sentences.extend(_cut(" ".join(sentence).strip(), max_chars))
                    sentence = []
                sentence.append(piece)
            sentences.extend(_cut(" ".join(sentence).strip(), max_chars))
    return [s for s in sentences if s]


def _cut(sentence: str, max_chars: int) -> list[str]:
    """A sentence in pieces of at most ``max_chars``, each cut at the last comma, semicolon or space that
    leaves it a third full (a loop: a megabyte-long sentence is thousands of pieces)."""
    pieces = []
    while len(sentence) > max_chars:
        for separator in (", ", "; ", " "):
            cut = sentence.rfind(separator, 0, max_chars)
            if cut > max_chars // 3:
                pieces.append(sentence[: cut + len(separator.rstrip())])
                sentence = sentence[cut + len(separator):].strip()
                break
        else:
            pieces.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
    return [*pieces, sentence]
