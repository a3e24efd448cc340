"""Kokoro runtime benchmark: stock kokoro-onnx vs our int8 graph (onnxruntime) vs our float graph (OpenVINO).

Not a test: it prints figures.  All of them run the same model (joined from our
wheels), the same voice array and the same phoneme strings (a ~1-minute
English passage, misaki en-us G2P, one sentence per call), taking turns
sentence by sentence in each of ``--runs`` rounds in one process.  RTF = synthesis wall time / seconds
of audio the model produced (the untrimmed length, identical for all three;
kokoro-onnx trims and re-pads its output, so its own length is not used).

It then checks that the fast graph sounds like the shipped one, for a female
(jf_alpha) and a male (jm_kumo) voice: output length, signal-to-difference
ratio and log-spectrogram correlation, next to the "noise floor" of the shipped
graph itself when its style vector is scaled by (1 + 1e-6).

Then (``--openvino``, on by default where OpenVINO is installed) the same for the float graph on
OpenVINO in bf16 (and ``--f32``), with levers measured side by side (``--levers``): our int8 graph
without :mod:`vibevoice.engines.kokoro_ops`' rewrite of the decoder's means, the snake's Sin as a
polynomial vs OpenVINO's Sin, one thread vs two.  Last, a physical limit: multiply-accumulates of
the float graph's Conv/ConvTranspose/MatMul/Gemm/LSTM per second of audio, against this CPU's bf16
matrix peak (see :func:`peak_macs`).

With ``--lanes`` it measures throughput over a job instead (``lanes_table``): 12 sentences rendered
by stock, by ours one after another (2 threads, 1 thread) and by ours on parallel single-thread lanes
(``vibevoice.engines.kokoro_lanes``; ``--lane-shapes``: also a session per lane, and one 2-thread
session shared), in groups of two sentences per lane that take turns, with each row's CPU time; then
the engine end to end on the text (phonemisation included), serial vs on lanes, to see whether one
lane's phonemisation (Python, under the GIL) overlaps the other lane's inference; then (OpenVINO
installed, no ``--no-openvino``) the OpenVINO path serial vs one single-thread stream per lane.

    .venv/bin/python bench/bench_kokoro_runtime.py [--runs 3] [--threads 2] [--f32]
    PYTHONPATH=. .venv/bin/python bench/bench_kokoro_runtime.py --lanes --runs 2 [--no-openvino]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from vibevoice.engines import kokoro_int8, kokoro_model, kokoro_openvino, kokoro_ops
from vibevoice.engines.kokoro import neutral_arrays

SAMPLE_RATE = 24_000

# misaki en-us phonemes for a 9-sentence passage (~66 s of speech), each < 400.
PASSAGE = [
    "dˈu ju θˈɪŋk ˈAˌI kæn ɹˈIt nˈɑvᵊlz? ʃˈʊɹ, wˈʌns ɪt lˈɜɹnz tə tˈɛl stˈɔɹiz.",
    "ði ˈOld lˈIthˌWs kˈipəɹ klˈImd ðə spˈIɹəl stˈɛɹz ˈɛvəɹi ˈivnɪŋ, kˈWntɪŋ ˈiʧ stˈɛp æz ɪf ɪt mˌIt hæv ʧˈAnʤd sˈɪns ðə nˈIt bəfˈɔɹ.",
    "fɹˌʌm ðə tˈɑp, hi kʊd sˈi ðə hˈOl hˈɑɹbəɹ: ðə fˈɪʃɪŋ bˈOts tˈId ɪn nˈit ɹˈOz, ðə ɡˈʌlz sˈɜɹkᵊlɪŋ əbˈʌv ðə mˈɑɹkət, ænd ðə lˈɔŋ ɡɹˈA lˈIn ʌv ðə bɹˈAkwˌɔTəɹ.",
    "nˈObˌɑdi ɪn ðə vˈɪlɪʤ ɹəmˈɛmbəɹd wˌɛn hi hæd fˈɜɹst əɹˈIvd, ænd hi nˈɛvəɹ ˈɔfəɹd tə tˈɛl ðˌɛm.",
    "ˌɔn stˈɔɹmi nˈIts, ðə bˈim swˈɛpt əkɹˈɔs ðə wˈɔTəɹ lˈIk ɐ slˈO, pˈAʃənt hˈænd, sˈɜɹʧɪŋ fɔɹ ˈɛniwˌʌn hˌu mˌIt bi lˈɔst ˈWt ðɛɹ ɪn ðə dˈɑɹk.",
    "wˈʌn wˈɪntəɹ, ɐ jˈʌŋ wˈʊmən nˈɑkt ˌɔn hɪz dˈɔɹ ænd ˈæskt wˈɛðəɹ hi nˈidᵻd hˈɛlp.",
    "hˌi lˈʊkt æt hɜɹ fɔɹ ɐ lˈɔŋ mˈOmᵊnt, ðˈɛn stˈɛpt əsˈId ænd lˈɛt hɜɹ ˈɪn, bəkˈʌz ðə wˈɪnd wʌz kˈOld ænd ðə kˈɛTᵊl wʌz ˌɔlɹˈɛdi wˈɔɹm.",
    "ʃˌi stˈAd fɔɹ θɹˈi jˈɪɹz, ænd bI ði ˈɛnd ʌv ðˌɛm ʃi nˈu ˈɛvəɹi kɹˈik ʌv ðə tˈWəɹ ænd ˈɛvəɹi mˈud ʌv ðə sˈi.",
    "wˌɛn hi fˈInᵊli ɹətˈIəɹd, hi hˈændᵻd hɜɹ ðə hˈɛvi bɹˈæs kˈi wɪðˈWt ɐ wˈɜɹd, ænd ʃi ˌʌndəɹstˈʊd ɪɡzˈæktli wˌʌt ɪt mˈɛnt.",
]

# The passage as written (what the engine phonemises itself, for the end-to-end rows of --lanes).
TEXT = [
    "Do you think AI can write novels? Sure, once it learns to tell stories.",
    ("The old lighthouse keeper climbed the spiral stairs every evening, counting each step as if it might "
     "have changed since the night before."),
    ("From the top, he could see the whole harbor: the fishing boats tied in neat rows, the gulls circling "
     "above the market, and the long gray line of the breakwater."),
    "Nobody in the village remembered when he had first arrived, and he never offered to tell them.",
    ("On stormy nights, the beam swept across the water like a slow, patient hand, searching for anyone "
     "who might be lost out there in the dark."),
    "One winter, a young woman knocked on his door and asked whether he needed help.",
    ("He looked at her for a long moment, then stepped aside and let her in, because the wind was cold "
     "and the kettle was already warm."),
    ("She stayed for three years, and by the end of them she knew every creak of the tower and every "
     "mood of the sea."),
    ("When he finally retired, he handed her the heavy brass key without a word, and she understood "
     "exactly what it meant."),
]

Synth = Callable[[str], np.ndarray]


def feeds(phonemes: str, voice: np.ndarray, speed: float = 1.0, controls: bool = False) -> dict[str, np.ndarray]:
    """The model's inputs, built as kokoro-onnx builds them (plus neutral prosody for our graphs)."""
    table = kokoro_model.vocab()
    ids = [table[c] for c in phonemes if c in table]
    out = {
        "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
        "style": np.asarray(voice[len(ids) - 1], dtype=np.float32).reshape(1, 256),
        "speed": np.array([speed], dtype=np.float32),
    }
    if controls:
        out.update({k: v.reshape(1, -1) if v.ndim else v.reshape(1) for k, v in neutral_arrays(len(ids) + 2).items()})
    return out


