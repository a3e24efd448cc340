"""The VibeVoice engine in bf16 and fp16 (torch runs both on CPU), and its dtype / attention choice per device.

The tiny checkpoint runs through the engine as a user's would: a full render, chunked against one call,
and stopped then resumed in a new process, on both voice paths (a Kokoro preset rendered to a reference
clip, and a cloned clip). Half-precision results are compared within a tolerance for the dtype; on this
CPU they come out identical, but other kernels (CUDA) need not be, so bit-identity is asserted only in
fp32 (``test_vibevoice_engine.py``). Before the cast of the clips to the model dtype every one of these
renders crashed at the acoustic tokenizer's first convolution.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from vibevoice_tiny import VOICE_SCRIPT, clone_voice, forced_engine, noise_clip, speech_plan, tiny_dir  # noqa: E402

from vibevoice.engines.vibevoice import configuration  # noqa: E402
from vibevoice.errors import BadInput, Cancelled  # noqa: E402
from vibevoice.job.model import RenderSettings  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("one_torch_thread")]
FRAMES = 14
# Largest sample difference allowed, as a share of the signal's peak: a few units in the last place of
# each dtype's mantissa (bf16 keeps 8 bits, fp16 11), with room for the autoregressive feedback.
TOLERANCE = {"bf16": 0.03, "fp16": 0.005}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def cast(tmp_path_factory) -> dict:
    """Both voice paths in one cast: Alice is a Kokoro preset (rendered to a reference clip), Ben a cloned
    clip (a 48 kHz stereo file, resampled and mixed down)."""
    from vibevoice.voices import load_templates

    clips = tmp_path_factory.mktemp("dtype-clips")
    preset = next(t for t in load_templates().values() if t.engine == "kokoro" and "en" in t.languages)
    return {"Alice": preset, "Ben": clone_voice(noise_clip(clips / "ben.wav", 1.5, 48000, channels=2, seed=2), "ben")}


def _close(a: np.ndarray, b: np.ndarray, dtype: str) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE[dtype] * float(np.abs(b).max()))


def _speech_like(audio: np.ndarray) -> None:
    """Not silent, not overflowed: the comparisons above must not hold trivially (fp16 zeros, NaNs)."""
    assert audio.size == FRAMES * 3200 and np.isfinite(audio).all()
    assert 0.01 < float(np.sqrt(np.mean(audio ** 2))) < 1.0


def test_half_precision_renders_chunked_and_resumed_in_a_new_process(model_dir, cast, tmp_path):
    script, plan, settings = parse_script(VOICE_SCRIPT), speech_plan(FRAMES), RenderSettings(seed=5)
    whole, rendered_clips = {}, None
    for dtype in ("bf16", "fp16"):
        jobs = {name: tmp_path / f"{dtype}-{name}" for name in ("one-call", "chunked", "resumed")}
        engine = forced_engine(model_dir, plan, chunk_frames=100, dtype=dtype)  # chunk size is not in the identity
        assert engine.model.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        for job in jobs.values():  # Kokoro renders the preset's reference clip once; the other jobs reuse it
            if rendered_clips is not None:
                shutil.copytree(rendered_clips, job / "state/vibevoice/voices")
            if job == jobs["one-call"]:
                reference = engine.render_job(job, script, cast, settings).audio
                rendered_clips = rendered_clips or job / "state/vibevoice/voices"
        _speech_like(reference)
        engine.chunk_frames = 4
        _close(engine.render_job(jobs["chunked"], script, cast, settings).audio, reference, dtype)
        if dtype == "fp16":
            assert any("fp16 was asked for" in w for w in engine.warnings)
        stop = threading.Event()
        with pytest.raises(Cancelled):
            engine.render_job(jobs["resumed"], script, cast, settings, stop=stop,
                              progress=lambda done, total: stop.set() if done >= 8 else None)
        saved = torch.load(jobs["resumed"] / "state/vibevoice/scene-000/chunk-00001.pt", weights_only=True)
        assert saved["main"][0][0].dtype == engine.model.dtype  # the KV cache is saved in the model dtype
        whole[dtype] = (reference, str(jobs["resumed"]))

    code = f"""
import json, sys, numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {str(Path(__file__).parent)!r})
from vibevoice_tiny import VOICE_SCRIPT, clone_voice, forced_engine, speech_plan
from vibevoice.job.model import RenderSettings
from vibevoice.script import parse_script
from vibevoice.voices import load_templates
preset, clip, jobs = json.loads(sys.argv[1])
cast = {{"Alice": load_templates()[preset], "Ben": clone_voice(clip, "ben")}}
for dtype, job in jobs:
    engine = forced_engine({str(model_dir)!r}, speech_plan({FRAMES}), chunk_frames=4, dtype=dtype)
    result = engine.render_job(job, parse_script(VOICE_SCRIPT), cast, RenderSettings(seed=5))
    np.save(job + "/resumed.npy", result.audio)
