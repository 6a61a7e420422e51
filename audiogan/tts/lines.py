"""A script -> lines for the acoustic model: phoneme ids, and for each id the style it is said in."""

from __future__ import annotations

from dataclasses import dataclass

from audiogan.tts.lexicon import Lexicon
from audiogan.tts.phonemes import PUNCTUATION, Segment, SymbolTable, phonemize_segments
from audiogan.tts.script import PLAIN, Sentence, Style

SILENT_SYMBOLS = frozenset(" ,.!?;:\"()-'")


@dataclass
class Line:
    """One sentence, ready for an acoustic pass."""
    text: str
    ids: list[int]
    styles: list[Style]      # one per id
    pause: float = 0.0       # seconds of silence after it
    lead: float = 0.0        # seconds of silence before it (the first line only)

    @classmethod
    def of(cls, ids: list[int]) -> Line:
        return cls("", list(ids), [PLAIN] * len(ids))


def to_lines(sentences: list[Sentence], symbols: SymbolTable, language: str,
             lexicon: Lexicon | None = None) -> list[Line]:
    """Phonemize every sentence in one espeak call; a sentence with nothing to pronounce gives way, but a
    silence it asked for is kept."""
    cuts = [_segments(sentence, lexicon) for sentence in sentences]
    spoken: list[tuple[int, Line]] = []  # (sentence number, line)
    phonemized = phonemize_segments([segs for segs, _ in cuts], language)
    for number, (sentence, (_, pieces_of), (tokens, owners)) in enumerate(zip(sentences, cuts, phonemized,
                                                                               strict=True)):
        symbols.encode(tokens)  # warns once about symbols the table lacks
        words_out = [0] * len(pieces_of)
        for segment, word in owners:
            words_out[segment] = max(words_out[segment], word + 1)
        kept = []
        for token, (segment, word) in zip(tokens, owners, strict=True):
            if token in symbols.ids:
                # espeak-ng may join or part words; then the words are matched up in proportion.
                words_in = pieces_of[segment]
                piece = words_in[min(word * len(words_in) // max(words_out[segment], len(words_in)),
                                     len(words_in) - 1)] if words_out[segment] != len(words_in) else words_in[word]
                kept.append((symbols.ids[token], sentence.pieces[piece].style))
        if any(symbols.symbols[i] not in SILENT_SYMBOLS for i, _ in kept):
            spoken.append((number, Line(sentence.text, [i for i, _ in kept], [s for _, s in kept])))
    if not spoken:
        return []
    first = spoken[0][0]
    spoken[0][1].lead = sum(s.pause for s in sentences[:first])
    ends = [number for number, _ in spoken[1:]] + [len(sentences)]
    for (number, line), end in zip(spoken, ends, strict=True):
        # Explicit pauses of the sentences that gave way add up; the gap before further speech is a floor.
        pause = sum(s.pause for s in sentences[number:end])
        gap = max(s.gap for s in sentences[number:end])
        line.pause = pause if end == len(sentences) else max(gap, pause)
    return [line for _, line in spoken]


def _segments(sentence: Sentence, lexicon: Lexicon | None) -> tuple[list[Segment], list[list[int]]]:
    """A sentence's pieces -> segments for espeak-ng, and for each segment the piece of each of its words.
    Neighbouring text pieces form one segment whatever their styles, so that espeak-ng reads each word in
    its sentence ("a" before a styled word is still the article); only given phonemes cut the text."""
    segments: list[Segment] = []
    pieces_of: list[list[int]] = []
    for index, piece in enumerate(sentence.pieces):
        cut = lexicon.segments(piece.said) if lexicon and isinstance(piece.said, str) else [piece.said]
        for segment in cut:
            if isinstance(segment, str) and segments and isinstance(segments[-1], str):
                # Punctuation that opens a piece clings to the word before it, as in the text.
                glued = segment.lstrip()[:1] in PUNCTUATION
                segments[-1] = f"{segments[-1]}{'' if glued else ' '}{segment.lstrip()}"
                pieces_of[-1] += [index] * (len(segment.split()) - glued)
            else:
                segments.append(segment)
                pieces_of.append([index] * (len(segment.split()) if isinstance(segment, str) else 1))
    return segments, pieces_of