def session_synth(session, voice: np.ndarray) -> Synth:
    """Any session with ``get_inputs``/``run`` (onnxruntime, or kokoro_openvino's)."""
    controls = "pitch_shift" in {i.name for i in session.get_inputs()}
    return lambda phonemes: session.run(None, feeds(phonemes, voice, controls=controls))[0].ravel()


def stock_synth(workdir: pathlib.Path, voice_name: str, voice: np.ndarray) -> Synth:
    """kokoro-onnx 0.6.1 on the same model file, voice array and vocabulary."""
    from kokoro_onnx import Kokoro

    model_path, voices_path = workdir / "kokoro-v1.0.int8.onnx", workdir / "voices.npz"
    model_path.write_bytes(kokoro_model.model_bytes())
    np.savez(voices_path, **kokoro_model.voice_packs())  # its format: np.load(path)[name]
    stock = Kokoro(str(model_path), str(voices_path), vocab_config={"vocab": kokoro_model.vocab()})
    assert np.array_equal(stock.get_voice_style(voice_name), voice)
    return lambda phonemes: stock.create(phonemes, voice=voice, speed=1.0, is_phonemes=True)[0]


def log_spectrogram(audio: np.ndarray, size: int = 1024, hop: int = 256) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, size)[::hop] * np.hanning(size)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-5)


