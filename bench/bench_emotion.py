"""Emotion benchmark: does each emotion's recipe move its acoustic correlates, at what cost?

For every emotion at full strength (an explicit hint, intensity 1.0: ``delivery.line_delivery`` with
``emotion_source="hint"``), each line is rendered by the embedded engine next to the same line
neutral, and measured relative to it: F0 median and F0 range (10th-90th percentile, pyin) in
semitones, level in dB (active samples), speaking rate (neutral length / length), and with ``--qa``
the WER/CER (faster-whisper) and Distill-MOS difference. Lines are the texts of
``bench/data/planner_labels.jsonl`` (English, Mandarin), spoken by one voice preset per language.

Also: the model's durations (word times) against Whisper's word times on the same neutral audio
(median boundary error, English), and the engine's speed with the controls fed neutral vs the same
conversion without the prosody pass (RTF side by side, interleaved).

Run: ``nice .venv/bin/python bench/bench_emotion.py [--en 20] [--zh 10] [--emotions excited,sad] [--qa]``.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from vibevoice import delivery
from vibevoice.engines.base import Segment
from vibevoice.engines.kokoro import KokoroEngine
from vibevoice.plan import rules
from vibevoice.plan.schema import LinePlan
from vibevoice.voices import load_templates

DATA = Path(__file__).parent / "data" / "planner_labels.jsonl"
SR = 24000
TARGETS = {"excited": "F0 >= +2 st, range >= +30 %", "sad": "F0 <= -1 st, >= 10 % slower", "angry": "energy >= +3 dB"}


def lines(language: str, count: int) -> list[str]:
    texts = []
    for raw in DATA.read_text(encoding="utf-8").splitlines():
        text = re.sub(r"^\s*\[[^\]]*\]\s*", "", json.loads(raw)["line"]).strip()
        text = re.sub(r"^\([^)]*\)\s*|^（[^）]*）\s*", "", text)
        is_zh = bool(re.search(r"[\u4e00-\u9fff]", text))
        if text and is_zh == (language == "zh"):
            texts.append(text)
    return texts[:count]


def render(engine, voice, text: str, language: str, emotion: str) -> np.ndarray:
    plan = LinePlan(line_index=0, emotion=emotion, intensity=1.0, emotion_source="hint",
                    rate=rules.rate_for(emotion, 1.0), sentence_type=rules.sentence_type(text))
    wanted = delivery.line_delivery(voice, 1.0, plan)
    return engine.synthesize([Segment(0, "A", text, language, wanted)], {"A": voice}).audio


def f0_stats(audio: np.ndarray) -> tuple[float, float]:
    import librosa

    f0, voiced, _ = librosa.pyin(audio, fmin=70, fmax=600, sr=SR, frame_length=1200, hop_length=480)
    st = 12 * np.log2(f0[voiced & ~np.isnan(f0)])
    return float(np.median(st)), float(np.percentile(st, 90) - np.percentile(st, 10))


def level_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(audio[np.abs(audio) > 1e-3] ** 2)))


def measure(audio, text, language, qa: bool) -> dict:
    mean, spread = f0_stats(audio)
    row = {"f0": mean, "range": spread, "db": level_db(audio), "len": audio.size / SR}
    if qa:
        from vibevoice.qa.intelligibility import score_line
        from vibevoice.qa.mos import mos

        row["err"] = score_line(audio, SR, text, language)[0].error_rate
        row["mos"] = mos(audio, SR)
    return row


def emotion_table(engine, voices, languages, emotions, counts, qa) -> None:
    for language in languages:
        voice, texts = voices[language], lines(language, counts[language])
        neutral = [measure(render(engine, voice, t, language, "neutral"), t, language, qa) for t in texts]
        print(f"\n{language}: {len(texts)} lines, voice {voice.id}; each vs the same line neutral (mean)")
        print(f"  {'emotion':<10} {'F0 st':>7} {'range':>7} {'dB':>6} {'rate':>6}" + (f" {'dERR':>6} {'dMOS':>6}" if qa else ""))
        if qa:
            print(f"  {'(neutral)':<10} {'':>7} {'':>7} {'':>6} {'':>6} {np.mean([r['err'] for r in neutral]):>6.3f} "
                  f"{np.mean([r['mos'] for r in neutral]):>6.2f}")
        for emotion in emotions:
            rows = [measure(render(engine, voice, t, language, emotion), t, language, qa) for t in texts]
            d = lambda k: np.mean([r[k] - n[k] for r, n in zip(rows, neutral)])  # noqa: E731
            spread = np.mean([r["range"] / n["range"] - 1 for r, n in zip(rows, neutral)])
            rate = np.mean([n["len"] / r["len"] for r, n in zip(rows, neutral)])
            extra = f" {d('err'):>+6.3f} {d('mos'):>+6.2f}" if qa else ""
            print(f"  {emotion:<10} {d('f0'):>+7.2f} {spread:>+7.0%} {d('db'):>+6.1f} {rate:>6.2f}{extra}"
                  f"   {TARGETS.get(emotion, '')}")


def word_time_error(engine, voice, texts) -> None:
    from vibevoice.qa.recognise import align_words

    errors = []
    for text in texts:
        chunk = engine.synthesize([Segment(0, "A", text, "en")], {"A": voice})
        heard = align_words(chunk.audio, SR, text, "en")
        said = {re.sub(r"\W", "", w[0].lower()): w for w in chunk.words}
        for word in heard:
            mine = said.get(re.sub(r"\W", "", word.text.lower()))
            if mine:
                errors += [abs(mine[1] - word.start), abs(mine[2] - word.end)]
    print(f"\nword boundaries, durations output vs Whisper (en, {len(errors) // 2} matched words): "
          f"median error {1000 * np.median(errors):.0f} ms, 90th percentile {1000 * np.percentile(errors, 90):.0f} ms")


def speed(engine, voice, texts, rounds: int = 2) -> None:
    """RTF of the graph with neutral controls vs the same conversion without them, interleaved."""
    import onnxruntime as ort

    from vibevoice.engines import kokoro_model

    original = kokoro_model.add_prosody_controls
    kokoro_model.add_prosody_controls = lambda graph: None
    try:
        plain = ort.InferenceSession(kokoro_model.convert(kokoro_model.model_bytes()), kokoro_model.session_options(2),
                                     providers=["CPUExecutionProvider"])
    finally:
        kokoro_model.add_prosody_controls = original
    bare = KokoroEngine(threads=2)
    bare._session = plain
    seconds, audio = {"controls": 0.0, "without": 0.0}, 0.0
    for _ in range(rounds):
        for text in texts:
            for name, e in (("controls", engine), ("without", bare)):
                t0 = time.perf_counter()
                out = e.speak(text, voice)
                seconds[name] += time.perf_counter() - t0
            audio += out.size / SR
    print(f"\nspeed ({len(texts)} lines x {rounds}, interleaved): RTF with controls {seconds['controls'] / audio:.3f}, "
          f"without {seconds['without'] / audio:.3f} (ratio {seconds['controls'] / seconds['without']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--en", type=int, default=20)
    parser.add_argument("--zh", type=int, default=10)
    parser.add_argument("--emotions", default=",".join(e for e in rules.EMOTIONS if e != "neutral"))
    parser.add_argument("--voices", default="warm-female,zh-female", help="one preset per language (en,zh)")
    parser.add_argument("--qa", action="store_true", help="also WER/CER and Distill-MOS (slower)")
    parser.add_argument("--skip", default="", help="comma list of: table,words,speed")
    args = parser.parse_args()
    templates = load_templates()
    en_voice, zh_voice = (templates[v] for v in args.voices.split(","))
    engine = KokoroEngine(threads=2)
    skip = set(args.skip.split(","))
    counts = {"en": args.en, "zh": args.zh}
    if "table" not in skip:
        emotion_table(engine, {"en": en_voice, "zh": zh_voice}, [k for k in counts if counts[k]],
                      args.emotions.split(","), counts, args.qa)
    if "words" not in skip:
        word_time_error(engine, en_voice, lines("en", min(10, args.en or 10)))
    if "speed" not in skip:
        speed(engine, en_voice, lines("en", 6))


if __name__ == "__main__":
    main()
