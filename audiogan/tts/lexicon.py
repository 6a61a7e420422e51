"""A user's pronunciations: the words espeak-ng gets wrong (names, brands, jargon), said their way.

A lexicon file has one entry a line, the word, then how to say it; ``#`` starts a comment::

    Nguyen     win              # a respelling: read like any other text
    Siobhan    /ʃɪvˈɔːn/        # phonemes between slashes, in the voice's symbols (IPA as espeak-ng writes it)
    SQL        sequel           # a word in capitals matches only as written; others match in any case

Entries apply to the normalised text, so they see "doctor", not "Dr.", and whole words only.
"""

from __future__ import annotations

import re
from pathlib import Path

from audiogan.tts.normalize import fold_case
from audiogan.tts.phonemes import PUNCTUATION, SPACE, STRESS, Phonemes, Respelling, Segment, SymbolTable


class Lexicon:
    """Word -> respelling or phoneme tokens; :meth:`phonemize` is :func:`phonemize` with them applied."""

    def __init__(self, entries: dict[str, str | list[str]]) -> None:
        if not entries:
            raise ValueError("a lexicon needs at least one entry")
        self.entries = {self._key(word): said for word, said in entries.items()}
        words = sorted(entries, key=len, reverse=True)
        # Capitals (acronyms) match as written; other words in any case.
        alternatives = [re.escape(w) if self._exact(w) else f"(?i:{re.escape(w)})" for w in words]
        self._pattern = re.compile(r"(?<![\w'])(" + "|".join(alternatives) + r")(?![\w'])")

    @staticmethod
    def _exact(word: str) -> bool:
        return len(word) > 1 and word.isupper()

    def _key(self, word: str) -> str:
        return word if self._exact(word) else fold_case(word)

    @classmethod
    def read(cls, path: str | Path, symbols: SymbolTable) -> Lexicon:
        """Parse a lexicon file against a voice's symbol table; a bad line is an error naming it."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise FileNotFoundError(f"lexicon {path} does not exist") from None
        except IsADirectoryError:
            raise ValueError(f"lexicon {path} is a folder; name a text file") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"lexicon {path} is not UTF-8 text (byte {exc.start})") from None
        entries: dict[str, str | list[str]] = {}
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, *rest = line.split(None, 1)
            said = rest[0] if rest else ""
            where = f"lexicon {path.name} line {number}"
            if not said:
                raise ValueError(f"{where}: {word!r} has no pronunciation (write the word, then how to say it)")
            if not re.fullmatch(r"[\w'-]+", word):
                raise ValueError(f"{where}: {word!r} is not one word")
            if "/" in said and not said.startswith("/"):
                raise ValueError(f"{where}: phonemes go between two slashes, right after one word")
            if said.startswith("/"):
                if len(said) < 3 or not said.endswith("/"):
                    raise ValueError(f"{where}: phonemes go between two slashes, as /wɪn/")
                entries[word] = phoneme_tokens(said[1:-1], symbols, where)
            else:
                entries[word] = said
        return cls(entries)

    def segments(self, sentence: str) -> list[Segment]:
        """A sentence cut at the lexicon's words, each said its way (a respelling or phonemes)."""
        out: list[Segment] = []
        start = 0
        for m in self._pattern.finditer(sentence):
            word = m.group(1)
            said = self.entries.get(word) or self.entries.get(fold_case(word))
            if said is None:  # a case-insensitive look-alike the entries do not hold: said as written
                continue
            out += [sentence[start:m.start()],
                    Respelling(said, word) if isinstance(said, str) else Phonemes(said, word)]
            start = m.end()
        return [s for s in [*out, sentence[start:]] if s]


def phoneme_tokens(text: str, symbols: SymbolTable, where: str = "phonemes") -> list[str]:
    """'ʃɪvˈɔːn' -> ['ʃ', 'ɪ', 'v', 'ˈ', 'ɔː', 'n']: the longest symbols of the voice's table first; a
    character it cannot place is an error naming the symbols the voice knows."""
    # Two ASCII look-alikes people type for IPA: g for ɡ, a colon for the length mark.
    text = text.replace("g", "\u0261").replace(":", "\u02d0")
    known = [s for s in symbols.symbols[1:] if s not in PUNCTUATION]
    longest_first = sorted((s for s in known if s != SPACE), key=len, reverse=True)
    tokens: list[str] = []
    for w, word in enumerate(text.split()):
        if w:
            tokens.append(SPACE)
        while word:
            match = next((s for s in longest_first if word.startswith(s)), None)
            if match is None:
                phones = " ".join(s for s in known if s not in (SPACE, *STRESS))
                raise ValueError(f"{where}: {word[0]!r} is no phoneme of this voice; it knows {phones}")
            tokens.append(match)
            word = word[len(match):]
    return tokens