"""
    described = [cast["Alice"].id, cast["Ben"].spec.clip, [(dtype, job) for dtype, (_, job) in whole.items()]]
    done = subprocess.run([sys.executable, "-c", code, json.dumps(described)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for dtype, (reference, job) in whole.items():
        _close(np.load(Path(job) / "resumed.npy"), reference, dtype)


def test_fp16_warning_and_flash_attention_that_fails_to_load(model_dir, tmp_path):
    """fp16 on request warns in ``engine.warnings``; FlashAttention 2 failing while the model loads (here:
    flash_attn is not installed, and it needs CUDA anyway) falls back to SDPA with a warning, as in the
    original, and the render's identity records SDPA."""
    engine = forced_engine(model_dir, speech_plan(2), dtype="fp16")
    assert engine.dtype == torch.float16 and any("fp16 was asked for" in w for w in engine.warnings)
    notes: list[str] = []
    model, _ = configuration.load(configuration.inspect_checkpoint(model_dir), torch.device("cpu"), torch.float32,
                                  "flash_attention_2", notes)
    assert model.config.text_config._attn_implementation == "sdpa"
    assert len(notes) == 1 and "FlashAttention 2 failed to load" in notes[0] and "using SDPA" in notes[0]

    engine = forced_engine(model_dir, speech_plan(2))
    engine.attention = "flash_attention_2"  # as chosen on a CUDA machine where flash_attn imports
    engine.render_job(tmp_path / "job", parse_script("[Alice] Hi."), {"Alice": clone_voice(
        noise_clip(tmp_path / "a.wav", 1.5))}, RenderSettings())
    assert engine.attention == "sdpa" and any("FlashAttention 2 failed to load" in w for w in engine.warnings)


# -- choices per device (no accelerator needed: the checks are monkeypatched) --------------------------------


CUDA, MPS, CPU = torch.device("cuda"), torch.device("mps"), torch.device("cpu")


@pytest.mark.parametrize("device,bf16,expected", [(CUDA, True, torch.bfloat16), (CUDA, False, torch.float32),
                                                  (MPS, False, torch.float32), (CPU, False, torch.float32)])
def test_default_dtype_per_device(monkeypatch, device, bf16, expected):
    """The original's rule: bf16 on CUDA where supported, else fp32; fp32 on MPS ("MPS requires float32")."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    notes: list[str] = []
    assert configuration.choose_dtype(device, None, notes) == expected and notes == []


def test_explicit_dtypes(monkeypatch):
    notes: list[str] = []
    assert configuration.choose_dtype(MPS, "fp16", notes) == torch.float16
    assert len(notes) == 1 and "fp16" in notes[0] and "overflow" in notes[0]
    assert configuration.choose_dtype(CPU, "bf16", notes) == torch.bfloat16 and len(notes) == 1
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert configuration.choose_dtype(CUDA, "bf16", notes) == torch.bfloat16
    assert "no native bf16" in notes[-1]
    with pytest.raises(BadInput, match="unknown dtype"):
        configuration.choose_dtype(CPU, "int3")


class _FakeFlashAttn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``flash_attn`` findable; importing it works or fails the way a wheel built for another
    torch or CUDA fails (an ImportError naming an undefined symbol)."""

    def __init__(self, broken: bool):
        self.broken = broken

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "flash_attn" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if self.broken:
            raise ImportError("flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda")


@pytest.fixture
def flash_attn(monkeypatch):
    def install(state: str) -> None:
        monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
        if state != "absent":
            monkeypatch.setattr(sys, "meta_path", [_FakeFlashAttn(state == "broken"), *sys.meta_path])

    yield install
    sys.modules.pop("flash_attn", None)


@pytest.mark.parametrize("device,requested,flash,expected,warned", [
    (CUDA, None, "works", "flash_attention_2", False),
    (CUDA, None, "absent", "sdpa", False),  # not installed: SDPA, nothing to warn about
    (CUDA, None, "broken", "sdpa", True),  # installed but its import fails: SDPA and a warning
    (CUDA, "flash_attention_2", "absent", "sdpa", True),
    (CPU, None, "works", "sdpa", False),
    (CPU, "flash_attention_2", "works", "sdpa", True),  # it needs CUDA
    (MPS, None, "works", "sdpa", False),
    (CUDA, "eager", "works", "eager", False),
])
def test_attention_per_device(flash_attn, device, requested, flash, expected, warned):
    flash_attn(flash)
    notes: list[str] = []
    assert configuration.choose_attention(device, requested, notes) == expected
    assert bool(notes) == warned
    if warned:
        assert "using SDPA" in notes[0] and "lower audio quality" in notes[0]
    if flash == "broken":
        assert "undefined symbol" in notes[0]
