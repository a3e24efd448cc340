"""Does Kokoro on OpenVINO bf16 sound as good as on onnxruntime int8?  Side by side, line by line.

Not a test: it prints figures.  Every line of the quality scripts (``bench/quality/scripts``: an
English interview, a four-person English panel, a Mandarin dialogue; ``--long N`` adds the first N
lines of the long podcast) is spoken by the Kokoro engine on both runtimes, with the voices
``assign_voices`` gives, and each take is scored with the project's QA helpers: Whisper WER (CER for
Mandarin), speaker similarity (Resemblyzer) to the voice's reference (rendered by the default
runtime), Distill-MOS, and the length difference (the float graph predicts its own durations).

    .venv/bin/python bench/bench_kokoro_runtime_quality.py [--lines N] [--long 0]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

os.environ.setdefault("VIBEVOICE_QA_THREADS", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from vibevoice.engines import SAMPLE_RATE  # noqa: E402
from vibevoice.engines.kokoro import KokoroEngine  # noqa: E402
from vibevoice.qa import mos, speakers  # noqa: E402
from vibevoice.qa.intelligibility import score_line  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402
from vibevoice.voices import assign_voices, load_templates  # noqa: E402

SCRIPTS = pathlib.Path(__file__).resolve().parent / "quality" / "scripts"
RUNTIMES = ("onnxruntime", "openvino")


def lines(long: int, per_script: int | None = None) -> list[tuple[str, object, object]]:
    """(script, line, voice) for every line to speak (the first ``per_script`` of each, if given)."""
    out = []
    for name in ("en_interview", "en_panel4", "zh_dialogue", "en_long_podcast"):
        script = parse_script((SCRIPTS / f"{name}.txt").read_text(encoding="utf-8"))
        voices = assign_voices(script.speakers, script.speaker_languages(), {}, load_templates())
        chosen = script.lines[:long] if name == "en_long_podcast" else script.lines[:per_script]
        out += [(name, line, voices[line.speaker]) for line in chosen]
    return out


def score(engine: KokoroEngine, line, voice, reference: np.ndarray) -> dict[str, float]:
    audio = engine.speak(line.text, voice)
    wer, _ = score_line(audio, SAMPLE_RATE, line.text, line.language)
    return {"err": wer.error_rate, "sim": speakers.similarity(speakers.embed(audio, SAMPLE_RATE), reference),
            "mos": mos.mos(audio, SAMPLE_RATE), "seconds": audio.size / SAMPLE_RATE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", type=int, default=0, help="lines of the long podcast to add")
    parser.add_argument("--lines", type=int, default=None, help="only the first N lines of each script")
    args = parser.parse_args()
    engines = {name: KokoroEngine(threads=2, runtime=name) for name in RUNTIMES}
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    for script, line, voice in lines(args.long, args.lines):
        reference = speakers.voice_reference(voice, line.language)
        for runtime, engine in engines.items():
            rows.setdefault((script, runtime), []).append(score(engine, line, voice, reference))
        got = [rows[(script, r)][-1] for r in RUNTIMES]
        print(f"{script:<16} {line.index:3d} " + " | ".join(
            f"{r[:4]} err {g['err']:.3f} sim {g['sim']:.3f} mos {g['mos']:.2f} {g['seconds']:.2f}s"
            for r, g in zip(RUNTIMES, got)), flush=True)
    print(f"\n{'script':<16} {'runtime':<12} {'lines':>5} {'WER/CER':>8} {'sim':>6} {'MOS':>6} {'audio s':>8}")
    for script in dict.fromkeys(s for s, _ in rows):
        for runtime in RUNTIMES:
            got = rows[(script, runtime)]
            mean = {k: float(np.mean([g[k] for g in got])) for k in got[0]}
            print(f"{script:<16} {runtime:<12} {len(got):5d} {mean['err']:8.3f} {mean['sim']:6.3f} "
                  f"{mean['mos']:6.2f} {sum(g['seconds'] for g in got):8.1f}")


if __name__ == "__main__":
    main()