def similarity(ref: np.ndarray, out: np.ndarray) -> tuple[int, float, float]:
    """(length difference, SDR in dB, log-spectrogram correlation)."""
    n = min(len(ref), len(out))
    a, b = ref[:n].astype(np.float64), out[:n].astype(np.float64)
    sdr = 10 * np.log10(np.sum(a**2) / max(np.sum((a - b) ** 2), 1e-30))
    corr = np.corrcoef(log_spectrogram(a).ravel(), log_spectrogram(b).ravel())[0, 1]
    return len(out) - len(ref), float(sdr), float(corr)


def speed_table(synths: dict[str, Synth], audio_seconds: float, runs: int) -> dict[str, float]:
    """Time each engine on every sentence, interleaved sentence by sentence.

    The engines take turns on each sentence (the order rotates), so load from
    other work on the machine hits all of them alike and the ratios hold.
    """
    names = list(synths)
    walls = {name: np.zeros(runs) for name in names}
    for synth in synths.values():  # warm-up
        synth(PASSAGE[0])
    for run in range(runs):
        for i, phonemes in enumerate(PASSAGE):
            turn = (run + i) % len(names)
            for name in names[turn:] + names[:turn]:
                start = time.perf_counter()
                synths[name](phonemes)
                walls[name][run] += time.perf_counter() - start
        print(f"  run {run + 1}: " + ", ".join(f"{n} {walls[n][run]:.1f}s" for n in names), flush=True)
    stock = walls[names[0]].mean()
    print(f"\nAudio: {audio_seconds:.1f} s over {len(PASSAGE)} sentences; mean of {runs} runs")
    print(f"{'engine':<40} {'wall s':>8} {'RTF':>7} {'RTF min-max':>13} {'stock/ours':>11}")
    for name in names:
        wall, rtf = walls[name].mean(), walls[name] / audio_seconds
        print(f"{name:<40} {wall:8.2f} {wall / audio_seconds:7.3f} "
              f"{rtf.min():6.3f}-{rtf.max():.3f} {stock / wall:10.2f}x")
    return {name: walls[name].mean() for name in names}


