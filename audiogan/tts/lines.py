"""A script -> lines for the acoustic model: phoneme ids, and for each id the style it is said in."""

from __future__ import annotations

from dataclasses import dataclass, field

from audiogan.tts.lexicon import Lexicon
from audiogan.tts.phonemes import PUNCTUATION, SPACE, STRESS, Segment, SymbolTable, phonemize_segments
from audiogan.tts.script import PLAIN, Sentence, Style

SILENT_SYMBOLS = frozenset((SPACE, *PUNCTUATION))
# Every line starts with an opening quote mark. The voices are trained on phonemes without a silence
# symbol, so the aligner gives a recording's lead-in silence to the first phoneme: said alone at inference,
# that phoneme is stretched into silence ("The" 0.42 s) or, for a short vowel, all but dropped ("It" 16 ms).
# Some training texts open with a quote, so the voice knows that symbol as the place for the lead-in; a
# word space does much the same, less well by both judges (benchmarks/RESULTS.md, 2026-12-03).
LEAD_IN = '"'
# Stripped from a word's ends for its timing's text; an apostrophe may stay ("Smith's").
_NOT_WORD = "".join(p for p in PUNCTUATION if p != "'")


@dataclass
class Line:
    """One sentence, ready for an acoustic pass."""
    text: str
    ids: list[int]
    styles: list[Style]      # one per id
    pause: float = 0.0       # seconds of silence after it
    lead: float = 0.0        # seconds of silence before it (the first line only)
    words: list[str] = field(default_factory=list)    # as said ("three dollars", not "$3")
    word_of: list[int] = field(default_factory=list)  # per id: its word, or -1 (spaces, punctuation)
    marks: list[tuple[str, int]] = field(default_factory=list)  # SSML <mark>: (name, id it comes before)

    @classmethod
    def of(cls, ids: list[int]) -> Line:
        return cls("", list(ids), [PLAIN] * len(ids), word_of=[-1] * len(ids))


def to_lines(sentences: list[Sentence], symbols: SymbolTable, language: str,
             lexicon: Lexicon | None = None) -> list[Line]:
    """Phonemize every sentence in one espeak call; a sentence with nothing to pronounce gives way, but a
    silence it asked for is kept."""
    cuts = [_segments(sentence, lexicon) for sentence in sentences]
    spoken: list[tuple[int, Line]] = []  # (sentence number, line)
    marks: list[str] = []  # waiting for the next token (their own pieces had none)
    phonemized = phonemize_segments([cut.segments for cut in cuts], language)
    for number, (sentence, cut, (tokens, owners)) in enumerate(zip(sentences, cuts, phonemized, strict=True)):
        symbols.encode(tokens)  # warns once about symbols the table lacks
        line = Line(sentence.text, [], [])
        said: dict[int, list[int]] = {}  # per segment, the phonemes in each word espeak-ng said
        for token, (segment, word) in zip(tokens, owners, strict=True):
            lengths = said.setdefault(segment, [])
            lengths += [0] * (word + 1 - len(lengths))
            lengths[word] += token not in SILENT_SYMBOLS and token not in STRESS
        groups = {segment: _match_words([text for _, text in cut.words_of[segment]], lengths)
                  for segment, lengths in said.items()}
        numbered: dict[tuple[int, ...], int] = {}  # written words -> their index in line.words
        marked: set[int] = set()  # pieces whose marks are placed
        for token, (segment, word) in zip(tokens, owners, strict=True):
            if token not in symbols.ids:
                continue
            written = groups[segment][word]
            piece = cut.pieces_of[segment][written[0]]
            if piece not in marked:
                marked.add(piece)
                marks += sentence.pieces[piece].marks
            line.marks += [(name, len(line.ids)) for name in marks]
            marks = []
            line.ids.append(symbols.ids[token])
            line.styles.append(sentence.pieces[piece].style)
            named = dict(cut.words_of[segment][i] for i in written)  # written word number -> its text
            text = " ".join(t.strip(_NOT_WORD) for t in named.values()).strip()
            if token in SILENT_SYMBOLS or not text:
                line.word_of.append(-1)
                continue
            key = tuple(named)
            if key not in numbered:
                numbered[key] = len(line.words)
                line.words.append(text)
            line.word_of.append(numbered[key])
        marks += [m for k, p in enumerate(sentence.pieces) if k not in marked for m in p.marks]
        marks += sentence.end_marks
        if any(symbols.symbols[i] not in SILENT_SYMBOLS for i in line.ids):
            line.ids.insert(0, symbols.ids[LEAD_IN])
            line.styles.insert(0, line.styles[0])
            line.word_of.insert(0, -1)
            line.marks = [(name, at + 1) for name, at in line.marks] + [(name, len(line.ids)) for name in marks]
            marks = []
            spoken.append((number, line))
        else:  # nothing said: its marks go where the next word begins
            marks = [name for name, _ in line.marks] + marks
    if not spoken:
        return []
    spoken[-1][1].marks += [(name, len(spoken[-1][1].ids)) for name in marks]
    first = spoken[0][0]
    spoken[0][1].lead = sum(s.pause for s in sentences[:first])
    ends = [number for number, _ in spoken[1:]] + [len(sentences)]
    for (number, line), end in zip(spoken, ends, strict=True):
        # Explicit pauses of the sentences that gave way add up; the gap before further speech is a floor.
        pause = sum(s.pause for s in sentences[number:end])
        gap = max(s.gap for s in sentences[number:end])
        line.pause = pause if end == len(sentences) else max(gap, pause)
    return [line for _, line in spoken]


