"""Offline quality checks for rendered speech: is it the right words, the right voice, clean audio?

One module per metric, each a plain function over float32 audio, so the renderer (``check``), the
``vibevoice qa`` command (``cli``) and the benchmark (``bench/bench_quality.py``) share them:

- ``intelligibility``: WER (English) / CER (Mandarin) of Whisper's transcript against the script;
- ``recognise``: Whisper from our wheels, transcripts with word times, script lines timed in audio;
- ``speakers``: speaker embeddings, line attribution, drift, a reference embedding per voice;
- ``seams``: clicks at chunk joins and silences longer than planned;
- ``loudness``: per-speaker LUFS, true peak, speaking rate;
- ``mos``: predicted naturalness (Distill-MOS);
- ``report``: all of them over a job directory; ``check``: the cheap per-take gate.

The models are evaluation aids, never part of rendering's default path; every one of them loads
from an installed wheel (the ``qa`` extra) and nothing is downloaded.
"""
