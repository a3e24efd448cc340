"""VibeVoice WebUI: long-form, multi-speaker dialogue audio from a pasted script.

The stages live in one module each, in the order a script flows through them:
``script`` (parse) → ``voices`` (templates) → ``render`` (chunked, resumable job) with an engine from
``engines/`` → ``export`` (join, loudness, WAV/MP3/subtitles). ``cli`` is a thin shell over them.
"""

__version__ = "0.1.0"
