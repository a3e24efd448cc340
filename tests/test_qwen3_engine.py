"""Qwen3-TTS jobs from tiny random checkpoints saved in the released layout and loaded the real way.

Random weights never choose the end-of-speech code, so every take runs into its line's frame cap:
that is a runaway for the guard (re-rolled and recorded); jobs that are not about the guard set
``rerolls=0`` and keep the capped take.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from vibevoice.engines.qwen3 import available  # noqa: E402

if not available():
    pytest.skip("the qwen3 extra is not installed (./scripts/install.sh qwen3)", allow_module_level=True)
from qwen3_tiny import build_tiny_checkpoint  # noqa: E402

from vibevoice.delivery import LineDelivery  # noqa: E402
from vibevoice.engines.qwen3.generation import frame_cap, verdict  # noqa: E402
from vibevoice.engines.qwen3.instruct import instruct_text  # noqa: E402
from vibevoice.errors import BadInput  # noqa: E402
from vibevoice.job import service  # noqa: E402
from vibevoice.job.model import RenderSettings  # noqa: E402
from vibevoice.job.runner import Job  # noqa: E402
from vibevoice.plan.schema import LinePlan, Plan  # noqa: E402
from vibevoice.voices import CloneSpec, Consent, DesignSpec, VoiceTemplate, load_templates  # noqa: E402

SCRIPT = "[Ann] Hello there.\n[Ben] (whispering) Hi.\n[Ann] How are you?\n[Ben] Fine, thanks.\n"
GREEDY = dict(temperature=0.0, rerolls=0)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen3")
    return {name: build_tiny_checkpoint(root / name, variant, size)
            for name, variant, size in [("custom_voice", "custom_voice", "1b7"), ("voice_design", "voice_design", "1b7"),
                                        ("base", "base", "0b6"), ("custom_small", "custom_voice", "0b6")]}


def _voices(kind: str, tmp_path: Path) -> dict[str, VoiceTemplate]:
    presets = load_templates()
    if kind == "custom_voice":
        return {"Ann": presets["qwen3-vivian"], "Ben": presets["qwen3-ryan"]}
    if kind == "voice_design":
        return {s: VoiceTemplate(id=f"design-{s.lower()}", name=s, engine="qwen3", languages=["en"],
                                 spec=DesignSpec(description=f"A calm voice number {i}")) for i, s in enumerate(["Ann", "Ben"])}
    clip = tmp_path / "clip.wav"
    rng = np.random.default_rng(0)
    sf.write(clip, (0.1 * np.sin(np.arange(48_000) * 0.05) + 0.01 * rng.standard_normal(48_000)).astype(np.float32), 24_000)
    consent = Consent(confirmed_at="2026-12-01T00:00:00Z", confirmed_by="test")
    return {s: VoiceTemplate(id=f"clone-{s.lower()}", name=s, engine="vibevoice", languages=["en"],
                             spec=CloneSpec(clip=str(clip), consent=consent, transcript="a test clip" if s == "Ann" else ""))
            for s in ["Ann", "Ben"]}


PLAN = Plan(planner="user", lines=[LinePlan(line_index=0, emotion="excited", intensity=0.9, rate=1.2),
                                   LinePlan(line_index=1), LinePlan(line_index=2, emphasis=["you"]), LinePlan(line_index=3)])


@pytest.mark.parametrize("kind", ["custom_voice", "voice_design", "base"])
def test_each_variant_renders_a_job_to_wav_mp3_srt(dirs, kind, tmp_path, one_torch_thread):
    settings = RenderSettings(engine="qwen3", model_dir=str(dirs[kind]), batch_size=2, **GREEDY)
    job = Job.create(tmp_path / "job", SCRIPT, _voices(kind, tmp_path), settings, plan=PLAN)
    outputs = service.run(job, output=tmp_path / "show.mp3")
    audio, rate = sf.read(outputs["wav"])
    assert rate == 24_000 and audio.size > 24_000 and np.abs(audio).max() > 0.01
    assert Path(outputs["mp3"]).stat().st_size > 1000
    cues = open(outputs["srt"], encoding="utf-8").read()
    assert cues.count(" --> ") == 4 + (kind == "base")  # a cloned voice adds the spoken AI notice
    assert "[Ben] Fine, thanks." in cues
    first, second = job.manifest.chunks[0].instruct, job.manifest.chunks[1].instruct
    if kind == "custom_voice":  # the plan as instruct text; the script's hint verbatim
        assert first == "Very excited. Speak quickly." and second == "Whispering."
    elif kind == "voice_design":  # the description leads, the delivery follows
        assert first.startswith("A calm voice number 0.") and "Very excited." in first
    else:  # Base follows no instructions: reported, not silently dropped
        assert first == "" and any("follows no instructions" in n for n in job.manifest.notes)


def test_wrong_voice_kind_and_incomplete_directory_are_refused(dirs, tmp_path):
    settings = RenderSettings(engine="qwen3", model_dir=str(dirs["base"]))
    with pytest.raises(BadInput, match="needs a CustomVoice"):
        Job.create(tmp_path / "job", SCRIPT, _voices("custom_voice", tmp_path), settings)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(BadInput, match="missing: generation_config.json"):
        Job.create(tmp_path / "job2", SCRIPT, _voices("base", tmp_path),
                   RenderSettings(engine="qwen3", model_dir=str(tmp_path / "broken")))


def _audio(job: Job) -> list[np.ndarray]:
    return [job.chunk_audio(c) for c in job.manifest.chunks]


def test_batched_equals_one_by_one_with_greedy_decoding(dirs, tmp_path, monkeypatch, one_torch_thread):
    """The codec codes every line is given, batched and alone, are the same frame for frame; so is the audio."""
    from vibevoice.engines import get_engine

    voices = _voices("custom_voice", tmp_path)
    tokenizer = get_engine("qwen3", model_dir=str(dirs["custom_voice"]), dtype="auto").model.model.speech_tokenizer
    decode, codes = tokenizer.decode, []
    monkeypatch.setattr(tokenizer, "decode", lambda items: codes.append([i["audio_codes"].clone() for i in items])
                        or decode(items))
    jobs = []
    for batch in (1, 4):
        job = Job.create(tmp_path / f"b{batch}", SCRIPT, voices, RenderSettings(
            engine="qwen3", model_dir=str(dirs["custom_voice"]), batch_size=batch, **GREEDY), plan=PLAN)
        job.render()
        jobs.append(_audio(job))
    alone, together = [c for (c,) in codes[:4]], codes[4]
    assert len(codes) == 5 and len(together) == 4  # four lines alone, then one batch of four
    for line, (one, batched) in enumerate(zip(alone, together)):
        # A row of a batch runs to the batch's longest cap; up to its own cap it chooses what it chose alone.
        differ = (one != batched[: one.shape[0]]).any(dim=1).nonzero().flatten().tolist()
        assert one.shape[0] >= 30 and not differ, f"line {line + 1}: frames {differ[:5]} differ"
    for one, batched in zip(*jobs):
        assert one.shape == batched.shape and np.isfinite(one).all() and np.abs(one).max() > 0.01
        # Same codes, decoded in a padded batch: fp32 rounding only (the tiny decoder is loud, most samples
        # at +-1, and amplifies it to ~1e-3); in float64 the two decodes are identical (next test).
        assert np.allclose(one, batched, atol=2e-3, rtol=0), np.abs(one - batched).max()


def test_codec_decodes_a_line_alone_and_in_a_padded_batch_identically_in_float64(dirs):
    """Batched decoding reads no padding: with rounding out of the way, a row decodes exactly as alone."""
    import torch

    from vibevoice.engines import get_engine

    tokenizer = get_engine("qwen3", model_dir=str(dirs["custom_voice"]), dtype="fp32").model.model.speech_tokenizer
    generator = torch.Generator().manual_seed(0)
    short, long = (torch.randint(0, 2048, (n, 16), generator=generator) for n in (20, 31))
    decoder = tokenizer.model.to(torch.float64)
    try:
        with torch.inference_mode():
            (alone,), _ = tokenizer.decode([{"audio_codes": short}])
            (together, _), _ = tokenizer.decode([{"audio_codes": short}, {"audio_codes": long}])
    finally:
        decoder.to(torch.float32)
    assert alone.shape == together.shape == (20 * 1920,) and np.abs(alone).max() > 0.01
    assert np.array_equal(alone, together)


def test_every_weight_and_buffer_is_loaded_and_a_missing_weight_is_refused(dirs, tmp_path):
    """Loaded the real way, the model's non-persistent buffers (RoPE tables: not in any checkpoint) are what
    a freshly built model computes, not ``torch.empty`` leftovers; a checkpoint short of a weight is refused."""
    import shutil

    import torch
    from qwen3_tiny import tiny_config, tiny_speech_tokenizer_config
    from safetensors.torch import load_file, save_file

    from vibevoice.engines.qwen3 import compat

    model, notes = compat.load_model(str(dirs["base"]), dtype=torch.float32, attn_implementation="sdpa")
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    built = [Qwen3TTSForConditionalGeneration(tiny_config("base", "0b6")),
             Qwen3TTSTokenizerV2Model(tiny_speech_tokenizer_config())]
    assert notes == []
    for loaded, fresh in zip((model.model, model.model.speech_tokenizer.model), built):
        expected, buffers = dict(fresh.named_buffers()), dict(loaded.named_non_persistent_buffers())
        assert any(key.endswith("rotary_emb.inv_freq") for key in buffers)
        assert all(torch.equal(buffer, expected[key]) for key, buffer in buffers.items())
    for weights, key, part in [("model.safetensors", "talker.code_predictor.model.norm.weight", "code predictor"),
                               ("speech_tokenizer/model.safetensors", "decoder.pre_transformer.norm.weight",
                                "speech tokenizer decoder")]:
        broken = tmp_path / part.replace(" ", "_")
        shutil.copytree(dirs["base"], broken)
        state = load_file(broken / weights)
        del state[key]
        save_file(state, broken / weights, metadata={"format": "pt"})
        with pytest.raises(BadInput, match=f"not a complete Qwen3-TTS checkpoint: weights 1 missing \\({part}: 1; "
                                           f"e.g. {key}"):
            compat.load_model(str(broken), dtype=torch.float32, attn_implementation="sdpa")


def test_resumed_job_equals_uninterrupted(dirs, tmp_path, one_torch_thread):
    voices = _voices("custom_voice", tmp_path)
    settings = RenderSettings(engine="qwen3", model_dir=str(dirs["custom_voice"]), batch_size=2, **GREEDY)
    whole = Job.create(tmp_path / "whole", SCRIPT, voices, settings)
    whole.render()
    stop = threading.Event()
    part = Job.create(tmp_path / "part", SCRIPT, voices, settings)
    with pytest.raises(Exception, match="cancelled"):
        part.render(progress=lambda p: stop.set() if p.done >= 2 else None, stop=stop)
    assert 2 <= sum(c.status == "done" for c in part.manifest.chunks) < 4
    resumed = Job.open(tmp_path / "part")
    resumed.render()
    for a, b in zip(_audio(whole), _audio(resumed)):  # same tokens; batch padding moves the last digits
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-3)


def test_runaway_take_is_rerolled_with_new_seeds_and_recorded(dirs, tmp_path, one_torch_thread):
    settings = RenderSettings(engine="qwen3", model_dir=str(dirs["custom_voice"]), rerolls=2, batch_size=2)
    job = Job.create(tmp_path / "job", "[Ann] Hello there.\n", _voices("custom_voice", tmp_path), settings)
    job.render()
    (chunk,) = job.manifest.chunks
    assert len(chunk.rerolls) == 3 and "no re-rolls left" in chunk.rerolls[-1]
    seeds = {r.split(":")[0] for r in chunk.rerolls}
    assert len(seeds) == 3 and all("no end of speech" in r for r in chunk.rerolls)
    assert chunk.samples <= frame_cap("Hello there.", "en") * 1920  # stopped at the line's cap, not 2048 frames
    assert Job.open(tmp_path / "job").manifest.chunks[0].rerolls == chunk.rerolls  # saved with the chunk


def test_guard_verdicts_and_instruct_text():
    assert verdict(100, 100, 3.0).startswith("no end of speech")
    assert verdict(5, 100, 4.0).startswith("0.4 s for about 4.0 s")
    assert verdict(40, 100, 3.0) is None
    text = instruct_text(LineDelivery(speed=0.8, emotion="sad", intensity=0.2, emphasis=("never",), note="tired"),
                         ["(sighs)"])
    assert text == 'Sighs. Slightly sad. Speak slowly. Stress "never". Tired.'


def test_small_model_instruct_is_reported(dirs, tmp_path):
    settings = RenderSettings(engine="qwen3", model_dir=str(dirs["custom_small"]), **GREEDY)
    job = Job.create(tmp_path / "job", SCRIPT, _voices("custom_voice", tmp_path), settings, plan=PLAN)
    assert all(c.instruct == "" for c in job.manifest.chunks)
    notes = " ".join(job.manifest.notes)
    assert "0b6 custom_voice model follows no instructions" in notes and "lines 1, 2, 3, 4" in notes
    assert "cannot change its pace" in notes  # the plan's rate, through the shared report


VIBEVOICE_UNCHANGED = """
import sys, torch
sys.path.insert(0, {tests!r})
from vibevoice_tiny import tiny_config
from transformers import VibeVoiceForConditionalGeneration
def logits():
    torch.manual_seed(0)
    model = VibeVoiceForConditionalGeneration(tiny_config()).eval()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        return model.model.language_model(input_ids=ids).last_hidden_state
