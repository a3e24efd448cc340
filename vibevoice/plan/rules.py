"""The rules planner: deterministic, instant, always available, English and Mandarin.

It reads what the script already says about delivery: stage directions (``Line.hints``: "laughs",
"whispers", "笑"), punctuation (``?``, ``！``, ``…``), Mandarin sentence-final particles (吗, 呢, 吧)
and a short list of unmistakable words ("haha", "wow", "害怕"). It never guesses beyond that: a line
without cues is neutral. The LLM planners reuse the parts rules are good at (sentence type, pauses,
emphasis, rate from emotion) and only decide what rules cannot read: the emotion of an uncued line.
"""

from __future__ import annotations

import re

from .. import prosody
from ..script import Line, Script
from .schema import Emotion, LinePlan, SentenceType

EMOTIONS: tuple[str, ...] = Emotion.__args__  # the fixed vocabulary, in schema order

# Stage-direction words, matched as prefixes of the hint's words ("laugh" covers laughs, laughing).
# When a hint names several, the first one written wins: "laughs nervously" is a laugh.
_HINT_WORDS: dict[str, str] = {
    **{e: e for e in EMOTIONS},
    "angri": "angry", "happi": "happy", "excit": "excited", "surprise": "surprised", "skeptic": "skeptical",
    "amus": "amused", "fear": "fearful", "tender": "tender",
    "laugh": "amused", "chuckl": "amused", "giggl": "amused", "grin": "amused", "smirk": "amused",
    "joking": "amused", "teasing": "amused", "sarcastic": "skeptical", "doubt": "skeptical",
    "unconvinced": "skeptical", "suspicious": "skeptical", "raises an eyebrow": "skeptical",
    "cheerful": "happy", "smil": "happy", "joyful": "happy", "delighted": "happy",
    "thrilled": "excited", "eager": "excited", "enthusiastic": "excited", "shout": "angry", "yell": "angry",
    "furious": "angry", "annoyed": "angry", "irritated": "angry", "frustrat": "angry", "snap": "angry",
    "sigh": "sad", "cry": "sad", "sob": "sad", "tearful": "sad", "sadly": "sad", "gloomy": "sad",
    "gasp": "surprised", "shock": "surprised", "astonish": "surprised", "amazed": "surprised",
    "nervous": "fearful", "scared": "fearful", "afraid": "fearful", "terrified": "fearful", "trembl": "fearful",
    "anxious": "fearful", "panic": "fearful", "worried": "fearful",
    "soft": "tender", "gentl": "tender", "warm": "tender", "loving": "tender", "tenderly": "tender",
    "calmly": "calm", "relaxed": "calm", "quietly": "calm", "stern": "serious", "firm": "serious",
    "grave": "serious", "serious": "serious", "flat": "neutral",
    # Mandarin stage directions: matched anywhere in the hint (no spaces between words).
    "笑": "amused", "调侃": "amused", "开玩笑": "amused", "兴奋": "excited", "激动": "excited",
    "开心": "happy", "高兴": "happy", "愉快": "happy", "生气": "angry", "愤怒": "angry", "怒": "angry",
    "吼": "angry", "喊": "angry", "叹气": "sad", "叹": "sad", "哭": "sad", "难过": "sad", "伤心": "sad",
    "惊讶": "surprised", "吃惊": "surprised", "震惊": "surprised", "怀疑": "skeptical", "冷笑": "skeptical",
    "害怕": "fearful", "紧张": "fearful", "颤抖": "fearful", "温柔": "tender", "轻声": "tender", "平静": "calm", "冷静": "calm", "严肃": "serious",
}
# Hints that change pace or loudness but not the emotion (a whisper can be fond, scared or secret).
_SLOW_HINTS = ("slow", "hesitat", "whisper", "softly", "quietly", "慢", "犹豫", "小声", "低声", "轻声", "耳语")
_FAST_HINTS = ("fast", "quick", "rush", "hurr", "shout", "yell", "快", "急", "喊", "吼")
_PAUSE_HINTS = ("pause", "beat", "hesitat", "停顿", "犹豫", "沉默")
_LOUD_HINTS = ("shout", "yell", "scream", "loud", "very", "喊", "吼", "大声", "尖叫")