def quality_table(original: ort.InferenceSession, candidates: dict[str, object]) -> None:
    """Each candidate graph vs the shipped one, next to the shipped graph vs itself with style * (1 + 1e-6)."""
    print("\nvs the shipped graph: sum |dlen| (samples), median SDR dB, mean log-spectrogram r over "
          "9 sentences x 2 voices")
    rows: dict[str, list] = {name: [] for name in ["floor: shipped, style * (1 + 1e-6)", *candidates]}
    for voice_name in ("jf_alpha", "jm_kumo"):
        voice = kokoro_model.voice_packs()[voice_name]
        for phonemes in PASSAGE:
            inputs = feeds(phonemes, voice)
            ref = original.run(None, inputs)[0].ravel()
            nudged = dict(inputs, style=inputs["style"] * np.float32(1 + 1e-6))
            rows["floor: shipped, style * (1 + 1e-6)"].append(similarity(ref, original.run(None, nudged)[0].ravel()))
            for name, session in candidates.items():
                rows[name].append(similarity(ref, session_synth(session, voice)(phonemes)))
    for name, got in rows.items():
        got = np.array(got)
        print(f"  {name:<40} {int(np.abs(got[:, 0]).sum()):7d} {np.median(got[:, 1]):7.1f} "
              f"{got[:, 2].mean():7.4f} (min r {got[:, 2].min():.4f})")


def openvino_session(graph: bytes, workdir: pathlib.Path, name: str, precision: str, threads: int):
    """The float graph compiled by OpenVINO as the engine compiles it (kokoro_openvino: bf16 = f32 front
    + bf16 back; ``bf16-whole`` = the whole graph in bf16, for comparison)."""
    start = time.perf_counter()
    if precision == "bf16-whole":
        import openvino as ov

        path = workdir / f"{name}-whole.onnx"
        path.write_bytes(graph)
        compiled = ov.Core().compile_model(str(path), "CPU", kokoro_openvino.compile_options("bf16", threads, None))
        session = kokoro_openvino.OpenVinoSession([compiled], "bf16")
    else:
        session = kokoro_openvino.session_from_graph(graph, workdir, precision, threads)
    print(f"OpenVINO {name} {precision} {threads}t: {time.perf_counter() - start:.1f}s to split and compile")
    return session


def float_graph_without_polynomials(source: bytes) -> bytes:
    """The float conversion with OpenVINO's own Sin in the snakes (the lever's baseline)."""
    from vibevoice.engines import kokoro_float

    keep = kokoro_float.snake_polynomials
    kokoro_float.snake_polynomials = lambda g: None
    try:
        return kokoro_model.convert(source, "float")
    finally:
        kokoro_float.snake_polynomials = keep


MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM")


def graph_macs(graph: bytes, inputs: dict[str, np.ndarray]) -> int:
    """Multiply-accumulates of the float graph's matrix ops for ``inputs``, from the tensor shapes of
    one onnxruntime run with every such op's inputs and outputs exposed."""
    import onnx

    proto = onnx.load_from_string(graph)
    nodes = [n for n in proto.graph.node if n.op_type in MAC_OPS]
    names = sorted({t for n in nodes for t in (n.input[0], n.output[0])} - {o.name for o in proto.graph.output})
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in names)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = dict(zip([o.name for o in session.get_outputs()], (x.shape for x in session.run(None, inputs))))
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    total = 0
    for n in nodes:
        x, y, w = shapes[n.input[0]], shapes[n.output[0]], inits.get(n.input[1])
        if n.op_type == "Conv":  # output elements x (in channels / group x kernel) = out x prod(w[1:])
            total += int(np.prod(y)) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":  # input elements x (out channels / group x kernel)
            total += int(np.prod(x)) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm"):
            total += int(np.prod(y)) * int(x[-1])
        else:  # LSTM: steps x directions x 4 gates x hidden x (input + hidden)
            steps, hidden = x[0], w[1] // 4
            total += steps * w[0] * 4 * hidden * (w[2] + hidden)
    return total