@dataclass
class _Cut:
    segments: list[Segment]                 # for espeak-ng
    pieces_of: list[list[int]]              # per segment, the piece of each word it holds
    words_of: list[list[tuple[int, str]]]   # per segment, each word's written word: (number, text)


def _segments(sentence: Sentence, lexicon: Lexicon | None) -> _Cut:
    """A sentence's pieces -> segments for espeak-ng, with the piece and the written word of each word said.
    Neighbouring text pieces form one segment whatever their styles, so that espeak-ng reads each word in
    its sentence ("a" before a styled word is still the article); only given phonemes cut the text. Words
    said for one written word ("ex kay seven" for "XK7", a lexicon's respelling) share its number."""
    cut = _Cut([], [], [])
    written = 0
    for index, piece in enumerate(sentence.pieces):
        parts = lexicon.segments(piece.said) if lexicon and isinstance(piece.said, str) else [piece.said]
        for part in parts:
            said = part.split() if isinstance(part, str) else [""]
            glued = False
            if isinstance(part, str) and cut.segments and isinstance(cut.segments[-1], str):
                # Punctuation that opens a piece clings to the word before it, as in the text.
                glued = part.lstrip()[:1] in PUNCTUATION
                cut.segments[-1] = f"{cut.segments[-1]}{'' if glued else ' '}{part.lstrip()}"
            else:
                cut.segments.append(part)
                cut.pieces_of.append([])
                cut.words_of.append([])
            said = said[glued:]
            as_one = piece.written if piece.written is not None else getattr(part, "word", None)
            if as_one is not None:
                words = [(written, as_one)] * len(said)
                written += 1
            else:
                words = list(enumerate(said, start=written))
                written += len(said)
            cut.pieces_of[-1] += [index] * len(said)
            cut.words_of[-1] += words
    return cut


def _match_words(written: list[str], said: list[int]) -> list[list[int]]:
    """For each word espeak-ng said (given as its number of phonemes), the written words it stands for.
    espeak-ng runs some words together ("in the" becomes one word) and, rarely, parts one; the match is the
    monotone grouping whose phoneme counts best follow the written words' letter counts."""
    n, m = len(written), len(said)
    if n == m or not n or not m:
        return [[min(j, n - 1)] for j in range(m)] if n else []
    letters = [max(1, sum(c.isalnum() for c in w)) for w in written]
    scale = sum(said) / sum(letters)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    step: dict[tuple[int, int], tuple[int, int]] = {}
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i][j] == inf:
                continue
            # a written words said as one word (a >= 1), or one written word said as b words (b >= 2)
            moves = [(a, 1) for a in range(1, 5)] + [(1, b) for b in range(2, 4)]
            for a, b in moves:
                if i + a > n or j + b > m:
                    continue
                c = cost[i][j] + abs(scale * sum(letters[i:i + a]) - sum(said[j:j + b])) + 2.0 * (a + b - 2)
                if c < cost[i + a][j + b]:
                    cost[i + a][j + b] = c
                    step[i + a, j + b] = (a, b)
    if cost[n][m] == inf:
        return [[min(j * n // m, n - 1)] for j in range(m)]
    groups: list[list[int]] = [[] for _ in range(m)]
    i, j = n, m
    while i or j:
        a, b = step[i, j]
        for k in range(j - b, j):
            groups[k] = list(range(i - a, i))
        i, j = i - a, j - b
    return groups