# Unmistakable words in the text itself, checked only when no hint decided. Kept short on purpose:
# a wrong guess read aloud is worse than a neutral line.
_TEXT_WORDS: dict[str, tuple[str, ...]] = {
    "amused": ("haha", "hahaha", "hehe", "lol", "哈哈", "嘿嘿", "呵呵"),
    "surprised": ("wow", "whoa", "no way", "oh my god", "哇", "天哪", "天啊", "居然", "竟然"),
    "excited": ("can't wait", "awesome", "yay", "woohoo", "太棒了", "兴奋", "激动"),
    "happy": ("glad", "wonderful", "congratulations", "happy", "太好了", "开心", "高兴", "恭喜"),
    "sad": ("sad", "unfortunately", "miss you", "难过", "伤心", "可惜"),
    "angry": ("how dare", "shut up", "i hate", "furious", "气死", "讨厌", "可恶"),
    "fearful": ("scared", "afraid", "terrified", "help me", "害怕", "救命", "可怕"),
    "skeptical": ("are you sure", "i doubt", "真的假的", "不会吧"),
    "tender": ("sweetheart", "honey", "darling", "love you", "宝贝", "亲爱的"),
    "calm": ("don't worry", "it's okay", "relax", "别担心", "别怕", "没关系"),
}
_HAN = re.compile("[\u4e00-\u9fff]")

# How each emotion moves the speaking rate at intensity 0.5 (scaled with intensity).
_BASE_INTENSITY = {"neutral": 0.3, "calm": 0.35}

_CLOSERS = "\"'”’)）」』】]》 "
_TRAILING_OFF = ("...", "…", "……")
_CUT_OFF = ("—", "--", "–", "——")
_ZH_QUESTION_PARTICLES = "吗呢吧么"
_EN_QUESTION_START = re.compile(
    r"(who|what|when|where|why|how|which|whose|do|does|did|is|are|was|were|can|could|will|would|should|"
    r"shall|may|have|has|had)\b", re.I)
_CAPS_WORD = re.compile(r"\b[A-Z][A-Z']{2,}\b")
_STARRED = re.compile(r"(?<![\w*])[*_]([^\s*_][^*_]*?)[*_](?![\w*])")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")
_COMMON_ACRONYMS = {"CEO", "USA", "NASA", "FBI", "CIA", "API", "GPU", "CPU", "URL", "BBC", "CNN", "DNA", "LOL"}


def plan_line(script: Script, index: int, *, emotion: str | None = None, intensity: float | None = None,
              note: str | None = None, confidence: float | None = None) -> LinePlan:
    """The rules' plan for one line; an LLM planner passes the emotion (and intensity, confidence) it chose."""
    line = script.lines[index]
    kind = sentence_type(line.text)
    source = "model" if emotion is not None else "rules"
    if emotion is None:
        emotion, why = emotion_cue(line)
        note = note if note is not None else why
        source = "hint" if hint_emotion(line.hints) else "rules"
    if intensity is None:
        intensity = _intensity(line, emotion, kind)
    before, after = _pauses(line)
    return LinePlan(line_index=index, emotion=emotion, intensity=round(intensity, 2), sentence_type=kind,
                    rate=_rate(line, emotion, intensity), pause_before=before, pause_after=after,
                    emphasis=emphasis_words(line.text), note=(note or "")[:200], emotion_source=source,
                    confidence=None if confidence is None else round(confidence, 3))


def plan_script(script: Script) -> list[LinePlan]:
    return [plan_line(script, i) for i in range(len(script.lines))]


def emotion_cue(line: Line) -> tuple[str, str]:
    """(emotion, why) from the line's hints, else from unmistakable words, else neutral."""
    if hint := hint_emotion(line.hints):
        return hint
    text = line.text.lower()
    found = [(pos, emotion, word) for emotion, words in _TEXT_WORDS.items() for word in words
             if (pos := _find(text, word, whole=True)) >= 0]
    if found:
        _, emotion, word = min(found)
        return emotion, f'says "{word}"'
    return "neutral", ""


