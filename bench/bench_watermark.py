"""Watermark benchmark: our spread-spectrum mark side by side with Resemble AI's Perth network.

Renders speech clips with the embedded engine (English and Mandarin voices), exports each as the app
does (mark, then −16 LUFS with the true-peak limiter), applies each transformation to the marked and the
unmarked copy, and prints per transformation and method: marked clips found, their lowest score, and
unmarked clips wrongly found with their highest score (ours: z-score, threshold 5.5; Perth: confidence
of the best 10 s window, threshold 0.5). Then both methods on noise, tones, music-like signals and
silence; the null distribution of our z-scores; each mark's level (SNR, PESQ-WB when ``pesq`` is
installed) and true-peak change; embed/detect real-time factors (and our memory on a long programme).
Perth runs only when ``resemble-perth`` is installed (see ``perth_watermark.py``).

    nice .venv/bin/python bench/bench_watermark.py [--clips 8] [--long-minutes 90]

Figures, not a test. One torch thread throughout (the machine is shared).
"""

from __future__ import annotations

import argparse
import io
import math
import time
import tracemalloc

import numpy as np
import soundfile
import soxr
import torch

from vibevoice import watermark
from vibevoice.engines import SAMPLE_RATE, get_engine
from vibevoice.export import loudness_gain, mp3_encoder, normalise, pcm16
from vibevoice.voices import load_templates

TEXTS = {
    "en": [
        ("Welcome back to the show. Today we talk about lighthouses, the people who kept them, and why the old "
         "stone towers still stand along the coast after two hundred years of storms and salt."),
        ("Do you think a machine can write a novel? Perhaps, once it learns to tell a story, but that is the hard "
         "part, and nobody has quite worked out how to teach it. The dialogue is easy; wanting something is not."),
        ("The fishing boats were tied in neat rows, the gulls circled above the market, and the long grey line "
         "of the breakwater disappeared into the morning fog while the keeper climbed the stairs once more."),
    ],
    "zh": [
        "欢迎收听今天的节目。我们来聊一聊灯塔，聊一聊守护它们的人，以及为什么这些古老的石塔在两百年的风暴之后依然屹立在海岸边。",
        "你觉得人工智能能写小说吗？当然可以，只要它学会讲故事。不过这正是最难的部分，到现在还没有人真正知道该怎么教它。",
    ],
}
VOICES = {"en": ["warm-female", "deep-male", "bright-female", "soft-male-blend", "light-female", "mid-blend"],
          "zh": ["zh-female", "zh-male", "zh-mid"]}


def mp3(audio: np.ndarray, kbps: int) -> np.ndarray:
    encoder = mp3_encoder(kbps)
    data = bytes(encoder.encode(pcm16(audio).tobytes()) + encoder.flush())
    return soundfile.read(io.BytesIO(data), dtype="float32")[0]


def round_trip(audio: np.ndarray, rate: int) -> np.ndarray:
    return soxr.resample(soxr.resample(audio, SAMPLE_RATE, rate), rate, SAMPLE_RATE).astype(np.float32)


def renormalised(audio: np.ndarray) -> np.ndarray:
    return audio * loudness_gain(audio, -23.0)


def crop(rng: np.random.Generator):
    def excerpt(audio: np.ndarray) -> np.ndarray:
        size = 10 * SAMPLE_RATE
        start = int(rng.integers(0, max(1, audio.size - size)))
        return audio[start:start + size]
    return excerpt


def transformations(rng: np.random.Generator) -> dict:
    return {
        "none": lambda a: a,
        **{f"mp3 {k} kbps": (lambda a, k=k: mp3(a, k)) for k in (64, 96, 128, 192)},
        "16 kHz round trip": lambda a: round_trip(a, 16_000),
        "44.1 kHz round trip": lambda a: round_trip(a, 44_100),
        "gain -6 dB": lambda a: a * 10 ** (-6 / 20),
        "gain +6 dB (clipped)": lambda a: np.clip(a * 10 ** (6 / 20), -1.0, 1.0),
        "re-normalised to -23 LUFS": renormalised,
        "mp3 64 kbps, then -23 LUFS": lambda a: renormalised(mp3(a, 64)),
        "random 10 s excerpt": crop(rng),
    }


def render_clips(count: int) -> list[tuple[str, np.ndarray]]:
    engine, templates = get_engine("kokoro"), load_templates()
    langs = ["zh" if i % 3 == 2 else "en" for i in range(count)]  # a third Mandarin
    clips = []
    for i, lang in enumerate(langs):
        n = langs[:i].count(lang)  # the n-th clip in this language: next voice, next pair of texts
        voice = VOICES[lang][n % len(VOICES[lang])]
        text = " ".join(TEXTS[lang][(n + k) % len(TEXTS[lang])] for k in range(2))
        clips.append((f"{voice}/{lang}", engine.speak(text, templates[voice])))
    return clips


