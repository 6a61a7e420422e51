"""Numbers as an English reader says them: cardinals, ordinals, years, fractions, digit strings, Roman numerals."""

from __future__ import annotations

import re

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
# Denominators read as words of their own ("three quarters", not "three fourths").
DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
ROMAN = {"I": 1, "V": 5, "X": 10}


def number_words(n: int) -> str:
    """|n| < 10**15 in words: 1234 -> 'one thousand two hundred thirty four'; larger ones digit by digit."""
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
    return digit_words(str(n))


def ordinal_words(n: int) -> str:
    """21 -> 'twenty first', 100 -> 'one hundredth'."""
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


def plural_words(words: str) -> str:
    """'nineteen ninety' -> 'nineteen nineties', 'nineteen hundred' -> 'nineteen hundreds'."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def digit_words(digits: str) -> str:
    """'0451' -> 'zero four five one' (phone numbers, decimals after the point)."""
    return " ".join(ONES[int(d)] for d in digits if d.isdigit())


def fraction_words(numerator: int, denominator: int) -> str:
    """3/4 -> 'three quarters', 1/2 -> 'one half', 5/8 -> 'five eighths'."""
    one = numerator == 1
    if denominator in DENOMINATORS:
        name = DENOMINATORS[denominator][0 if one else 1]
    else:
        name = ordinal_words(denominator) + ("" if one else "s")
    return f"{number_words(numerator)} {name}"


_ROMAN_RE = re.compile(r"X{0,3}(IX|IV|V?I{0,3})")


def roman_value(text: str) -> int | None:
    """'XIV' -> 14 for well-formed numerals up to 39 (I, V and X only: letters like M, D, C and L would
    turn initials such as 'MD' or 'CD' into numbers); None otherwise."""
    if not text or not _ROMAN_RE.fullmatch(text):
        return None
    values = [ROMAN[c] for c in text]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


_ROMAN_YEAR_RE = re.compile(r"M{1,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")
_ROMAN_LETTERS = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_year(text: str) -> int | None:
    """'MMXXIV' -> 2024: a well-formed numeral of at least four letters from M (1000) up, as years and
    copyright lines are written; None otherwise (so 'MD' or 'MIX' stay words)."""
    if len(text) < 4 or not _ROMAN_YEAR_RE.fullmatch(text):
        return None
    values = [_ROMAN_LETTERS[c] for c in text]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def power_words(exponent: str) -> str:
    """An exponent as said after its base: '2' -> 'squared', '3' -> 'cubed', '6' -> 'to the sixth',
    '-3' -> 'to the minus third'."""
    negative, digits = exponent.startswith("-"), exponent.lstrip("-")
    value = int(digits)
    if not negative and value in (2, 3):
        return "squared" if value == 2 else "cubed"
    return "to the " + ("minus " if negative else "") + ordinal_words(value)
