"""The VibeVoice engine on tiny random checkpoints built here and loaded the way a user's are.

What matters most is checked bit for bit: chunked generation with carried state gives the audio of
one uninterrupted ``generate()`` call, also after saving the state and resuming in a new process.
Control tokens are forced by a test-only logits processor (random weights never choose them);
diffusion, CFG and the codecs run for real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from vibevoice_tiny import (  # noqa: E402
    EOS,
    VOICE_SCRIPT,
    ForceTokens,
    clone_voice,
    forced_engine,
    noise_clip,
    speech_plan,
    tiny_dir,
    write_original_layout,
)

from vibevoice.engines.vibevoice import configuration  # noqa: E402
from vibevoice.engines.vibevoice.configuration import CheckpointError  # noqa: E402
from vibevoice.errors import Cancelled  # noqa: E402
from vibevoice.job.model import RenderSettings  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# diffusers' DPM-Solver trips a numpy 2 DeprecationWarning on every frame; it is not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    clips = tmp_path_factory.mktemp("clips")
    return {"Alice": clone_voice(noise_clip(clips / "alice.wav", 2.0, seed=1), "alice"),
            "Ben": clone_voice(noise_clip(clips / "ben.wav", 1.5, 48000, channels=2, seed=2), "ben"),
            "Cleo": clone_voice(noise_clip(clips / "cleo.wav", 1.2, seed=3), "cleo")}


@pytest.fixture(scope="module")
def loaded(model_dir):
    checkpoint = configuration.inspect_checkpoint(model_dir)
    return configuration.load(checkpoint, torch.device("cpu"), torch.float32, "sdpa")


# -- loading ---------------------------------------------------------------------------------------------


def test_save_load_round_trip(model_dir, loaded, tmp_path):
    model, processor = loaded
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    again, processor2 = configuration.load(configuration.inspect_checkpoint(tmp_path / "copy"), torch.device("cpu"),
                                           torch.float32, "sdpa")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert again.generation_config.noise_scheduler_class == "DPMSolverMultistepScheduler"
    assert again.generation_config.guidance_scale == 1.3
    assert again.config.text_config._attn_implementation == "sdpa"
    assert processor2.chat_template == processor.chat_template


def test_env_var_and_missing_dir(monkeypatch, model_dir):
    monkeypatch.delenv("VIBEVOICE_MODEL_DIR", raising=False)
    with pytest.raises(CheckpointError, match="--model-dir"):
        configuration.inspect_checkpoint(None)
    monkeypatch.setenv("VIBEVOICE_MODEL_DIR", str(model_dir))
    assert configuration.inspect_checkpoint(None).path == model_dir
    with pytest.raises(CheckpointError, match="does not exist"):
        configuration.inspect_checkpoint(model_dir / "nope")


def test_original_layout_is_refused_with_what_to_do(tmp_path):
    """transformers' converter downloads by Hub id: the message must not pretend it converts this directory."""
    with pytest.raises(CheckpointError, match="original VibeVoice layout") as info:
        configuration.inspect_checkpoint(write_original_layout(tmp_path / "orig"))
    message = str(info.value)
    assert "vibevoice/VibeVoice-1.5B-hf" in message  # a converted checkpoint, by name
    assert "machine with internet" in message and "cannot convert a local" in message


def _broken_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(model_dir, copy)
    return copy


