"""The streamed export (issue 16): the same programme as the in-memory one, in bounded pieces.

Block-wise loudness equals pyloudnorm's, the streamed files equal the in-memory assembly, the block
writers equal the one-piece writers, the export never asks for more than a block of audio at once,
and a full disk during a streamed write fails like any other write. No times are asserted.
"""

from __future__ import annotations

import errno
import io

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from vibevoice import export, watermark
from vibevoice.audio import SAMPLE_RATE, pcm16
from vibevoice.export import FlacSink, Mp3Sink, WavSink, assemble, export_job, job_provenance, write_wav
from vibevoice.loudness import integrated_loudness


def _speech(job) -> np.ndarray:
    return np.concatenate([job.chunk_audio(c) for c in job.manifest.chunks])


def test_blockwise_loudness_equals_pyloudnorm_on_speech(rendered_job):
    job, _ = rendered_job
    speech = _speech(job)
    signals = [speech, speech[: int(1.06 * SAMPLE_RATE)], np.concatenate([speech, np.zeros(5 * SAMPLE_RATE), speech * 0.01]),
               np.tile(speech, 3) * 0.2]
    for signal in signals:
        reference = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(signal.astype(np.float64))
        for block in (997, 4800, 1 << 20):
            assert abs(integrated_loudness(signal, SAMPLE_RATE, block) - reference) < 0.01


def test_streamed_export_equals_in_memory_assembly(rendered_job):
    job, outputs = rendered_job
    programme = assemble(job, stems=True)
    wav, _ = sf.read(outputs["wav"], dtype="float32")
    assert wav.shape == programme.audio.shape
    assert np.abs(wav - pcm16(programme.audio) / 32768).max() <= 1.5 / 32768  # a rounding step at most
    for speaker, track in programme.stems.items():
        stem, _ = sf.read(outputs[f"stem:{speaker}"], dtype="float32")
        assert np.abs(stem - pcm16(track) / 32768).max() <= 1.5 / 32768
    flac, _ = sf.read(outputs["flac"], dtype="float32")
    assert np.array_equal(flac, wav)


def test_marker_range_by_range_equals_embed(rendered_job):
    job, _ = rendered_job
    speech = _speech(job)
    signal = np.concatenate([np.tile(speech, 3), np.zeros(int(watermark.BLOCK_SECONDS * 2.2 * SAMPLE_RATE)), speech])

    def read(lo, hi):
        out = np.zeros(hi - lo, np.float32)
        a, z = max(lo, 0), min(hi, signal.size)
        out[a - lo:z - lo] = signal[a:z] if a < z else 0
        return out

    marker = watermark.Marker(read, signal.size)
    pieces = [marker(lo, min(lo + 123_457, signal.size)) for lo in range(0, signal.size, 123_457)]
    assert np.abs(np.concatenate(pieces) - watermark.embed(signal)).max() < 1e-6


def _blocks(audio, size=70_001):
    return [pcm16(audio[i:i + size]) for i in range(0, audio.size, size)]


def test_block_writers_equal_one_piece_writers(rendered_job, tmp_path):
    job, _ = rendered_job
    audio, stamp = _speech(job) * 0.5, job_provenance(job)
    write_wav(audio, tmp_path / "whole.wav", stamp, "t")
    streamed = io.BytesIO()
    sink = WavSink(streamed, audio.size, stamp, "t")
    for block in _blocks(audio):
        sink.write(block)
    sink.close()
    assert streamed.getvalue() == (tmp_path / "whole.wav").read_bytes()

    mp3 = io.BytesIO()
    sink = Mp3Sink(mp3, stamp, "t")
    for block in _blocks(audio):
        sink.write(block)
    sink.close()
    encoder = export.mp3_encoder()
    whole = bytes(encoder.encode(pcm16(audio).tobytes()) + encoder.flush())
    assert mp3.getvalue().endswith(whole)

    with open(tmp_path / "s.flac", "w+b") as f:
        sink = FlacSink(f, stamp, "t")
        for block in _blocks(audio):
            sink.write(block)
        sink.close()
    assert np.array_equal(sf.read(tmp_path / "s.flac", dtype="int16")[0], pcm16(audio))


def test_export_reads_audio_only_a_block_at_a_time(rendered_job, tmp_path, monkeypatch):
    """Memory that does not grow with length: no whole chunk list or programme is ever held."""
    job, _ = rendered_job
    asked: list[int] = []
    read = export.Timeline.read
    monkeypatch.setattr(export.Timeline, "read", lambda self, lo, hi, speaker=None: asked.append(hi - lo) or
                        read(self, lo, hi, speaker))
    monkeypatch.setattr(type(job), "chunk_audio", lambda *a: pytest.fail("a whole chunk was loaded"))
    monkeypatch.setattr(export, "BLOCK", 48_000)  # 2 s blocks: this short programme spans several
    export_job(job, tmp_path / "short.mp3", stems=True)
    assert asked and max(asked) <= 48_000 + 2 * (3 * export.LIMITER_REACH + watermark.FILTER_TAPS)
    assert sum(asked) > 4 * job.manifest.chunks[-1].samples  # several passes, all through ranges


class _FullDisk(io.BytesIO):
    def write(self, data):
        if self.tell() + len(data) > 20_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_full_disk_is_reported_by_every_streamed_writer(rendered_job):
    job, _ = rendered_job
    audio, stamp = _speech(job), job_provenance(job)
    for make in (lambda f: WavSink(f, audio.size, stamp, "t"), lambda f: Mp3Sink(f, stamp, "t", 192),
                 lambda f: FlacSink(f, stamp, "t")):
        with pytest.raises(OSError) as caught:
            sink = make(_FullDisk())
            for block in _blocks(audio):
                sink.write(block)
            sink.close()
        assert caught.value.errno == errno.ENOSPC


def test_a_full_disk_during_export_leaves_no_partial_file(rendered_job, tmp_path, monkeypatch):
    job, _ = rendered_job
    monkeypatch.setattr(export, "open_atomic", _failing_open_atomic(tmp_path))
    with pytest.raises(OSError):
        export_job(job, tmp_path / "full.mp3", stems=True)
    assert not list(tmp_path.glob("full*")) and not list(tmp_path.glob(".full*"))


def _failing_open_atomic(tmp_path):
    """``open_atomic`` whose files refuse to grow past 50 kB, as a full disk would."""
    from contextlib import contextmanager

    from vibevoice import atomic

    class Capped:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, data):
            if self.f.tell() + len(data) > 50_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

    @contextmanager
    def opener(path):
        with atomic.open_atomic(path) as f:
            yield Capped(f)
    return opener