def peak_macs(cores: int = 2) -> tuple[float, str]:
    """The matrix peak MAC/s of this CPU, at the TSC clock lscpu's BogoMIPS / 2 gives (turbo aside): AMX's
    TMUL does 1024 bf16 multiply-accumulates per cycle per core (Intel's figure, Sapphire Rapids on);
    without AMX, two 512-bit VDPBF16PS per cycle do 64 (AVX512-bf16, e.g. AMD Zen 5); else the f32
    FMAs: two 512-bit ones, 32 (AVX-512), or two 256-bit ones, 16 (AVX2 only, e.g. AMD Zen 3)."""
    info = pathlib.Path("/proc/cpuinfo").read_text()
    mips = float(next(line.split(":")[1] for line in info.splitlines() if line.startswith("bogomips")))
    hz, flags = mips / 2 * 1e6, set(info.split())
    per_cycle, unit = ((1024, "bf16 MAC/cycle (AMX)") if "amx_bf16" in flags else
                       (64, "bf16 MAC/cycle (AVX512-bf16, no AMX)") if "avx512_bf16" in flags else
                       (32, "f32 MAC/cycle (AVX-512 FMA)") if "avx512f" in flags else
                       (16, "f32 MAC/cycle (AVX2 FMA, no AVX-512)"))
    return cores * per_cycle * hz, f"{cores} cores x {per_cycle} {unit} x {hz / 1e9:.2f} GHz"


def limit_table(graph: bytes, voice: np.ndarray, walls: dict[str, float], audio_seconds: float) -> None:
    """MACs per second of audio vs this CPU's matrix peak, and the fraction each engine reaches."""
    macs = sum(graph_macs(graph, feeds(p, voice, controls=True)) for p in PASSAGE)
    peak, assumption = peak_macs()
    floor = macs / peak
    print(f"\nphysical limit: {macs / audio_seconds / 1e9:.1f} GMAC per second of audio; peak {peak / 1e12:.2f} "
          f"TMAC/s ({assumption}) -> RTF floor {floor / audio_seconds:.4f} for the matrix ops alone")
    for name, wall in walls.items():
        print(f"  {name:<40} reaches {floor / wall:6.1%} of the peak")


def group_table(jobs: dict[str, Callable[[list], object]], groups: list[list], audio_seconds: float, runs: int,
                baseline: str) -> dict[str, float]:
    """Each job renders each group of sentences in turn (the order rotating group by group), so load
    from other work hits all alike; prints wall and CPU time, RTF and ``baseline``'s wall / this wall."""
    names = list(jobs)
    walls, cpus = {name: np.zeros(runs) for name in names}, {name: np.zeros(runs) for name in names}
    for run in range(runs):
        for g, group in enumerate(groups):
            turn = (run + g) % len(names)
            for name in names[turn:] + names[:turn]:
                start, cpu = time.perf_counter(), time.process_time()
                jobs[name](group)
                walls[name][run] += time.perf_counter() - start
                cpus[name][run] += time.process_time() - cpu
        print(f"  run {run + 1}: " + ", ".join(f"{n.split(')')[0]}) {walls[n][run]:.1f}s" for n in names), flush=True)
    print(f"\nAudio: {audio_seconds:.1f} s; mean of {runs} runs; load average {os.getloadavg()[0]:.1f}. CPU s: this "
          "process's CPU time (all threads); cores = CPU s / wall s")
    print(f"{'job':<52} {'wall s':>8} {'RTF':>7} {'vs ' + baseline.split(')')[0] + ')':>9} {'CPU s':>7} {'cores':>6}")
    for name in names:
        wall, cpu = walls[name].mean(), cpus[name].mean()
        print(f"{name:<52} {wall:8.2f} {wall / audio_seconds:7.3f} {walls[baseline].mean() / wall:8.2f}x "
              f"{cpu:7.1f} {cpu / wall:6.2f}")
    return {name: walls[name].mean() for name in names}


def rss_mb() -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024