class Method:
    """One watermark: ``embed(audio)``, and ``detect(audio, rate) -> (found, score)``."""

    def __init__(self, name, embed, detect, null_fmt):
        self.name, self.embed, self.detect, self.fmt = name, embed, detect, null_fmt


def ours() -> Method:
    def detect(audio, rate):
        detection = watermark.detect(audio, rate)
        return detection.found, detection.score

    return Method("ours", watermark.embed, detect, "{:5.1f}")


def perth() -> Method | None:
    try:
        import perth_watermark
        perth_watermark.network()
    except Exception as error:  # noqa: BLE001 - any failure means: compare without it
        print(f"(Perth left out: {error})")
        return None

    def embed(audio):
        block = 30 * SAMPLE_RATE  # Perth's receptive field is ~0.2 s: 1 s of context per side suffices
        out = audio.copy()
        for start in range(0, audio.size, block):
            lo, end, hi = max(0, start - SAMPLE_RATE), min(audio.size, start + block), min(audio.size, start + block + SAMPLE_RATE)
            out[start:end] += perth_watermark.residual(audio[lo:hi], SAMPLE_RATE)[start - lo:end - lo]
        return out

    def detect(audio, rate):
        size = 10 * rate
        scores = [perth_watermark.confidence(audio[i:i + size], rate) for i in range(0, max(1, audio.size - size // 2), size)]
        best = max([s for s in scores if s is not None], default=0.0)
        return best >= 0.5, best

    return Method("perth", embed, detect, "{:5.2f}")


def exported(audio: np.ndarray, method: Method | None) -> np.ndarray:
    """What the exporter writes: the mark (optionally), then −16 LUFS and the true-peak limiter."""
    audio = method.embed(audio) if method else audio
    return (audio * normalise(audio)).astype(np.float32)


def non_speech(rng: np.random.Generator, seconds: float = 20.0) -> dict[str, np.ndarray]:
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    white = rng.standard_normal(n)
    notes = [110 * 2 ** (k / 12) for k in rng.integers(0, 36, int(seconds * 4))]
    note_t = np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE
    melody = np.concatenate([sum(np.sin(2 * np.pi * f * h * note_t) * np.exp(-3 * note_t) / h for h in range(1, 8))
                             for f in notes])
    signals = {
        "white noise": white,
        "pink noise": np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20)), n),
        "sawtooth 440 Hz": (440 * t) % 1 - 0.5,
        "square 440 Hz": np.sign(np.sin(2 * np.pi * 440 * t)),
        "chord on 880 Hz": sum(np.sin(2 * np.pi * 880 * r * t) for r in (1, 1.26, 1.5, 2)),
        "harmonic tone 110 Hz": sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 20)),
        "sweep 50 Hz-4 kHz": np.sin(2 * np.pi * (50 * t + 200 * t ** 2 / seconds * 20)),
        "random melody": melody,
    }
    out = {k: (v * loudness_gain(v.astype(np.float32))).astype(np.float32) for k, v in signals.items()}
    out["dither (-90 dBFS)"] = (white * 10 ** (-90 / 20)).astype(np.float32)
    out["silence"] = np.zeros(n, np.float32)
    return out


def pesq_wb(clean: np.ndarray, marked: np.ndarray) -> float | None:
    try:
        from pesq import pesq
    except ImportError:
        return None
    return float(pesq(16_000, soxr.resample(clean, SAMPLE_RATE, 16_000), soxr.resample(marked, SAMPLE_RATE, 16_000), "wb"))


def true_peak_db(audio: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(soxr.resample(audio, SAMPLE_RATE, 4 * SAMPLE_RATE)).max()))


