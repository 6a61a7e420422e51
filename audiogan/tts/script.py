"""What a voice is asked to say, before phonemes: sentences made of pieces, each piece in its own style.

Plain text is one piece per sentence in the default style; SSML (:mod:`audiogan.tts.ssml`) gives pieces
their own rate, pitch and loudness, spells or respells them, or names their phonemes outright, and puts
pauses of its own between sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from audiogan.tts.normalize import normalize, split_sentences

SENTENCE_GAP_SECONDS = 0.12  # the pause between two sentences unless the text asks for another
# Nested styles add their gains; the sum stays in the range one SSML <prosody volume> may ask for (the
# floor is "silent").
VOLUME_RANGE = (-120.0, 12.0)


@dataclass(frozen=True)
class Style:
    rate: float = 1.0     # multiplies the caller's speed
    pitch: float = 0.0    # semitones, added to the caller's pitch shift
    volume: float = 0.0   # dB

    def then(self, inner: Style) -> Style:
        """This style with ``inner`` nested in it: rates multiply, pitch and volume offsets add (the volume
        within ``VOLUME_RANGE``: three nested "+12dB" are +12 dB, not +36)."""
        volume = min(max(self.volume + inner.volume, VOLUME_RANGE[0]), VOLUME_RANGE[1])
        return Style(self.rate * inner.rate, self.pitch + inner.pitch, volume)


PLAIN = Style()


@dataclass
class Piece:
    """Spoken-form words (already normalised) or phoneme tokens, said in one style."""
    said: str | list[str]
    style: Style = PLAIN
    written: str | None = None  # how the text wrote it, where that differs ("XK7" said "ex kay seven")
    marks: list[str] = field(default_factory=list)  # SSML <mark> names placed where this piece begins


@dataclass
class Sentence:
    pieces: list[Piece]
    gap: float = SENTENCE_GAP_SECONDS  # silence before the next sentence, if one follows
    pause: float = 0.0                 # silence asked for explicitly: kept even at the very end
                                       # (a sentence with no pieces is a pause alone)
    text: str = ""                     # as written, for progress reports and errors
    end_marks: list[str] = field(default_factory=list)  # SSML <mark> names after its last word


def plain(text: str) -> list[Sentence]:
    """Plain text: split into sentences, each normalised, one style throughout."""
    return [Sentence([Piece(normalize(s))], text=s) for s in split_sentences(text)]
