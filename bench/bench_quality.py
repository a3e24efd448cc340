"""Quality benchmark: render the evaluation scripts with the embedded engines, score every line, report.

For each script in ``bench/quality/scripts`` (English and Mandarin, 2-4 speakers, one English
podcast of over ten minutes) it creates a job with voices from ``presets/voices``, renders and
exports it exactly as the CLI does, then runs ``vibevoice.qa.score_job``. It writes
``bench/reports/quality/report.json`` (every line's scores), ``report.md`` (summaries per script,
speaker, engine and voice preset, beside render RTF and peak memory) and PNG plots: per-line
WER/CER, attribution margin, similarity to each speaker's early lines, and loudness, over time.

It also measures what the per-take gate costs and how its default thresholds behave on clean
renders (how many good lines it would reject), and Whisper tiny.en against base on English lines.

Run: ``nice .venv/bin/python bench/bench_quality.py [--quick]`` (``--quick``: two short scripts, first
six lines each). Figures, not a test; the full run takes about half an hour on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("VIBEVOICE_PLANNER", "rules")
os.environ.setdefault("VIBEVOICE_QA_THREADS", "2")

from vibevoice.engines import SAMPLE_RATE
from vibevoice.export import export_job, layout
from vibevoice.job.runner import Job
from vibevoice.qa import check, recognise, speakers
from vibevoice.qa.intelligibility import error_rate
from vibevoice.qa.report import line_audio, score_job, table
from vibevoice.qa.report import number as num
from vibevoice.qa.report import percent as pct
from vibevoice.script import parse_script
from vibevoice.voices import assign_voices, load_templates

ROOT = Path(__file__).resolve().parent
SCRIPTS = ROOT / "quality" / "scripts"
OUT = ROOT / "reports" / "quality"
# (case name, script file, speaker → voice preset; unnamed speakers get the default voices)
CASES = [
    ("en_interview", "en_interview.txt", {"Host": "deep-male", "Guest": "bright-female"}),
    ("en_interview_piper", "en_interview.txt", {"Host": "piper-joe", "Guest": "warm-female"}),
    ("en_panel4", "en_panel4.txt", {}),
    ("zh_dialogue", "zh_dialogue.txt", {}),
    ("en_long_podcast", "en_long_podcast.txt", {"Maya": "bright-female", "Tom": "deep-male", "Ines": "warm-female"}),
]
QUICK = {"en_interview", "zh_dialogue"}


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_case(name: str, script_file: str, requested: dict[str, str], work: Path, quick: bool) -> dict:
    text = (SCRIPTS / script_file).read_text("utf-8")
    if quick:
        text = "\n".join(text.splitlines()[:6]) + "\n"
    parsed = parse_script(text)
    voices = assign_voices(parsed.speakers, parsed.speaker_languages(), requested, load_templates())
    job = Job.create(work / name, text, voices)
    started = time.perf_counter()
    job.render()
    export_job(job, work / f"{name}.mp3")
    render_seconds = time.perf_counter() - started
    render_peak = peak_mb()
    audio_seconds = sum(c.samples for c in job.manifest.chunks) / SAMPLE_RATE
    started = time.perf_counter()
    report = score_job(job.dir)
    score_seconds = time.perf_counter() - started
    print(f"{name}: {audio_seconds:.0f} s of speech, render RTF {render_seconds / audio_seconds:.2f}, "
          f"scored in {score_seconds:.0f} s", file=sys.stderr)
    starts: dict[int, float] = {}
    for chunk, start in layout(job)[0]:
        for line_index, begin, _ in chunk.spans or [(chunk.line_index, 0, 0)]:
            starts.setdefault(line_index, (start + begin) / SAMPLE_RATE)
    return {"name": name, "script": script_file, "report": report.model_dump(), "audio_seconds": round(audio_seconds, 1),
            "render_seconds": round(render_seconds, 1), "rtf": round(render_seconds / audio_seconds, 3),
            "score_seconds": round(score_seconds, 1), "peak_rss_mb_render": render_peak,
            "peak_rss_mb_score": peak_mb(), "line_starts": [starts[r.index] for r in report.lines],
            "job_dir": str(job.dir)}


def model_comparison(case: dict, limit: int = 12) -> dict:
    """Whisper tiny.en vs base on the same English lines, and check_take's cost per line."""
    job = Job.open(Path(case["job_dir"]))
    audio = line_audio(job)
    lines = [ln for ln in job.script.lines if ln.language == "en"][:limit]
    out = {}
    for model in ("tiny.en", "base"):
        recognise.transcribe(audio[lines[0].index][: SAMPLE_RATE], SAMPLE_RATE, "en", model=model)  # load first
        started, errors, words = time.perf_counter(), 0, 0
        for ln in lines:
            scored = error_rate(ln.text, recognise.transcribe(audio[ln.index], SAMPLE_RATE, "en", model=model).text, "en")
            errors += scored.substitutions + scored.deletions + scored.insertions
            words += scored.reference_length
        out[model] = {"lines": len(lines), "wer": round(errors / words, 4),
                      "seconds_per_line": round((time.perf_counter() - started) / len(lines), 3)}
    references = {s: speakers.voice_reference(v) for s, v in job.manifest.voices.items()}
    started = time.perf_counter()
    for ln in lines:
        check.check_take(audio[ln.index], ln.text, ln.language, ln.speaker, references)
    out["check_take_seconds_per_line"] = round((time.perf_counter() - started) / len(lines), 3)
    out["mean_line_seconds"] = round(float(np.mean([audio[ln.index].size / SAMPLE_RATE for ln in lines])), 2)
    return out


