"""Text -> phoneme ids: espeak-ng (through ``phonemizer``) and a fixed, versioned symbol table."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence

Segment = str | list[str]  # text for espeak-ng, or phoneme tokens given outright


class Phonemes(list):
    """Phoneme tokens given outright for one written word (a lexicon entry, an SSML <phoneme>)."""

    def __init__(self, tokens: Sequence[str], word: str = "") -> None:
        super().__init__(tokens)
        self.word = word


class Respelling(str):
    """Text said in place of one written word (a lexicon entry)."""

    word: str

    def __new__(cls, text: str, word: str) -> Respelling:
        said = super().__new__(cls, text)
        said.word = word
        return said

log = logging.getLogger("audiogan.tts")
_ESPEAK_LOCK = threading.Lock()

SYMBOLS_VERSION = "en-us-espeak-1"
PAD, SPACE = "_", " "
STRESS = ("ˈ", "ˌ")
PUNCTUATION = tuple(",.!?;:\"()-'")
# espeak-ng en-us phonemes (IPA, as phonemizer 3.4 writes them with a phone separator).
PHONES = (
    "p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "m", "n", "ŋ", "l", "ɹ", "r",
    "w", "j", "tʃ", "dʒ", "ɾ", "ʔ", "n̩", "x", "ə", "ɚ", "ɪ", "ɛ", "æ", "ʌ", "ʊ", "i", "iː", "u", "uː", "ɑ",
    "ɑː", "ɔ", "ɔː", "ɜː", "ɐ", "ᵻ", "a", "e", "o", "oː", "ɒ", "aɪ", "eɪ", "oʊ", "aʊ", "ɔɪ", "əl", "iə",
    "ɛɹ", "ɪɹ", "ʊɹ", "ɔːɹ", "oːɹ", "ɑːɹ", "aɪə", "aɪɚ", "əʊ", "ɪə", "eə", "ː",
)
SYMBOLS: tuple[str, ...] = (PAD, SPACE, *STRESS, *PUNCTUATION, *PHONES)


class SymbolTable:
    """Symbol <-> id; stored with each model (``symbols`` in its card), so ids never silently shift."""

    def __init__(self, symbols: Sequence[str] = SYMBOLS, version: str = SYMBOLS_VERSION) -> None:
        if len(set(symbols)) != len(symbols) or symbols[0] != PAD:
            raise ValueError("a symbol table starts with the pad symbol and has no duplicates")
        self.symbols = tuple(symbols)
        self.version = version
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        unknown = sorted({t for t in tokens if t not in self.ids})
        if unknown:
            log.warning("dropping symbols not in table %s: %s", self.version, " ".join(unknown))
        return [self.ids[t] for t in tokens if t in self.ids]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SymbolTable:
        return cls(tuple(data["symbols"]), str(data["version"]))  # type: ignore[arg-type]


def split_phone(phone: str, known: frozenset[str]) -> list[str]:
    """One phonemizer 'phone' -> tokens: stress marks and punctuation become their own tokens; a phone the
    table lacks is split into known pieces, greedily from the left, and the rest is dropped."""
    tokens: list[str] = []
    rest = ""
    for char in phone:
        if char in STRESS or char in PUNCTUATION:
            tokens += _pieces(rest, known)
            tokens.append(char)
            rest = ""
        else:
            rest += char
    return tokens + _pieces(rest, known)


def _pieces(phone: str, known: frozenset[str]) -> list[str]:
    out = []
    while phone:
        for size in range(len(phone), 0, -1):
            if phone[:size] in known:
                out.append(phone[:size])
                phone = phone[size:]
                break
        else:
            log.warning("dropping unknown phoneme character %r", phone[0])
            phone = phone[1:]
    return out


@functools.lru_cache(maxsize=4)
def _backend(language: str):
    try:
        from phonemizer.backend import EspeakBackend
    except ImportError:
        raise RuntimeError("text-to-speech needs phonemizer and espeak-ng: pip install phonemizer; "
                           "apt-get install espeak-ng") from None
    try:
        # phonemizer warns about word-count mismatches whenever punctuation is preserved: noise, not news.
        quiet = logging.getLogger("audiogan.tts.phonemizer")
        quiet.setLevel(logging.ERROR)
        return EspeakBackend(language, preserve_punctuation=True, with_stress=True,
                             language_switch="remove-flags", logger=quiet)
    except RuntimeError as exc:
        raise RuntimeError(f"espeak-ng is not usable ({exc}); install it with: apt-get install espeak-ng") from None


def phonemize(sentences: Sequence[str], language: str = "en-us") -> list[list[str]]:
    """Normalised sentences -> token lists (phones, stress, punctuation, word spaces), in one espeak call."""
    from phonemizer.separator import Separator

    # phonemizer drops blank lines, and with punctuation preserved that shifted every later sentence onto
    # the wrong line (a blank transcript mid-corpus paired clips with their neighbours' phonemes): blanks
    # never reach it.
    spoken = [i for i, s in enumerate(sentences) if s.strip()]
    if not spoken:
        return [[] for _ in sentences]
    with _ESPEAK_LOCK:  # libespeak-ng holds global state: concurrent calls garble each other's lines
        lines = _backend(language).phonemize([sentences[i].replace("\n", " ") for i in spoken],
                                             separator=Separator(phone=" ", word=" | ", syllable=""),
                                             strip=True, njobs=1)
    if len(lines) != len(spoken):
        raise RuntimeError(f"espeak-ng returned {len(lines)} lines for {len(spoken)} sentences")
    known = frozenset(PHONES)
    result: list[list[str]] = [[] for _ in sentences]
    for i, line in zip(spoken, lines, strict=True):
        tokens: list[str] = []
        for w, word in enumerate(line.split(" | ")):
            if w:
                tokens.append(SPACE)
            for phone in word.split():
                tokens += split_phone(phone, known)
        result[i] = tokens
    return result


def phonemize_segments(sentences: Sequence[Sequence[Segment]],
                       language: str = "en-us") -> list[tuple[list[str], list[tuple[int, int]]]]:
    """Sentences given in segments -> each sentence's tokens, and for each token the segment and the word
    of that segment it came from; one espeak call for all of them."""
    texts = [seg for segs in sentences for seg in segs if isinstance(seg, str) and seg.strip()]
    spoken = iter(phonemize(texts, language))
    result = []
    for segs in sentences:
        tokens: list[str] = []
        owners: list[tuple[int, int]] = []
        for index, seg in enumerate(segs):
            if isinstance(seg, str) and not seg.strip():
                continue
            part = next(spoken) if isinstance(seg, str) else seg
            # Words are parted by a space token, but punctuation clings to the word before it.
            if tokens and part and tokens[-1] != SPACE and part[0] not in (SPACE, *PUNCTUATION):
                tokens.append(SPACE)
                owners.append(owners[-1])
            word = 0
            for token in part:
                word += token == SPACE
                tokens.append(token)
                owners.append((index, word))
        result.append((tokens, owners))
    return result
