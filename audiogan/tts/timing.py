"""When each sentence and word is said.

A parallel acoustic model fixes every phoneme's length in frames before any audio exists, and the vocoder
turns each frame into exactly ``hop_length`` samples, so the timings are exact, not estimated from the
audio: captions, karaoke highlighting and lip sync come free with the speech.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from audiogan.audio.io import write_atomic
from audiogan.tts.lines import Line


@dataclass(frozen=True)
class Span:
    text: str
    start: float  # seconds from the start of the audio
    end: float


@dataclass
class Timings:
    sentences: list[Span] = field(default_factory=list)  # as written
    words: list[Span] = field(default_factory=list)      # as said ("three dollars", not "$3")
    marks: list[Span] = field(default_factory=list)      # SSML <mark> names; start == end
    next_start: int = 0  # the sample where audio after these lines begins (their last pause included)

    @classmethod
    def of(cls, lines: Sequence[Line], durations: Sequence[Sequence[int]], hop_length: int, sample_rate: int,
           start: int = 0) -> Timings:
        """Lines and their phonemes' lengths in frames -> timings in the audio that ``TTS.join`` makes of
        them, placed ``start`` samples into the whole (a stream's later sentences)."""
        timings = cls()
        position = start + (round(lines[0].lead * sample_rate) if lines else 0)  # in samples, as join counts
        for line, frames in zip(lines, durations, strict=True):
            start, words = position, {}
            ends = [position]
            for length in frames:
                ends.append(ends[-1] + length * hop_length)
            timings.marks += [Span(name, ends[at] / sample_rate, ends[at] / sample_rate) for name, at in line.marks]
            for word, length in zip(line.word_of, frames, strict=True):
                if word >= 0:
                    first, _ = words.get(word, (position, 0))
                    words[word] = (first, position + length * hop_length)
                position += length * hop_length
            timings.words += [Span(line.words[w], a / sample_rate, b / sample_rate) for w, (a, b) in
                              sorted(words.items())]
            timings.sentences.append(Span(line.text, start / sample_rate, position / sample_rate))
            position += round(line.pause * sample_rate)
        timings.next_start = position
        return timings

    def to_json(self) -> str:
        spans = {"sentences": self.sentences, "words": self.words, **({"marks": self.marks} if self.marks else {})}
        return json.dumps({k: [asdict(s) for s in v] for k, v in spans.items()}, indent=1, ensure_ascii=False)

    def to_vtt(self) -> str:
        cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{_vtt_text(s.text)}\n" for s in self.sentences]
        return "WEBVTT\n\n" + "\n".join(cues)

    def to_srt(self) -> str:
        return "\n".join(f"{n}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{_srt_text(s.text)}\n"
                         for n, s in enumerate(self.sentences, 1))

    def text(self, format: str) -> str:
        """"json" (sentences and words), "vtt" (WebVTT) or "srt" (SubRip): captions have one cue a sentence."""
        return {"json": self.to_json, "vtt": self.to_vtt, "srt": self.to_srt}[format]()

    def write(self, path: str | Path) -> None:
        """In the format its suffix names (see :meth:`text`)."""
        write_atomic(path, self.text(check_path(path)[1:]).encode("utf-8"))


def check_path(path: str | Path) -> str:
    """The format a timings file is written in, from its suffix; a clear error for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".vtt", ".srt"):
        raise ValueError(f"timings go to a .json, .vtt or .srt file, not {Path(path).name!r}")
    return suffix


def _vtt_text(text: str) -> str:
    """A cue's text as WebVTT reads it: "&", "<" and ">" escaped, so that "<b>" is shown, not markup, and
    "-->" cannot start a cue of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _srt_text(text: str) -> str:
    """SubRip has no escapes: an arrow in the text, which readers take for a timing line, is broken up."""
    return text.replace("-->", "- >")


def _clock(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{decimal}{millis % 1000:03d}"