def hint_emotion(hints: list[str]) -> tuple[str, str] | None:
    """The emotion a stage direction names, with the hint as the reason; None if it names none."""
    for hint in hints:
        found = [(pos, emotion) for word, emotion in _HINT_WORDS.items() if (pos := _find(hint, word)) >= 0]
        if found:
            return min(found)[1], f"hint ({hint})"
    return None


def _find(text: str, word: str, whole: bool = False) -> int:
    """Position of ``word`` starting a word of ``text`` (a whole word if ``whole``; anywhere for Han), or -1."""
    if _HAN.match(word):
        return text.find(word)
    m = re.search(rf"(?<![a-z]){re.escape(word)}" + (r"(?![a-z])" if whole else ""), text)
    return m.start() if m else -1


def sentence_type(text: str) -> SentenceType:
    """The type of the line's last sentence: that is where the voice rises or falls."""
    t = text.rstrip(_CLOSERS)
    trailing = False
    while t.endswith(_TRAILING_OFF) or t.endswith(("~", "～")):
        t, trailing = t.rstrip(".…~～").rstrip(_CLOSERS), True
    if not t:
        return "statement"
    tail = t[-3:]
    if "?" in tail or "？" in tail:
        return "question"
    if t[-1] in "!！":
        return "exclamation"
    if t.rstrip("。.，,").endswith("吗"):
        return "question"  # 吗 asks even after a stray 。 or a trailing-off
    if trailing or t[-1] in ".。，,":
        return "statement"
    # No punctuation at all: a final 呢/吧/么 or an English question word still asks.
    last = _SENTENCE_END.split(t)[-1]
    if t[-1] in _ZH_QUESTION_PARTICLES or (_EN_QUESTION_START.match(last) and not _HAN.search(last)):
        return "question"
    return "statement"


def emphasis_words(text: str) -> list[str]:
    """Words the writer stressed: *starred* or _underlined_, or SHOUTED in an otherwise normal line."""
    words = [m.group(1) for m in _STARRED.finditer(text)]
    if any(c.islower() for c in text):
        words += [w for w in _CAPS_WORD.findall(text) if w not in _COMMON_ACRONYMS]
    return list(dict.fromkeys(words))[:8]


def rate_for(emotion: str, intensity: float, overrides: dict[str, dict[str, float]] | None = None) -> float:
    """Speaking-rate factor for an emotion: its tendency, stronger with intensity, clamped to the schema
    (``overrides``: a voice template's per-emotion recipe values)."""
    return prosody.planned_rate(emotion, intensity, overrides)


def _rate(line: Line, emotion: str, intensity: float) -> float:
    rate = rate_for(emotion, intensity)
    hints = " ".join(line.hints)
    if any(h in hints for h in _SLOW_HINTS):
        rate *= 0.92
    if any(h in hints for h in _FAST_HINTS):
        rate *= 1.08
    return round(min(1.3, max(0.7, rate)), 2)


def _intensity(line: Line, emotion: str, kind: SentenceType) -> float:
    value = _BASE_INTENSITY.get(emotion, 0.5)
    text, hints = line.text, " ".join(line.hints)
    if kind == "exclamation":
        value += 0.15
    if "!!" in text or "！！" in text or emphasis_words(text):
        value += 0.1
    if any(h in hints for h in _LOUD_HINTS):
        value += 0.15
    if any(h in hints for h in ("whisper", "小声", "低声", "耳语", "softly", "轻声")):
        value -= 0.15
    return min(1.0, max(0.0, value))


def _pauses(line: Line) -> tuple[float | None, float | None]:
    """A beat before hesitant lines, a held silence after trailing off, none after a cut-off line.

    None means "the renderer's natural gap"; the script's own ``[pause]`` tags are separate and come
    on top (they are in ``Line.pause_before``).
    """
    hints = " ".join(line.hints)
    before = 0.5 if any(h in hints for h in _PAUSE_HINTS) else None
    text = line.text.rstrip(_CLOSERS)
    if text.endswith(_CUT_OFF):
        return before, 0.0
    if text.endswith(_TRAILING_OFF):
        return before, 0.7
    return before, None