def gate_behaviour(cases: list[dict]) -> dict:
    """How the default thresholds treat clean renders, and the distributions they were chosen from."""
    limits = check.Thresholds()
    rows = [r for c in cases for r in c["report"]["lines"]]
    rejected = []
    for r in rows:
        errors = (r["substitutions"] or 0) + (r["deletions"] or 0) + (r["insertions"] or 0)
        bad_words = r["error_rate"] > limits.max_error_rate and errors >= min(limits.min_errors, max(1, r["reference_length"]))
        bad_voice = r["similarity"] < limits.min_similarity or (r["margin"] is not None and r["margin"] < limits.min_margin)
        if bad_words or bad_voice:
            rejected.append(f"{r['speaker']} ({r['voice']}): {r['text'][:50]} "
                            f"[err {r['error_rate']:.2f}, sim {r['similarity']:.2f}, margin {r['margin']}]")
    sims = np.array([r["similarity"] for r in rows])
    others = np.array([r["similarity"] - r["margin"] for r in rows if r["margin"] is not None])
    margins = np.array([r["margin"] for r in rows if r["margin"] is not None])
    errs = np.array([r["error_rate"] for r in rows])
    short = np.array([r["similarity"] for r in rows if r["seconds"] < 2.0])
    return {"lines": len(rows), "rejected": len(rejected), "rejected_lines": rejected,
            "own_similarity": _quantiles(sims), "own_similarity_short_lines": _quantiles(short),
            "best_other_similarity": _quantiles(others), "margin": _quantiles(margins), "error_rate": _quantiles(errs)}