before = logits()
from vibevoice.engines import get_engine
engine = get_engine("qwen3", model_dir={model!r})
engine.model  # the adapter and the package are loaded, the model built
after = logits()
print("same" if torch.equal(before, after) else "changed")
"""


def test_importing_the_engine_leaves_vibevoice_models_unchanged(dirs):
    code = VIBEVOICE_UNCHANGED.format(tests=str(Path(__file__).parent), model=str(dirs["custom_voice"]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parent.parent)
    assert result.stdout.strip().endswith("same"), result.stderr[-2000:]


def test_cli_renders_with_qwen3_and_its_sampling_options(dirs, tmp_path):
    from conftest import run_cli

    script = tmp_path / "s.txt"
    script.write_text("[Ann] Hello there.\n[Ben] Hi.\n")
    result = run_cli("render", str(script), "--engine", "qwen3", "--model-dir", str(dirs["custom_voice"]),
                     "-v", "Ann=qwen3-vivian", "-v", "Ben=qwen3-ryan", "--temperature", "0", "--top-p", "0.8",
                     "--top-k", "7", "--repetition-penalty", "1.1", "--batch-size", "2", "--seed", "5",
                     "--planner", "none", "--job-dir", str(tmp_path / "job"), "-o", str(tmp_path / "o.wav"),
                     env={"OMP_NUM_THREADS": "1", "VIBEVOICE_MODEL_DIR": "/nonexistent/vibevoice"})
    assert result.returncode == 0, result.stderr[-2000:]
    settings = Job.open(tmp_path / "job").manifest.settings
    assert (settings.engine, settings.temperature, settings.top_p, settings.top_k) == ("qwen3", 0.0, 0.8, 7)
    assert (settings.repetition_penalty, settings.batch_size, settings.seed) == (1.1, 2, 5)
    assert sf.info(tmp_path / "o.wav").duration > 1.0
    missing = run_cli("render", str(script), "--engine", "qwen3", "-o", str(tmp_path / "x.wav"),
                      env={"VIBEVOICE_MODEL_DIR": str(dirs["custom_voice"]), "VIBEVOICE_QWEN3_MODEL_DIR": ""})
    assert missing.returncode == 2 and "VIBEVOICE_QWEN3_MODEL_DIR" in missing.stderr  # not VibeVoice's checkpoint


def test_preflight_estimates_a_qwen3_render(dirs, tmp_path):
    import typer
    from typer.testing import CliRunner

    from vibevoice.cli.preflight import preflight_command

    app = typer.Typer()
    app.command()(preflight_command)
    script = tmp_path / "s.txt"
    script.write_text(SCRIPT)
    runner = CliRunner()
    ok = runner.invoke(app, [str(script), "--engine", "qwen3", "--model-dir", str(dirs["custom_voice"]),
                             "--device", "cpu", "--budget-gib", "1"])
    assert ok.exit_code == 0 and "Qwen3-TTS 1b7 custom_voice on cpu" in ok.output and "fits" in ok.output, ok.output
    small = runner.invoke(app, [str(script), "--engine", "qwen3", "--model-dir", str(dirs["custom_voice"]),
                                "--device", "cpu", "--budget-gib", "0.000001"])
    assert small.exit_code == 1 and "does not fit" in small.output
    broken = runner.invoke(app, [str(script), "--engine", "qwen3", "--model-dir", str(tmp_path), "--device", "cpu"])
    assert broken.exit_code == 3
