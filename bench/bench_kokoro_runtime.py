"""Kokoro runtime benchmark: stock kokoro-onnx vs our int8 session vs our fast session.

Not a test: it prints figures.  All three run the same model (joined from our
wheels), the same voice array and the same phoneme strings (a ~1-minute
English passage, misaki en-us G2P, one sentence per call), taking turns
sentence by sentence in each of ``--runs`` rounds in one process.  RTF = synthesis wall time / seconds
of audio the model produced (the untrimmed length, identical for all three;
kokoro-onnx trims and re-pads its output, so its own length is not used).

It then checks that the fast graph sounds like the shipped one, for a female
(jf_alpha) and a male (jm_kumo) voice: output length, signal-to-difference
ratio and log-spectrogram correlation, next to the "noise floor" of the shipped
graph itself when its style vector is scaled by (1 + 1e-6).

    .venv/bin/python bench/bench_kokoro_runtime.py [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from vibevoice.engines import kokoro_model  # noqa: E402

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

Synth = Callable[[str], np.ndarray]


def feeds(phonemes: str, voice: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
    """The model's inputs, built as kokoro-onnx builds them."""
    table = kokoro_model.vocab()
    ids = [table[c] for c in phonemes if c in table]
    return {
        "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
        "style": np.asarray(voice[len(ids) - 1], dtype=np.float32),
        "speed": np.array([speed], dtype=np.float32),
    }


def session_synth(session: ort.InferenceSession, voice: np.ndarray) -> Synth:
    return lambda phonemes: session.run(None, feeds(phonemes, voice))[0].ravel()


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


def speed_table(synths: dict[str, Synth], audio_seconds: float, runs: int) -> None:
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
    print(f"{'engine':<32} {'wall s':>8} {'RTF':>7} {'RTF min-max':>13} {'stock/ours':>11}")
    for name in names:
        wall, rtf = walls[name].mean(), walls[name] / audio_seconds
        print(f"{name:<32} {wall:8.2f} {wall / audio_seconds:7.3f} "
              f"{rtf.min():6.3f}-{rtf.max():.3f} {stock / wall:10.2f}x")


def quality_table(original: ort.InferenceSession, fast: ort.InferenceSession) -> None:
    print("\nfast vs shipped graph, and the shipped graph vs itself with style * (1 + 1e-6)")
    print(f"{'voice':<9} {'phon':>4} {'samples':>8} {'dlen':>5} {'SDR dB':>7} {'spec r':>7}"
          f" | {'floor dlen':>10} {'SDR dB':>7} {'spec r':>7}")
    rows = []
    for voice_name in ("jf_alpha", "jm_kumo"):
        voice = kokoro_model.voice_packs()[voice_name]
        for phonemes in PASSAGE:
            inputs = feeds(phonemes, voice)
            ref = original.run(None, inputs)[0].ravel()
            got = similarity(ref, fast.run(None, inputs)[0].ravel())
            nudged = dict(inputs, style=inputs["style"] * np.float32(1 + 1e-6))
            floor = similarity(ref, original.run(None, nudged)[0].ravel())
            rows.append((got, floor))
            print(f"{voice_name:<9} {len(phonemes):4d} {len(ref):8d} {got[0]:5d} {got[1]:7.1f} "
                  f"{got[2]:7.4f} | {floor[0]:10d} {floor[1]:7.1f} {floor[2]:7.4f}")
    got, floor = (np.array([r[i] for r in rows]) for i in (0, 1))
    print(f"{'all':<9} {'':4} {'':8} {int(np.abs(got[:, 0]).sum()):5d} {np.median(got[:, 1]):7.1f} "
          f"{got[:, 2].mean():7.4f} | {int(np.abs(floor[:, 0]).sum()):10d} "
          f"{np.median(floor[:, 1]):7.1f} {floor[:, 2].mean():7.4f}   (sum |dlen|, median SDR, mean r)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for ours")
    parser.add_argument("--voice", default="jf_alpha")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()

    voice = kokoro_model.voice_packs()[args.voice]
    options = kokoro_model.session_options(args.threads)
    with tempfile.TemporaryDirectory(prefix="kokoro-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        start = time.perf_counter()
        original = ort.InferenceSession(kokoro_model.model_bytes(), options, providers=["CPUExecutionProvider"])
        print(f"original int8 session: {time.perf_counter() - start:.1f}s to load")
        start = time.perf_counter()
        fast = kokoro_model.load_session(workdir / "cache", threads=args.threads)
        print(f"fast session, converting + caching: {time.perf_counter() - start:.1f}s")
        start = time.perf_counter()
        fast = kokoro_model.load_session(workdir / "cache", threads=args.threads)
        print(f"fast session, from cache: {time.perf_counter() - start:.1f}s")
        synths = {
            "(a) stock kokoro-onnx 0.6.1": stock_synth(workdir, args.voice, voice),
            f"(b) ours, int8 as shipped ({args.threads}t)": session_synth(original, voice),
            f"(c) ours, fast ({args.threads}t)": session_synth(fast, voice),
        }
        audio_seconds = sum(len(session_synth(original, voice)(p)) for p in PASSAGE) / SAMPLE_RATE
        speed_table(synths, audio_seconds, args.runs)
        if not args.skip_quality:
            quality_table(original, fast)


if __name__ == "__main__":
    main()