def test_missing_files_are_named(model_dir, tmp_path):
    copy = _broken_copy(model_dir, tmp_path)
    (copy / "chat_template.jinja").unlink()
    (copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing chat_template.jinja|tokenizer.json") as info:
        configuration.inspect_checkpoint(copy)
    assert "tokenizer.json" in str(info.value) and "chat_template.jinja" in str(info.value)
    (copy / "model.safetensors").unlink()
    for name in ("chat_template.jinja",):
        shutil.copy(model_dir / name, copy / name)
    shutil.copy(model_dir / "tokenizer.json", copy / "tokenizer.json")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        configuration.inspect_checkpoint(copy)


def test_wrong_model_type(model_dir, tmp_path):
    copy = _broken_copy(model_dir, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["model_type"] = "qwen2"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_type 'qwen2', expected 'vibevoice'"):
        configuration.inspect_checkpoint(copy)


def test_weights_that_do_not_match_the_config(model_dir, tmp_path):
    copy = _broken_copy(model_dir, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 3  # the weights have 2 layers
    config["text_config"]["layer_types"] = ["full_attention"] * 3
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match its config.json: .*missing"):
        configuration.inspect_checkpoint(copy)


def test_sharded_untied_checkpoint_like_large(tmp_path):
    """VibeVoice-Large ships sharded and does not tie its LM head; a missing shard is named."""
    from vibevoice_tiny import build_tiny_checkpoint

    directory = build_tiny_checkpoint(tmp_path / "large-like", tie=False, max_shard_size="1MB")
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) > 1 and (directory / "model.safetensors.index.json").exists()
    checkpoint = configuration.inspect_checkpoint(directory)
    model, _ = configuration.load(checkpoint, torch.device("cpu"), torch.float32, "sdpa")
    assert not torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)
    shards[-1].unlink()
    with pytest.raises(CheckpointError, match=f"lacks 1 weight shard.*{shards[-1].name}"):
        configuration.inspect_checkpoint(directory)


# -- the state adapter -------------------------------------------------------------------------------------


def test_adapter_matches_installed_transformers():
    """Fails loudly when transformers changes any private method the state adapter hooks."""
    from vibevoice.engines.vibevoice.state import HOOKED, check_transformers, source_fingerprints

    check_transformers()
    assert source_fingerprints() == HOOKED


def test_adapter_detects_a_change(monkeypatch):
    from vibevoice.engines.vibevoice import state

    monkeypatch.setitem(state.HOOKED, "VibeVoiceGenerationMixin._sample", "0000000000000000")
    with pytest.raises(state.AdapterMismatch, match="_sample"):
        state.check_transformers()


# -- chunked generation -------------------------------------------------------------------------------------


def _prompt(processor, with_clip: bool = True):
    from vibevoice.engines.vibevoice.processing import build_inputs, check_clip, conversation

    script = parse_script(VOICE_SCRIPT)
    clip = check_clip(np.random.RandomState(0).randn(36000).astype(np.float32) * 0.1, 24000)
    clips = {"Alice": clip} if with_clip else {}
    return build_inputs(processor, [conversation(script.lines, {"Alice": "0", "Ben": "1"}, clips)])


def _run_chunks(model, inputs, plan, chunk, options, frames_out=None):
    from vibevoice.engines.vibevoice.generation import concat_audio, generate_chunk

    carry, pieces, length = None, [], inputs["input_ids"].shape[1]
    torch.manual_seed(0)
    while carry is None or not carry.finished.all():
        result = generate_chunk(model, inputs, carry, chunk, options, on_frame=frames_out,
                                logits_processors=[ForceTokens([plan], length)])
        carry = result.carry
        pieces.append(result.audio[0])
        torch.manual_seed(1234)  # whatever happens between calls must not matter: the RNG state is carried
    return concat_audio(pieces)


def test_chunked_is_bit_identical_to_one_generate_call(loaded):
    from vibevoice.engines.vibevoice.generation import GenerationOptions

    model, processor = loaded
    inputs = _prompt(processor)
    plan = speech_plan(7)
    torch.manual_seed(0)
    reference = model.generate(**inputs, logits_processor=[ForceTokens([plan], inputs["input_ids"].shape[1])],
                               max_new_tokens=len(plan) + 2)[0][0].numpy()  # stock transformers, no hooks
    chunked = _run_chunks(model, inputs, plan, 3, GenerationOptions())
    assert reference.size == 7 * 3200
    assert np.array_equal(chunked, reference)


def test_two_segments_chunked_equal_one_call_and_codec_reset_matters(loaded):
    """With a segment boundary: chunking is still exact; resetting the codec caches changes segment 2."""
    from vibevoice.engines.vibevoice.generation import GenerationOptions

    model, processor = loaded
    inputs = _prompt(processor, with_clip=False)
    plan = speech_plan(5, segments=2)
    one = _run_chunks(model, inputs, plan, 100, GenerationOptions())
    for chunk in (1, 4, 6):
        assert np.array_equal(_run_chunks(model, inputs, plan, chunk, GenerationOptions()), one), chunk
    upstream = _run_chunks(model, inputs, plan, 100, GenerationOptions(reset_codec_at_segment_end=False))
    assert np.array_equal(upstream[: 5 * 3200], one[: 5 * 3200])
    assert not np.array_equal(upstream[5 * 3200:], one[5 * 3200:])


# -- the engine: render_job, streaming, resume ---------------------------------------------------------------


def test_render_job_reports_progress_and_spans_and_saves_plain_tensors(model_dir, voices, tmp_path):
    engine = forced_engine(model_dir, speech_plan(9))
    progress = []
    result = engine.render_job(tmp_path / "job", parse_script(VOICE_SCRIPT), voices, RenderSettings(),
                               progress=lambda done, total: progress.append((done, total)))
    assert result.audio.dtype == np.float32 and result.audio.size == 9 * 3200
    assert 0.01 < float(np.sqrt(np.mean(result.audio ** 2))) < 1  # the tiny codec decodes at speech-like levels
    assert [line for line, _, _ in result.spans] == [0, 1, 2]
    assert result.spans[0][1] == 0 and result.spans[-1][2] == result.audio.size
    assert [done for done, _ in progress] == [4, 8, 11]  # chunks of 4 steps: 9 frames + end-of-speech + EOS
    for path in (tmp_path / "job" / "state" / "vibevoice").rglob("*.pt"):
        torch.load(path, weights_only=True)  # plain tensors only


def test_resume_in_a_new_process_is_bit_identical(model_dir, voices, tmp_path):
    script = parse_script(VOICE_SCRIPT)
    plan = speech_plan(14)
    whole = forced_engine(model_dir, plan).render_job(tmp_path / "whole", script, voices, RenderSettings(seed=7))

    stop = threading.Event()
    engine = forced_engine(model_dir, plan)
    with pytest.raises(Cancelled):
        engine.render_job(tmp_path / "part", script, voices, RenderSettings(seed=7),
                          progress=lambda done, total: stop.set() if done >= 8 else None, stop=stop)
    progress = json.loads((tmp_path / "part/state/vibevoice/scene-000/progress.json").read_text())
    assert progress["chunks"] == 2 and progress["steps"] == 8

    code = f"""
import sys, json, torch, numpy as np
torch.set_num_threads(1)
sys.path.insert(0, {str(Path(__file__).parent)!r})
from vibevoice_tiny import forced_engine, speech_plan, clone_voice, VOICE_SCRIPT
from vibevoice.script import parse_script
from vibevoice.job.model import RenderSettings
voices = {{k: clone_voice(clip, vid) for k, (vid, clip) in json.loads(sys.argv[1]).items()}}
engine = forced_engine({str(model_dir)!r}, speech_plan(14))
result = engine.render_job({str(tmp_path / 'part')!r}, parse_script(VOICE_SCRIPT), voices, RenderSettings(seed=7))
np.save({str(tmp_path / 'resumed.npy')!r}, result.audio)
"""
    clips = json.dumps({name: (v.id, v.spec.clip) for name, v in voices.items()})
    done = subprocess.run([sys.executable, "-c", code, clips], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = np.load(tmp_path / "resumed.npy")
    assert resumed.size == 14 * 3200
    assert np.array_equal(resumed, whole.audio)


def test_state_of_another_render_is_refused(model_dir, voices, tmp_path):
    from vibevoice.engines.vibevoice import StateMismatch

    engine = forced_engine(model_dir, speech_plan(3))
    engine.render_job(tmp_path / "job", parse_script(VOICE_SCRIPT), voices, RenderSettings(seed=1))
    with pytest.raises(StateMismatch, match="different script, voices, settings"):
        engine.render_job(tmp_path / "job", parse_script(VOICE_SCRIPT), voices, RenderSettings(seed=2))


def test_more_than_four_speakers_refused(model_dir, voices, tmp_path):
    text = "\n".join(f"[S{i}] Line number {i}." for i in range(1, 6))
    script = parse_script(text, max_speakers=5)
    engine = forced_engine(model_dir, speech_plan(2))
    every = {f"S{i}": voices["Alice"] for i in range(1, 6)}
    with pytest.raises(ValueError, match="at most 4 speakers; this script has 5"):
        engine.render_job(tmp_path / "job", script, every, RenderSettings())


def test_batch_rows_keep_their_own_state(loaded):
    """Batching is ``generation.run`` on a left-padded batch (the GPU benchmark measures its throughput):
    rows of different prompt lengths each get their own audio, and a row that finishes early stays
    finished (held at EOS) while the other goes on, across chunk calls."""
    from vibevoice.engines.vibevoice.generation import GenerationOptions, run
    from vibevoice.engines.vibevoice.processing import build_inputs, check_clip, conversation, scene_roles

    model, processor = loaded
    script = parse_script(VOICE_SCRIPT)
    clip = check_clip(np.random.RandomState(0).randn(36000).astype(np.float32) * 0.1, 24000)
    rows = [script.lines[:1], script.lines]
    inputs = build_inputs(processor, [conversation(lines, scene_roles(lines), {"Alice": clip}) for lines in rows])
    assert inputs["attention_mask"][0].sum() < inputs["attention_mask"][1].sum()  # real left padding
    plans = [speech_plan(3), speech_plan(6)]
    audio = run(model, inputs, GenerationOptions(), max_frames=20, chunk_frames=2,
                logits_processors=[ForceTokens(plans, inputs["input_ids"].shape[1])])
    assert [a.size for a in audio] == [3 * 3200, 6 * 3200]
    assert all(np.isfinite(a).all() and np.abs(a).max() > 0 for a in audio)
    assert EOS == 256


def test_kokoro_preset_gives_a_reference_clip(model_dir):
    """Presets work on VibeVoice too: the embedded engine renders a reference clip for them."""
    from vibevoice.engines.vibevoice.processing import MIN_CLIP_SECONDS, reference_clip
    from vibevoice.voices import load_templates

    preset = next(t for t in load_templates().values() if t.engine == "kokoro" and "en" in t.languages)
    forced_engine(model_dir, speech_plan(1)).check_voice(preset)
    clip = reference_clip(preset, "en")
    assert clip.seconds > max(MIN_CLIP_SECONDS, 4) and clip.audio.dtype == np.float32


def test_synthesize_segments_statelessly(model_dir, voices):
    from vibevoice.engines.base import Segment

    engine = forced_engine(model_dir, speech_plan(4))
    segments = [Segment(5, "Alice", "Hello there.", "en"), Segment(6, "Ben", "Hi.", "en")]
    result = engine.synthesize(segments, voices)
    assert result.audio.size == 4 * 3200
    assert [s[0] for s in result.spans] == [5, 6] and result.spans[-1][2] == result.audio.size


def test_long_script_is_split_into_scenes_that_keep_the_voices(model_dir, voices, tmp_path):
    """Every scene's prompt numbers its voices 0..k-1 in order of appearance in that scene (as the original
    numbers every prompt), and each speaker keeps its own clip in every scene."""
    names = ["Alice", "Ben", "Cleo"]
    text = "\n".join([f"[{names[i % 3]}] Line {i}: " + "more words here " * 5 for i in range(20)]
                     + [f"[Cleo] Line {i}: " + "more words here " * 5 for i in range(20, 30)])
    script = parse_script(text)
    engine = forced_engine(model_dir, speech_plan(3))
    engine.scene_minutes = 0.01  # a context of ~2000 positions: the script needs several scenes
    prompts = []
    scene_prompt = engine.scene_prompt

    def spy(scene, clips):
        prompts.append((scene, clips, scene_prompt(scene, clips)))
        return prompts[-1][2]

    engine.scene_prompt = spy
    result = engine.render_job(tmp_path / "job", script, voices, RenderSettings(turn_gap=0.1))
    scenes = sorted((tmp_path / "job/state/vibevoice").glob("scene-*"))
    assert len(scenes) >= 2 and len(prompts) == len(scenes)
    assert any("rendered as scene 1: script lines 1-" in w for w in engine.warnings)
    numbers: dict[str, set[str]] = {}
    for scene, clips, (messages, ordered) in prompts:
        order = list(dict.fromkeys(line.speaker for line in scene.lines))
        assert [m["role"] for m in messages] == [str(order.index(line.speaker)) for line in scene.lines]
        assert len(ordered) == len(order)  # one clip per speaker of this scene, under its number
        for number, (speaker, audio) in enumerate(zip(order, ordered)):
            assert np.array_equal(audio, clips[speaker].audio), (scene.index, speaker)
            numbers.setdefault(speaker, set()).add(str(number))
        voice_part = engine.processor.apply_chat_template(messages, tokenize=False).split("Text input:")[0]
        assert [int(n) for n in re.findall(r"Speaker (\d+):", voice_part)] == list(range(len(order)))
    assert any(len(n) > 1 for n in numbers.values())  # some speaker is numbered differently in a later scene
    last_scene, _, (last_messages, _) = prompts[-1]
    assert last_scene.lines[0].speaker == "Cleo" and {m["role"] for m in last_messages} == {"0"}  # not a lone "2"
    gap = int(0.1 * 24000)
    assert result.audio.size == len(scenes) * 3 * 3200 + (len(scenes) - 1) * gap
    assert [line for line, _, _ in result.spans] == list(range(30))


def test_curly_apostrophes_reach_the_model_straight():
    from vibevoice.engines.vibevoice.processing import conversation, scene_roles

    script = parse_script("[Alice] It\u2019s Ben\u2019s turn.\n[Ben] I\u2019m here.")
    messages, _ = conversation(script.lines, scene_roles(script.lines), {})
    assert [m["content"][0]["text"] for m in messages] == ["It's Ben's turn.", "I'm here."]
