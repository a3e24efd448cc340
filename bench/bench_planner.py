"""Planner benchmark: emotion and sentence-type accuracy, and time per line, for rules vs local.

The labelled set (``bench/data/planner_labels.jsonl``) is short dialogues in English and Mandarin,
one record per script line with the emotion and sentence type a director would choose given the
surrounding lines. Each dialogue is parsed and planned as its own script, without the plan cache.

Time is compared with what the line costs to render: by default the reference figure of the embedded
engine (``--tts-rtf``, 0.36 s of compute per second of audio on a 2-core CPU) times
``estimate_speech_seconds``; with ``--tts`` the embedded engine renders every line in this run and
its measured time is used instead (the ratio is then measured side by side). Model loading and the
once-per-process prompt set-up are reported separately: they are paid once, not per line.

Run: ``nice .venv/bin/python bench/bench_planner.py [--tts] [--fp32]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from vibevoice.plan import PlannerSettings, make_plan
from vibevoice.script import Script, estimate_speech_seconds, parse_script

DATA = Path(__file__).parent / "data" / "planner_labels.jsonl"


def load_dialogues(path: Path = DATA) -> list[tuple[str, Script, list[dict]]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            record = json.loads(raw)
            groups[record["dialogue"]].append(record)
    out = []
    for name, records in groups.items():
        script = parse_script("\n".join(r["line"] for r in records))
        if len(script.lines) != len(records):
            raise ValueError(f"{name}: {len(records)} records parse into {len(script.lines)} lines")
        out.append((name, script, records))
    return out


def run_planner(planner: str, dialogues, settings: PlannerSettings) -> dict:
    rows, seconds = [], 0.0
    t0 = time.perf_counter()
    make_plan(dialogues[0][1], planner, settings=settings)  # load the model and set up its prompt
    setup = time.perf_counter() - t0
    fallbacks = 0
    for _name, script, records in dialogues:
        t0 = time.perf_counter()
        plan = make_plan(script, planner, settings=settings)
        seconds += time.perf_counter() - t0
        fallbacks += len(plan.fallbacks)
        for line, lp, record in zip(script.lines, plan.lines, records):
            rows.append((line, lp, record))
    return {"rows": rows, "seconds": seconds, "setup": setup, "fallbacks": fallbacks, "model": plan.model}


def accuracy(rows, field: str, language: str | None = None) -> float:
    picked = [(lp, r) for line, lp, r in rows if language is None or line.language == language]
    return sum(getattr(lp, field) == r[field] for lp, r in picked) / max(1, len(picked))


def measure_tts(dialogues) -> float:
    """Seconds the embedded engine takes to render every line of the set, in this process."""
    from vibevoice.engines import Segment, get_engine
    from vibevoice.voices import assign_voices, load_templates

    engine, total = get_engine("kokoro"), 0.0
    for _name, script, _records in dialogues:
        languages = {s: {ln.language for ln in script.lines if ln.speaker == s} for s in script.speakers}
        voices = assign_voices(script.speakers, languages, {}, load_templates())
        for line in script.lines:
            segment = Segment(line.index, line.speaker, line.text, line.language)
            t0 = time.perf_counter()
            engine.synthesize([segment], voices)
            total += time.perf_counter() - t0
    return total


def precision_recall(rows, emotion: str) -> tuple[int, float | None, float | None]:
    """(times predicted, precision, recall) of ``emotion`` over ``rows`` of (line, plan, record)."""
    said = [r for _l, lp, r in rows if lp.emotion == emotion]
    truth = [lp for _l, lp, r in rows if r["emotion"] == emotion]
    hits = sum(r["emotion"] == emotion for r in said)
    return len(said), (hits / len(said) if said else None), (hits / len(truth) if truth else None)


def print_calibration(name: str, rows, thresholds=(0.0, 0.2, 0.3, 0.4, 0.5)) -> None:
    """Per-emotion precision/recall of the inferred (not hinted) emotions, and by confidence for a model."""
    inferred = [row for row in rows if row[1].emotion_source in ("rules", "model")]
    print(f"\n{name}: {len(inferred)} lines with an inferred emotion ({len(rows) - len(inferred)} hinted)")
    print(f"  {'emotion':<10} {'said':>5} {'precision':>10} {'recall':>7}")
    from vibevoice.plan.rules import EMOTIONS

    for emotion in EMOTIONS:
        n, p, r = precision_recall(inferred, emotion)
        if n or r is not None:
            print(f"  {emotion:<10} {n:>5} {'-' if p is None else f'{p:.0%}':>10} {'-' if r is None else f'{r:.0%}':>7}")
    confident = [row for row in inferred if row[1].confidence is not None]
    if not confident:
        return
    print(f"  model guesses by confidence (below the threshold the line is read neutral):")
    for t in thresholds:
        kept = [row for row in confident if row[1].confidence >= t and row[1].emotion != "neutral"]
        right = sum(r["emotion"] == lp.emotion for _l, lp, r in kept)
        neutral_ok = sum(r["emotion"] == "neutral" for _l, lp, r in confident
                         if lp.confidence < t or lp.emotion == "neutral")
        acc = (right + neutral_ok) / len(confident)
        print(f"  >= {t:.1f}: {len(kept):>3} performed, precision {right / max(1, len(kept)):.0%}, "
              f"accuracy with neutral below {acc:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tts", action="store_true", help="render every line with the embedded engine")
    parser.add_argument("--tts-rtf", type=float, default=0.36, help="engine compute seconds per audio second")
    parser.add_argument("--fp32", action="store_true", help="also run the local planner without int8")
    parser.add_argument("--context", type=int, default=None, help="context_lines for the local planner")
    parser.add_argument("--errors", action="store_true", help="list the local planner's wrong emotions")
    parser.add_argument("--calibration", action="store_true",
                        help="per-emotion precision/recall by source and confidence (sets presets/emotions.toml)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    dialogues = load_dialogues()
    lines = [ln for _n, s, _r in dialogues for ln in s.lines]
    audio = sum(estimate_speech_seconds(ln.text, ln.language) for ln in lines)
    tts = measure_tts(dialogues) if args.tts else args.tts_rtf * audio
    extra = {"context_lines": args.context} if args.context is not None else {}
    settings = PlannerSettings(use_cache=False, **extra)  # the converted model is still cached
    runs = {"rules": run_planner("rules", dialogues, settings), "local": run_planner("local", dialogues, settings)}
    if args.fp32:
        runs["local fp32"] = run_planner("local", dialogues, settings.model_copy(update={"quantize": False}))

    n_en = sum(ln.language == "en" for ln in lines)
    labels = Counter(r["emotion"] for _n, _s, rs in dialogues for r in rs)
    print(f"{len(lines)} lines in {len(dialogues)} dialogues ({n_en} English, {len(lines) - n_en} Mandarin); "
          f"{audio:.0f} s of estimated speech; most common emotion {labels.most_common(1)[0]}")
    print(f"render compute for these lines: {tts:.1f} s ({'measured, embedded engine' if args.tts else f'{args.tts_rtf} s per audio second'})"
          f" = {1000 * tts / len(lines):.0f} ms per line")
    print()
    print(f"{'planner':<12} {'emotion':>8} {'en':>6} {'zh':>6} {'type':>6} {'ms/line':>8} {'vs render':>10} "
          f"{'set-up s':>9} {'fallbacks':>9}")
    for name, run in runs.items():
        rows = run["rows"]
        print(f"{name:<12} {accuracy(rows, 'emotion'):>8.1%} {accuracy(rows, 'emotion', 'en'):>6.1%} "
              f"{accuracy(rows, 'emotion', 'zh'):>6.1%} {accuracy(rows, 'sentence_type'):>6.1%} "
              f"{1000 * run['seconds'] / len(rows):>8.1f} {run['seconds'] / tts:>10.1%} {run['setup']:>9.1f} "
              f"{run['fallbacks']:>9}")
    if runs["local"]["model"]:
        print(f"\nlocal model: {runs['local']['model']}")
    if args.calibration:
        for name, run in runs.items():
            print_calibration(name, run["rows"])
    if args.errors:
        print()
        for line, lp, record in runs["local"]["rows"]:
            if lp.emotion != record["emotion"]:
                print(f"  {record['emotion']:>9} → {lp.emotion:<9} {line.speaker}: {line.text[:60]}  [{lp.note}]")


if __name__ == "__main__":
    main()