def lanes_table(workdir: pathlib.Path, voice_name: str, runs: int, lanes: int, openvino: bool = False,
                shapes: bool = False) -> None:
    """Throughput over the passage: stock, ours serial (2 threads, 1 thread) and ours on ``lanes``
    parallel single-thread lanes (one shared session, a session per lane, one 2-thread session
    shared); then the engine on text, serial vs on lanes (phonemisation included)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from vibevoice.delivery import LineDelivery
    from vibevoice.engines.base import Segment
    from vibevoice.engines.kokoro import KokoroEngine
    from vibevoice.engines.kokoro_lanes import Lanes
    from vibevoice.voices import BlendPart, KokoroSpec, VoiceTemplate

    voice = kokoro_model.voice_packs()[voice_name]
    graph = kokoro_model.fast_model_bytes(workdir / "cache")

    def session(threads: int) -> ort.InferenceSession:
        before = rss_mb()
        made = ort.InferenceSession(graph, kokoro_model.session_options(threads), providers=["CPUExecutionProvider"])
        print(f"session with {threads} thread(s): +{rss_mb() - before:.0f} MB RSS")
        return made

    two, one, each = session(2), session(1), [session(1) for _ in range(lanes)]
    pool = ThreadPoolExecutor(lanes)
    own, lock = {}, threading.Lock()

    def on_own(phonemes: str) -> np.ndarray:  # each pool thread keeps the session it took first
        with lock:
            mine = own.setdefault(threading.get_ident(), each[len(own) % lanes])
        return session_synth(mine, voice)(phonemes)

    stock = stock_synth(workdir, voice_name, voice)
    sentences = PASSAGE + PASSAGE[:3]  # 12, in groups of 2 per lane: a lane never waits on a lone one
    size = 2 * lanes
    groups = [sentences[i:i + size] for i in range(0, len(sentences), size)]
    audio = [session_synth(two, voice)(p) for p in sentences]
    audio_seconds = sum(a.size for a in audio) / SAMPLE_RATE

    def serial(synth: Synth) -> Callable[[list[str]], list]:
        return lambda group: [synth(p) for p in group]

    def on_lanes(synth: Synth) -> Callable[[list[str]], list]:
        return lambda group: list(pool.map(synth, group))

    jobs = {
        "(a) stock kokoro-onnx, serial": serial(stock),
        "(b) ours int8, serial, 2 threads": serial(session_synth(two, voice)),
        "(b1) ours int8, serial, 1 thread": serial(session_synth(one, voice)),
        f"(h) ours, {lanes} lanes on one 1-thread session": on_lanes(session_synth(one, voice)),
        f"(i) ours, {lanes} lanes, a 1-thread session each": on_lanes(on_own),
        f"(j) ours, {lanes} lanes on one 2-thread session": on_lanes(session_synth(two, voice)),
    }
    for name in list(jobs)[2:]:
        same = all(np.array_equal(a, b) for a, b in zip(audio, jobs[name](sentences)))
        print(f"{name}: {'bit-identical to' if same else 'DIFFERS from'} (b)")
    if not shapes:  # measured once (README): (i) and (j) were slower than (h); timed again with --lane-shapes
        del jobs[f"(i) ours, {lanes} lanes, a 1-thread session each"], jobs[f"(j) ours, {lanes} lanes on one 2-thread session"]
    print(f"\nthroughput over {len(sentences)} sentences (phonemes given) in groups of {size}, {lanes} lanes:")
    group_table(jobs, groups, audio_seconds, runs, "(a) stock kokoro-onnx, serial")

    engine = KokoroEngine(threads=2)
    engine._lanes = Lanes(lanes, lambda: one)  # the engine's lanes, on the session above
    spec = KokoroSpec(blend=[BlendPart(voice=voice_name, weight=1.0)])
    voices = {"A": VoiceTemplate(id="bench", name="bench", engine="kokoro", languages=["en"], spec=spec)}
    engine.speak(TEXT[0], voices["A"])  # the session, misaki and spaCy load before the timing
    texts = TEXT + TEXT[:3]
    segments = [Segment(i, "A", text, "en", LineDelivery()) for i, text in enumerate(texts)]
    ends = {
        "(t0) phonemisation alone (misaki), serial": lambda group: [engine.phonemize(s.text) for s in group],
        "(t1) engine on text, serial, 2 threads": lambda group: [engine.synthesize([s], voices) for s in group],
        f"(t2) engine on text, {lanes} lanes": lambda group: [f.result() for f in
                                                               [engine.submit([s], voices) for s in group]],
    }
    print(f"\nend to end on the text (phonemisation included; RTF over the phoneme passage's length), {lanes} lanes:")
    group_table(ends, [segments[i:i + size] for i in range(0, len(segments), size)], audio_seconds, runs,
                "(t1) engine on text, serial, 2 threads")
    print(f"RSS at the end: {rss_mb():.0f} MB")
    if openvino:
        openvino_lanes_table(workdir, voice, jobs, sentences, groups, audio_seconds, runs, lanes, on_lanes)


def openvino_lanes_table(workdir: pathlib.Path, voice: np.ndarray, jobs: dict, sentences: list[str],
                         groups: list[list[str]], audio_seconds: float, runs: int, lanes: int, on_lanes) -> None:
    """The OpenVINO path (f32 front + bf16 decoder) serial on 2 threads vs on ``lanes`` single-thread
    streams, next to stock and the int8 lanes."""
    graph = kokoro_model.fast_model_bytes(workdir / "cache", "float")
    before = rss_mb()
    serial = kokoro_openvino.session_from_graph(graph, workdir, "bf16", 2)
    print(f"OpenVINO bf16 2 threads: +{rss_mb() - before:.0f} MB RSS")
    before = rss_mb()
    streams = kokoro_openvino.session_from_graph(graph, workdir, "bf16", lanes=lanes)
    print(f"OpenVINO bf16 {lanes} streams: +{rss_mb() - before:.0f} MB RSS")
    ov = {
        "(a) stock kokoro-onnx, serial": jobs["(a) stock kokoro-onnx, serial"],
        "(c) ours OpenVINO bf16, serial, 2 threads": lambda group: [session_synth(serial, voice)(p) for p in group],
        f"(l) ours OpenVINO bf16, {lanes} lanes": on_lanes(session_synth(streams, voice)),
        f"(h) ours, {lanes} lanes on one 1-thread session": jobs[f"(h) ours, {lanes} lanes on one 1-thread session"],
    }
    ref = ov["(c) ours OpenVINO bf16, serial, 2 threads"](sentences)
    got = ov[f"(l) ours OpenVINO bf16, {lanes} lanes"](sentences)
    rows = np.array([similarity(a, b) for a, b in zip(ref, got)])
    print(f"(l) vs (c): {'bit-identical' if all(np.array_equal(a, b) for a, b in zip(ref, got)) else 'differs'}; "
          f"sum |dlen| {int(np.abs(rows[:, 0]).sum())}, min SDR {rows[:, 1].min():.1f} dB")
    print(f"\nOpenVINO throughput, the same groups, {lanes} lanes:")
    group_table(ov, groups, audio_seconds, runs, "(a) stock kokoro-onnx, serial")
    print(f"RSS at the end: {rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for ours")
    parser.add_argument("--voice", default="jf_alpha")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--no-openvino", action="store_true")
    parser.add_argument("--f32", action="store_true", help="also OpenVINO in f32 (slow)")
    parser.add_argument("--levers", action="store_true", help="also int8 without kokoro_ops' rewrite, OpenVINO's "
                        "Sin, and 1 thread")
    parser.add_argument("--lanes", type=int, nargs="?", const=2, default=0,
                        help="throughput over a job on N parallel single-thread lanes (default 2), instead")
    parser.add_argument("--lane-shapes", action="store_true", help="with --lanes, also time a session per lane and "
                        "one 2-thread session shared")
    parser.add_argument("--workdir", help="keep the converted graphs here between runs (default: a temporary one)")
    args = parser.parse_args()
    if args.lanes:
        with tempfile.TemporaryDirectory(prefix="kokoro-bench-") as tmp:
            workdir = pathlib.Path(args.workdir or tmp)
            lanes_table(workdir, args.voice, args.runs, args.lanes, not args.no_openvino and _has_openvino(),
                        args.lane_shapes)
        return

    voice = kokoro_model.voice_packs()[args.voice]
    options = kokoro_model.session_options(args.threads)
    with tempfile.TemporaryDirectory(prefix="kokoro-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        original = ort.InferenceSession(kokoro_model.model_bytes(), options, providers=["CPUExecutionProvider"])
        start = time.perf_counter()
        fast = kokoro_model.load_session(workdir / "cache", threads=args.threads)
        weights = ("int8 weights" if kokoro_int8.signed_weights_exact()
                   else "uint8 weights: this CPU's u8 x s8 kernel saturates")
        print(f"int8 graph ({weights}): {time.perf_counter() - start:.1f}s to convert and load")
        synths = {
            "(a) stock kokoro-onnx 0.6.1": stock_synth(workdir, args.voice, voice),
            f"(b) ours, int8 onnxruntime ({args.threads}t)": session_synth(fast, voice),
        }
        if args.levers:
            synths[f"(b0) int8 without the decoder-means rewrite ({args.threads}t)"] = session_synth(
                int8_without_time_means(args.threads), voice)
        ov_sessions = {} if args.no_openvino else openvino_sessions(workdir, args)
        synths.update({name: session_synth(s, voice) for name, s in ov_sessions.items()})
        audio_seconds = sum(len(session_synth(original, voice)(p)) for p in PASSAGE) / SAMPLE_RATE
        walls = speed_table(synths, audio_seconds, args.runs)
        if ov_sessions:
            limit_table(kokoro_model.fast_model_bytes(workdir / "cache", "float"), voice, walls, audio_seconds)
        if not args.skip_quality:
            quality_table(original, {"(b) int8 onnxruntime": fast, **ov_sessions})


def int8_without_time_means(threads: int) -> ort.InferenceSession:
    """The int8 conversion with the decoder's means left as ReduceMean (kokoro_ops' lever, measured)."""
    rewrite = kokoro_ops.time_means_as_matmul
    kokoro_ops.time_means_as_matmul = lambda g: 0
    try:
        graph = kokoro_model.convert(kokoro_model.model_bytes())
    finally:
        kokoro_ops.time_means_as_matmul = rewrite
    return ort.InferenceSession(graph, kokoro_model.session_options(threads), providers=["CPUExecutionProvider"])


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_sessions(workdir: pathlib.Path, args: argparse.Namespace) -> dict[str, object]:
    """The float graph on OpenVINO: bf16 as the engine runs it, plus the levers asked for."""
    start = time.perf_counter()
    graph = kokoro_model.fast_model_bytes(workdir / "cache", "float")
    print(f"float graph: {time.perf_counter() - start:.1f}s to convert ({len(graph) / 1e6:.0f} MB)")
    t = args.threads
    sessions = {f"(c) ours, OpenVINO bf16 ({t}t)": openvino_session(graph, workdir, "float", "bf16", t)}
    if args.levers:
        sessions[f"(g) OpenVINO, all bf16 ({t}t)"] = openvino_session(graph, workdir, "float", "bf16-whole", t)
        plain = float_graph_without_polynomials(kokoro_model.model_bytes())
        sessions[f"(d) OpenVINO bf16, its own Sin ({t}t)"] = openvino_session(plain, workdir, "sin", "bf16", t)
        sessions["(e) OpenVINO bf16 (1t)"] = openvino_session(graph, workdir, "float", "bf16", 1)
    if args.f32:
        sessions[f"(f) OpenVINO f32 ({t}t)"] = openvino_session(graph, workdir, "float", "f32", t)
    return sessions


if __name__ == "__main__":
    main()