def _quantiles(values: np.ndarray) -> dict:
    if not values.size:
        return {}
    return {k: round(float(np.percentile(values, q)), 3) for k, q in
            (("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100))} | {"n": int(values.size)}


def plots(cases: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    specs = [("wer", "error_rate", "WER / CER per line", "bar"), ("margin", "margin", "attribution margin", "dots"),
             ("drift", "drift", "similarity to the speaker's first 3 lines", "dots"),
             ("loudness", "lufs", "line loudness (LUFS, before normalisation)", "dots")]
    for file, key, label, kind in specs:
        fig, axes = plt.subplots(len(cases), 1, figsize=(8, 1.9 * len(cases)), squeeze=False)
        for ax, case in zip(axes[:, 0], cases):
            rows = case["report"]["lines"]
            if kind == "bar":
                ax.bar(range(1, len(rows) + 1), [r[key] or 0 for r in rows], color="tab:red")
                ax.set_xlabel("line", fontsize=7)
            else:
                voices = {r["speaker"]: r["voice"] for r in rows}
                for n, (speaker, voice) in enumerate(voices.items(), 1):
                    points = [(t / 60, r[key]) for t, r in zip(case["line_starts"], rows)
                              if r["speaker"] == speaker and r[key] is not None]
                    name = speaker if speaker.isascii() else f"S{n}"  # the default font has no Han glyphs
                    if points:
                        ax.plot(*zip(*points), "o-", ms=3, lw=0.8, label=f"{name} ({voice})")
                ax.set_xlabel("minutes", fontsize=7)
                ax.legend(fontsize=6, loc="best", ncol=4)
            if key == "margin":
                ax.axhline(0, color="grey", lw=0.6)  # below: closer to another speaker than to its own
            ax.set_title(f"{case['name']}: {label}", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{file}.png", dpi=72)
        plt.close(fig)
        written.append(f"{file}.png")
    return written


def markdown(cases: list[dict], comparison: dict, gate: dict, images: list[str], quick: bool) -> str:
    out = ["# Speech quality benchmark", "",
           (f"Generated by `bench/bench_quality.py{' --quick' if quick else ''}` on {time.strftime('%Y-%m-%d')}, "
           f"{os.cpu_count()} CPU cores shared with other work (render and scoring with 2 threads). "
           "Peak memory is the process's peak RSS so far (models stay loaded between scripts)."), "",
           "## Per script", ""]
    out += table(["script", "speech", "render RTF", "peak RSS (render / score)", "WER", "CER", "attribution",
                  "margin mean / min", "drift min", "MOS", "loudness spread", "true peak", "seams", "scoring time"],
                 [[c["name"], f"{c['audio_seconds'] / 60:.1f} min", num(c["rtf"]),
                   f"{c['peak_rss_mb_render']:.0f} / {c['peak_rss_mb_score']:.0f} MB",
                   pct(c["report"]["overall"]["wer"]), pct(c["report"]["overall"]["cer"]),
                   pct(c["report"]["overall"]["attribution_accuracy"]),
                   f"{num(c['report']['overall']['mean_margin'])} / {num(c['report']['overall']['min_margin'])}",
                   num(c["report"]["overall"]["min_drift"]), num(c["report"]["overall"]["mos"]),
                   f"{num(c['report']['loudness_spread'])} LU", f"{num(c['report']['true_peak_db'])} dBTP",
                   len(c["report"]["seams"]), f"{c['score_seconds']:.0f} s"] for c in cases])
    out += ["", "## Per speaker, engine and voice preset", ""]
    out += table(["script", "speaker", "engine", "voice", "lines", "WER/CER", "attribution", "similarity",
                  "margin min", "drift mean / min", "MOS", "words or syll./s", "LUFS"],
                 [[c["name"], s["speaker"], s["engine"], s["voice"], s["lines"], pct(s["wer"] if s["wer"] is not None
                   else s["cer"]), pct(s["attribution_accuracy"]), num(s["mean_similarity"]), num(s["min_margin"]),
                   f"{num(s['mean_drift'])} / {num(s['min_drift'])}", num(s["mos"]), num(s["rate"]), num(s["lufs"])]
                  for c in cases for s in c["report"]["speakers"]])
    by_voice: dict[str, list] = {}
    for c in cases:
        for r in c["report"]["lines"]:
            by_voice.setdefault(f"{r['voice']} ({r['language']})", []).append(r)
    out += ["", "## Per voice preset (all scripts)", ""]
    out += table(["voice", "lines", "error rate", "similarity", "MOS"],
                 [[v, len(rs), pct(sum((r["substitutions"] or 0) + (r["deletions"] or 0) + (r["insertions"] or 0)
                                       for r in rs) / max(1, sum(r["reference_length"] or 0 for r in rs))),
                   num(float(np.mean([r["similarity"] for r in rs]))), num(float(np.mean([r["mos"] for r in rs])))]
                  for v, rs in sorted(by_voice.items())])
    timing = {m: sum(c["report"]["timings"].get(m, 0) for c in cases) / sum(len(c["report"]["lines"]) for c in cases)
              for m in cases[0]["report"]["timings"]}
    out += ["", "## Cost of scoring (seconds per line, all scripts)", ""]
    out += table(list(timing), [[f"{v:.2f}" for v in timing.values()]])
    if comparison:
        out += ["", (f"## Whisper models on the same English lines ({comparison['tiny.en']['lines']} lines of "
                f"{comparison['mean_line_seconds']} s on average)"), ""]
        out += table(["model", "WER", "seconds per line"],
                     [[m, pct(comparison[m]["wer"]), comparison[m]["seconds_per_line"]] for m in ("tiny.en", "base")])
        out += ["", (f"`check_take` (tiny.en + one speaker embedding): {comparison['check_take_seconds_per_line']} s "
                "per English line.")]
    t = check.Thresholds()
    out += ["", "## The per-take gate on clean renders", "",
            (f"Default thresholds: error rate > {t.max_error_rate:.0%} with ≥ {t.min_errors} errors, similarity < "
            f"{t.min_similarity}, margin < {t.min_margin}. It would reject {gate['rejected']} of {gate['lines']} "
            "clean lines:"), ""]
    out += [f"- {line}" for line in gate["rejected_lines"]] or ["- none"]
    out += ["", ("Distributions over all clean lines (similarity is to the line's own voice reference; "
            "best other = the closest other speaker of the cast; a wrong-voice take's margin is minus the "
            "margin of the voice it was really spoken in):"), ""]
    out += table(["quantity", "min", "p5", "median", "p95", "max", "n"],
                 [[k, *[gate[k].get(q, "–") for q in ("min", "p5", "median", "p95", "max", "n")]]
                  for k in ("own_similarity", "own_similarity_short_lines", "best_other_similarity", "margin",
                            "error_rate")])
    seams = [f"- {c['name']}: {s['kind']} at {s['time']:.2f} s ({s['detail']})" for c in cases for s in c["report"]["seams"]]
    out += ["", "## Seams", "", *(seams or ["No clicks, bursts or unplanned silences found at any join."])]
    worst = sorted((r for c in cases for r in c["report"]["lines"]), key=lambda r: -r["error_rate"])[:8]
    out += ["", "## Lines with the highest error rate", ""]
    out += table(["voice", "err", "script", "heard"],
                 [[r["voice"], pct(r["error_rate"]), r["text"][:70], (r["transcript"] or "")[:70]] for r in worst])
    out += ["", "## Plots", "", *[f"![{i}]({i})" for i in images]]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short scripts, six lines each")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if not args.quick or c[0] in QUICK]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_case(name, file, voices, Path(tmp), args.quick) for name, file, voices in cases]
        comparison = model_comparison(results[0])
    gate = gate_behaviour(results)
    images = plots(results, args.out)
    for r in results:
        r.pop("job_dir")
    (args.out / "report.json").write_text(json.dumps({"quick": args.quick, "cases": results, "whisper": comparison,
                                                      "gate": gate}, indent=1, ensure_ascii=False), "utf-8")
    (args.out / "report.md").write_text(markdown(results, comparison, gate, images, args.quick), "utf-8")
    print(f"wrote {args.out}/report.md, report.json and {len(images)} plots", file=sys.stderr)


if __name__ == "__main__":
    main()