def window_z(audio: np.ndarray) -> list[float]:
    size = int(watermark.WINDOW_SECONDS * SAMPLE_RATE)
    return [watermark.detect(audio[i:i + size], SAMPLE_RATE).score for i in range(0, audio.size - size // 2, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-minutes", type=float, default=90.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m for m in (ours(), perth()) if m]

    started = time.perf_counter()
    raw = render_clips(args.clips)
    print(f"{len(raw)} clips, {sum(a.size for _, a in raw) / SAMPLE_RATE:.0f} s of speech, "
          f"rendered in {time.perf_counter() - started:.0f} s: {', '.join(n for n, _ in raw)}\n")
    clean = [exported(a, None) for _, a in raw]
    marked = {m.name: [exported(a, m) for _, a in raw] for m in methods}

    print(f"{'transformation':28s}" + "".join(f" | {m.name + ': found  min  false+  max null':38s}" for m in methods))
    null_z: list[float] = []
    for name, transform in transformations(np.random.default_rng(args.seed)).items():
        row = f"{name:28s}"
        for m in methods:
            hits = [m.detect(transform(a), SAMPLE_RATE) for a in marked[m.name]]
            nulls = [m.detect(transform(a), SAMPLE_RATE) for a in clean]
            row += (f" | {m.name:>5s}: {sum(f for f, _ in hits):>2d}/{len(hits):<2d} {m.fmt.format(min(s for _, s in hits))}"
                    f"  {sum(f for f, _ in nulls):>2d}/{len(nulls):<2d}  {m.fmt.format(max(s for _, s in nulls))}      ")
        print(row)
        null_z += [z for a in clean for z in window_z(transform(a))]

    print("\nunmarked non-speech, 20 s each (loud ones at -16 LUFS): score (found?)")
    for name, audio in non_speech(np.random.default_rng(args.seed)).items():
        cells = []
        for m in methods:
            found, score = m.detect(audio, SAMPLE_RATE)
            cells.append(f"{m.name} {m.fmt.format(score)}{' FOUND' if found else ''}")
        null_z += window_z(audio)
        print(f"  {name:24s} " + "   ".join(cells))

    z = np.array(null_z)
    print(f"\nour null z over {z.size} unmarked 10 s windows: mean {z.mean():+.2f}, sd {z.std():.2f}, max {z.max():.2f}; "
          f"share > 2: {np.mean(z > 2):.4f} (Gaussian 0.0228), > 3: {np.mean(z > 3):.4f} (0.0013)")
    tail = 0.5 * math.erfc(watermark.Z_THRESHOLD / max(z.std(), 1.0) / math.sqrt(2))
    tests = 1 + int(90 * 60 / watermark.WINDOW_SECONDS)
    print(f"threshold z {watermark.Z_THRESHOLD}: P(one test) ≈ {tail:.1e}; 90-minute file ({tests} tests) ≈ {tests * tail:.1e}")

    print("\nmark level (the clip at the exporter's gain, with and without the mark; true peak before the limiter):")
    for (name, a) in raw:
        gain = normalise(a)
        cells = []
        for m in methods:
            plain, with_mark = a * gain, m.embed(a) * gain
            snr = 10 * np.log10(np.sum(plain ** 2) / np.sum((with_mark - plain) ** 2))
            pesq = pesq_wb(plain, with_mark)
            cells.append(f"{m.name}: SNR {snr:4.1f} dB, PESQ-WB {'n/a' if pesq is None else f'{pesq:.2f}'}, "
                         f"peak {true_peak_db(plain):+.2f}→{true_peak_db(with_mark):+.2f} dBTP")
        print(f"  {name:20s} " + " | ".join(cells))

    programme = np.concatenate(clean)
    seconds = programme.size / SAMPLE_RATE
    for m in methods:
        m.embed(programme[:SAMPLE_RATE])  # load models outside the timing
        started = time.perf_counter()
        marked_programme = m.embed(programme)
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        found, _ = m.detect(marked_programme, SAMPLE_RATE)
        detect_s = time.perf_counter() - started
        print(f"{m.name:5s} on {seconds:.0f} s, 1 thread: embed RTF {embed_s / seconds:.4f}, detect RTF "
              f"{detect_s / seconds:.4f}, found={found}")

    long = np.resize(programme, int(args.long_minutes * 60 * SAMPLE_RATE))
    tracemalloc.start()
    started = time.perf_counter()
    marked_long = watermark.embed(long)
    embed_s = time.perf_counter() - started
    embed_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.reset_peak()
    started = time.perf_counter()
    detection = watermark.detect(marked_long, SAMPLE_RATE)
    detect_s = time.perf_counter() - started
    detect_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20 - marked_long.nbytes / 2 ** 20
    tracemalloc.stop()
    print(f"ours on a {args.long_minutes:.0f}-minute programme ({long.nbytes / 2 ** 20:.0f} MB): embed {embed_s:.1f} s, "
          f"peak {embed_peak:.0f} MB of which {marked_long.nbytes / 2 ** 20:.0f} MB is the output; detect {detect_s:.1f} s, "
          f"{detect_peak:.0f} MB beyond the input; found={detection.found}, z {detection.score}")


if __name__ == "__main__":
    main()
