"""How long does SSML parsing take where markup sits between every two words?

Each document repeats a sentence 60 times with a tag right before every word (joined by spaces), the case
where every run of text is read in view of the text before it (benchmarks/RESULTS.md, "SSML: runs read with
the text before them"). "fox" is that section's sentence; "verbs" puts a common verb's past after an
abbreviation and at the start of runs, which the sentence-end rule looks at. Reported per document and tag:
the median and least thread CPU time and wall time of ``ssml.parse`` over the runs, after one warm-up parse,
and a hash of what was parsed, so that two checkouts can be compared for speed and output:

    PYTHONPATH=. python -m benchmarks.ssml_speed --runs 7
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time

from audiogan.tts import ssml

SENTENCES = {
    "fox": "The quick brown fox jumps over the lazy dog near 5 kg of hay on Jan. 5 at 10:30 a.m. in the U.S.",
    "verbs": "Donors gave the rest and visitors came from the U.S. on Jan. 5 where staff said they knew Acme Inc. "
             "began work at 9 a.m.",
}
TAGS = {"mark": '<mark name="m{}"/>', "break": "<break/>"}


def document(sentence: str, tag: str, copies: int = 60) -> str:
    words = " ".join([sentence] * copies).split()
    return "<speak>" + " ".join(tag.format(i) + word for i, word in enumerate(words)) + "</speak>"


def said(sentences: list[ssml.Sentence]) -> str:
    """A short hash of the sentences and what each piece says."""
    text = repr([(s.text, [repr(p.said) for p in s.pieces]) for s in sentences])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ssml.parse(document(SENTENCES["fox"], TAGS["mark"], copies=1))  # compiles the patterns
    report = {}
    for name, sentence in SENTENCES.items():
        for kind, tag in TAGS.items():
            markup, cpu, wall = document(sentence, tag), [], []
            for _ in range(args.runs):
                started, thread = time.perf_counter(), time.thread_time()
                parsed = ssml.parse(markup)
                cpu.append(time.thread_time() - thread)
                wall.append(time.perf_counter() - started)
            report[f"{name} {kind}"] = {
                "cpu_median_s": round(statistics.median(cpu), 4), "cpu_min_s": round(min(cpu), 4),
                "wall_median_s": round(statistics.median(wall), 4), "wall_min_s": round(min(wall), 4),
                "said": said(parsed)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
