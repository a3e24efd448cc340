"""Parse a pasted dialogue script into speaker-tagged lines.

People arrive with scripts written for other tools, so the grammar accepts the common dialects
instead of making anyone convert: ``Speaker 1: text`` (Microsoft VibeVoice's demo scripts),
``[1]: text`` (the ComfyUI VibeVoice nodes), ``[S1] text`` (Dia, MOSS-TTSD), ``[Alice]`` and
``【A】`` (hand-written and Chinese-IME scripts). Digits-only tags all mean ``Speaker N``.

Stage directions are the classic way a TTS script goes wrong: the model reads "(laughs)" aloud.
``(laughs)``, ``（笑）`` and ``{excited}`` are therefore hints, kept as metadata and never spoken.
Silence is explicit (``[pause 2s]``) because engines cannot be trusted to pause on punctuation.

Everything becomes one unit, `Line`, shared by the planner, engines, page, API and subtitles.
Problems are collected in one pass and raised together with line and column: someone fixing a
long paste wants the whole list at once, not one error per round trip.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from .errors import BadInput

MAX_SCRIPT_BYTES = 400_000  # ~5x the text of 90 minutes of English speech; parses in well under a second
MAX_SPEECH_SECONDS = 90 * 60
DEFAULT_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 30.0
MAX_NAME_CHARS = 32
# Speaking rates for estimates: 150 words/min is ~15 characters/s of English (spaces included);
# Mandarin runs ~4-5 syllables/s and each Han character is one syllable.
EN_CHARS_PER_SECOND = 15.0
ZH_HAN_PER_SECOND = 4.5
NARRATOR = "Narrator"
_MIXED_SHARE = 0.25  # the minority script must fill this share of speaking time to count as "mixed"

_NEWLINES = re.compile(r"\r\n?")
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")  # nothing to speak in these alone
_SSML = re.compile(r"</?(?:speak|break|prosody|emphasis|say-as|voice|phoneme|sub|audio|mark|lang)\b[^<>]*>", re.I)
MAX_PROBLEMS_SHOWN = 50  # a reply lists this many problems, then says how many more
_SPEAKER_N = re.compile(r"\s*(speaker\s*[0-9]+)\s*[:：]", re.I)
_SPECIAL = re.compile(r"[\[\]【】(){}（）]")
_TAGS = {"[": re.compile(r"\[([^\[\]]*)\]\s*[:：]?"), "【": re.compile(r"【([^【】]*)】\s*[:：]?")}
_PAUSE = re.compile(r"pause(?![^\W\d])\s*[:：]?\s*(.*)", re.I | re.S)
_PAUSE_LEN = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|secs?|seconds?)?", re.I)
_NUMBERED = re.compile(r"(?:speaker ?)?([0-9]+)", re.I)
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_WIDE = re.compile("[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]")
_OPENERS = {"(": ")）", "（": ")）", "{": "}"}  # half- and full-width parens mix freely (IME slips)
_NO_SPACE_BEFORE = ",.;:!?…"
_PAUSE_FORMS = "[pause], [pause 1.5s], [pause 800ms] or [pause: 2s]"
_NAME_RULE = f"letters, digits, spaces and _ - . ' (at most {MAX_NAME_CHARS} characters)"


class Line(BaseModel):
    """One spoken line: the unit the planner, engines, page, API and subtitles all use."""

    model_config = ConfigDict(frozen=True)
    index: int = Field(ge=0)
    turn: int = Field(ge=0)
    speaker: str
    text: str = Field(min_length=1)
    hints: list[str] = []
    pause_before: float = Field(default=0.0, ge=0)
    language: Literal["en", "zh", "mixed"]
    source_line: int = Field(ge=1)
    column: int = Field(ge=1)


class Script(BaseModel):
    """A parsed script: lines in order, speakers in order of first appearance."""

    model_config = ConfigDict(frozen=True)
    lines: list[Line]
    speakers: list[str]
    trailing_pause: float = 0.0

    def estimated_seconds(self) -> float:
        """Rough duration (speech plus requested pauses), for progress bars and the length cap."""
        speech = sum(estimate_speech_seconds(line.text, line.language) for line in self.lines)
        return speech + sum(line.pause_before for line in self.lines) + self.trailing_pause

    def speaker_languages(self) -> dict[str, set[str]]:
        """Which languages each speaker uses, so default voices can match (a Mandarin voice for 中文)."""
        langs: dict[str, set[str]] = {s: set() for s in self.speakers}
        for line in self.lines:
            langs[line.speaker].add(line.language)
        return langs


class Problem(BaseModel):
    """One thing wrong with a script, located so the page can underline it."""

    model_config = ConfigDict(frozen=True)
    line: int
    column: int
    message: str
    expected: str | None = None

    def __str__(self) -> str:
        tail = f" (expected: {self.expected})" if self.expected else ""
        return f"line {self.line}, column {self.column}: {self.message}{tail}"


class ScriptError(BadInput):
    """Every problem found in one pass, so the user can fix them all at once."""

    def __init__(self, problems: list[Problem], total: int | None = None):
        self.total = len(problems) if total is None else total
        self.problems = list(problems[:MAX_PROBLEMS_SHOWN])  # a page of 400 000 "[" is 400 000 problems
        more = self.total - len(self.problems)
        super().__init__("\n".join(str(p) for p in self.problems)
                         + (f"\n… and {more} more problem(s); fix these first" if more > 0 else ""))

    def __reduce__(self):  # keep `problems` across pickling (worker processes)
        return (type(self), (self.problems, self.total))


class _Tok(NamedTuple):
    kind: Literal["tag", "pause", "text", "hint", "blank"]
    value: str | float | None  # tag: canonical name (None if invalid); pause: seconds
    line: int
    col: int
    shown: str = ""  # the tag as written, for messages


def estimate_speech_seconds(text: str, language: str) -> float:
    """Seconds to speak `text`: Han at ZH_HAN_PER_SECOND, everything else at EN_CHARS_PER_SECOND.

    In Mandarin text digits are read one syllable each, so they count like Han characters.
    """
    if language not in ("en", "zh", "mixed"):
        raise ValueError(f"language must be 'en', 'zh' or 'mixed', not {language!r}")
    han = len(_HAN.findall(text))
    rest = " ".join(_HAN.sub(" ", text).split())
    if language == "zh":
        digits = sum(c in "0123456789" for c in rest)
        han, rest = han + digits, rest.translate(str.maketrans("", "", "0123456789"))
    return han / ZH_HAN_PER_SECOND + len(rest) / EN_CHARS_PER_SECOND


def _language(text: str) -> Literal["en", "zh", "mixed"]:
    """Weigh Han characters against Latin letters by speaking time; a few loanwords don't count."""
    han = len(_HAN.findall(text)) / ZH_HAN_PER_SECOND
    latin = len(_LATIN.findall(text)) / EN_CHARS_PER_SECOND
    if han and latin and min(han, latin) / (han + latin) >= _MIXED_SHARE:
        return "mixed"
    return "zh" if han > latin else "en"


def _problem(problems: list[Problem], line: int, col: int, message: str, expected: str | None = None) -> None:
    problems.append(Problem(line=line, column=col, message=message, expected=expected))


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `text[index]`."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _show(s: str, limit: int = 40) -> str:
    """Quote user text for a message without letting a 10 kB tag flood it."""
    return '"' + (s if len(s) <= limit else s[: limit - 1] + "…") + '"'


def _refuse(where: tuple[int, int], message: str, expected: str) -> ScriptError:
    """An error for input too broken to parse any further."""
    return ScriptError([Problem(line=where[0], column=where[1], message=message, expected=expected)])


def _decode(raw: str | bytes) -> str:
    """Size, encoding and binary checks, before any parsing: garbage is refused cheaply."""
    if isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        size = len(raw)
    else:
        raise TypeError(f"script must be str or bytes, not {type(raw).__name__}")
    if size > MAX_SCRIPT_BYTES:
        raise _refuse((1, 1), f"the script is {size:,} bytes; the limit is {MAX_SCRIPT_BYTES:,} bytes",
                      "a shorter script; split long ones into parts")
    if isinstance(raw, bytes):
        raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            before = _NEWLINES.sub("\n", raw[: err.start].decode("utf-8"))
            raise _refuse(_position(before, len(before)), f"byte 0x{raw[err.start]:02X} is not valid UTF-8; "
                          "is this a binary file?", "text saved as UTF-8") from None
    text = _NEWLINES.sub("\n", raw.removeprefix("\ufeff"))
    if bad := _BAD_CHAR.search(text):
        raise _refuse(_position(text, bad.start()), f"control character U+{ord(bad.group()):04X}; "
                      "is this a binary file?", "plain text")
    return text


def check_text(value):
    """A pydantic ``before`` validator for script fields: refuse what ``parse_script`` would refuse for its
    characters (a lone surrogate, a control character, over-size) with the line and column, before a
    generic "not a valid string" can hide where the problem is."""
    if isinstance(value, str):
        _decode(value)
    return value


def _name_char(c: str) -> bool:
    """Letters of any script (with their combining marks), digits, and the punctuation names use."""
    return c.isalnum() or c in " _-.'’" or unicodedata.category(c).startswith("M")


def _speaker_name(content: str, shown: str, line: int, col: int, problems: list[Problem]) -> str | None:
    """Canonical speaker name for a tag, or None (with a Problem) if the name is unusable."""
    name = " ".join(content.split())
    where = (problems, line, col)
    if not name:
        return _problem(*where, f"empty speaker tag {shown}", "a name such as [A], [Alice] or [1]")
    if len(name) > MAX_NAME_CHARS:
        return _problem(*where, f"speaker name {_show(name)} is {len(name)} characters long", _NAME_RULE)
    bad = next((c for c in name if not _name_char(c)), None)
    if bad is not None:
        shown_bad = f'"{bad}"' if bad.isprintable() else f"U+{ord(bad):04X}"
        return _problem(*where, f"speaker name {_show(name)} contains {shown_bad}", _NAME_RULE)
    if not any(c.isalnum() for c in name):
        return _problem(*where, f"speaker name {_show(name)} has no letters or digits", _NAME_RULE)
    numbered = _NUMBERED.fullmatch(name)
    return f"Speaker {int(numbered.group(1))}" if numbered else name


def _bracket(content: str, shown: str, line: int, col: int, problems: list[Problem]) -> _Tok | None:
    """A bracket tag is a pause if it starts with the word "pause", otherwise a speaker."""
    pause = _PAUSE.fullmatch(content.strip())
    if not pause:
        return _Tok("tag", _speaker_name(content, shown, line, col, problems), line, col, shown)
    arg = pause.group(1).strip()
    length = _PAUSE_LEN.fullmatch(arg)
    if arg and not length:
        return _problem(problems, line, col, f"cannot read the pause length {_show(arg)}", _PAUSE_FORMS)
    seconds = DEFAULT_PAUSE_SECONDS if not arg else float(length.group(1))
    if length and (length.group(2) or "").lower() == "ms":
        seconds /= 1000
    if not math.isfinite(seconds):
        return _problem(problems, line, col, "the pause length is not a number of seconds",
                        f"[pause {MAX_PAUSE_SECONDS:g}s] or shorter")
    if seconds > MAX_PAUSE_SECONDS:
        return _problem(problems, line, col, f"a {seconds:g}-second pause is longer than the "
                        f"{MAX_PAUSE_SECONDS:g}-second maximum", f"[pause {MAX_PAUSE_SECONDS:g}s] or shorter")
    return _Tok("pause", seconds, line, col)


def _scan(line: str, n: int, out: list[_Tok], problems: list[Problem]) -> None:
    """Split one source line into text, hint, tag and pause tokens.

    Hints and tags must close on their own line, so a missing ")" is reported where it happened
    instead of silently swallowing the rest of the script.
    """
    pos = 0
    if head := _SPEAKER_N.match(line):
        shown, pos = _show(head.group(0).strip()), head.end()
        name = _speaker_name(head.group(1), shown, n, head.start(1) + 1, problems)
        out.append(_Tok("tag", name, n, head.start(1) + 1, shown))
    opened: list[tuple[str, int]] = []  # open hint brackets: (char, index)
    while True:
        m = _SPECIAL.search(line, pos)
        end = m.start() if m else len(line)
        chunk = line[pos:end]
        if not opened and _INVISIBLE.sub("", chunk).strip():
            out.append(_Tok("text", chunk, n, pos + len(chunk) - len(chunk.lstrip()) + 1))
        if not m:
            break
        ch, pos, col = m.group(), m.end(), m.start() + 1
        if ch in _OPENERS:
            opened.append((ch, m.start()))
        elif opened and ch in ")）}":  # brackets inside a hint are just part of its wording
            start_ch, start = opened.pop()
            if ch not in _OPENERS[start_ch]:
                _problem(problems, n, col, f'"{ch}" does not close the "{start_ch}" at column {start + 1}',
                         f'"{_OPENERS[start_ch][0]}"')
            hint = " ".join(line[start + 1 : m.start()].split()).lower()
            if not opened and hint:
                out.append(_Tok("hint", hint, n, start + 1))
        elif opened:
            continue
        elif ch in ")）}":
            _problem(problems, n, col, f'"{ch}" has no matching opening bracket', "a hint such as (laughs)")
        elif ch in "]】":
            _problem(problems, n, col, f'"{ch}" has no matching opening bracket', "a tag such as [Alice]")
        elif tag := _TAGS[ch].match(line, m.start()):
            pos = tag.end()
            shown = _show(ch + tag.group(1) + ("]" if ch == "[" else "】"))
            if tok := _bracket(tag.group(1), shown, n, col, problems):
                out.append(tok)
        else:
            _problem(problems, n, col, f'"{ch}" is never closed on this line', f"[Alice] or {_PAUSE_FORMS}")
    if opened:
        ch, start = opened[0]
        _problem(problems, n, start + 1, f'"{ch}" is never closed on this line (hints close on the line '
                 "they open)", "a hint such as (laughs) or {excited}")


def _tokenize(text: str, problems: list[Problem]) -> list[_Tok]:
    """Tokens for the whole script; comments vanish, blank lines stay (they separate paragraphs)."""
    out: list[_Tok] = []
    for n, line in enumerate(text.split("\n"), 1):
        stripped = _INVISIBLE.sub("", line).strip()
        if not stripped:
            out.append(_Tok("blank", None, n, 1))
        elif markup := _SSML.search(line):
            _problem(problems, n, markup.start() + 1, f"SSML markup {_show(markup.group())} is not supported",
                     "plain text with [Speaker] tags, (hints) and [pause 1s]")
        elif not stripped.startswith("#"):
            _scan(line, n, out, problems)
    return out


def _join(a: str, b: str) -> str:
    """Glue two text pieces: a space, except between CJK characters or before punctuation."""
    a, b = a.rstrip(), b.lstrip()
    if not a or not b:
        return a + b
    tight = (_WIDE.match(a[-1]) and _WIDE.match(b[0])) or b[0] in _NO_SPACE_BEFORE
    return a + ("" if tight else " ") + b


class _Builder:
    """Turns tokens into Line fields: the one state machine in the module."""

    def __init__(self, narrator: bool, max_speakers: int, problems: list[Problem]):
        self.narrator, self.max_speakers, self.problems = narrator, max_speakers, problems
        self.lines: list[dict] = []
        self.speakers: dict[str, str] = {}  # casefolded -> first spelling
        self.refused: set[str] = set()
        self.speaker: str | None = NARRATOR if narrator else None  # None: before any tag; "": a bad tag
        self.tag: _Tok | None = None
        self.turn, self.new_turn, self.turn_lines = -1, True, 0
        self.parts: list[_Tok] = []
        self.hints: list[str] = []
        self.pause, self.orphan_reported = 0.0, False

    def feed(self, tok: _Tok) -> None:
        if tok.kind == "tag":
            self.end_turn()
            self.tag, self.new_turn, self.speaker = tok, True, self.admit(tok)
        elif tok.kind == "pause":
            self.flush()
            self.pause += tok.value
        elif tok.kind == "blank":
            if self.narrator:  # a paragraph is a narrator's turn
                self.end_turn()
                self.new_turn = True
        elif self.speaker is None:
            if not self.orphan_reported:
                self.orphan_reported = True
                _problem(self.problems, tok.line, tok.col, "text before the first speaker tag",
                         'a speaker tag such as "[A]" or "Speaker 1:" before it')
        elif self.speaker and tok.kind == "text":
            self.parts.append(tok)
        elif self.speaker:
            self.hints.append(tok.value)

    def admit(self, tok: _Tok) -> str:
        """The canonical name for a tag, refusing (once each) speakers beyond the limit."""
        if tok.value is None:
            return ""
        key = tok.value.casefold()
        if key in self.speakers:
            return self.speakers[key]
        if key not in self.refused and len(self.speakers) >= self.max_speakers:
            self.refused.add(key)
            n = len(self.speakers) + len(self.refused)
            ordinal = f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
            _problem(self.problems, tok.line, tok.col, f'speaker "{tok.value}" would be a {ordinal} speaker; '
                     f"at most {self.max_speakers} speakers per script",
                     "one of " + ", ".join(self.speakers.values()))
        if key in self.refused:
            return ""
        self.speakers[key] = tok.value
        return tok.value

    def flush(self) -> None:
        """Emit the text gathered since the last tag or pause as one Line."""
        if not self.parts:
            return
        text = ""
        for part in self.parts:
            text = _join(text, part.value)
        text = " ".join(text.split())
        if self.new_turn:
            self.turn, self.new_turn = self.turn + 1, False
        self.lines.append(dict(index=len(self.lines), turn=self.turn, speaker=self.speaker, text=text,
                               hints=self.hints, pause_before=self.pause, language=_language(text),
                               source_line=self.parts[0].line, column=self.parts[0].col))
        self.parts, self.hints, self.pause = [], [], 0.0
        self.turn_lines += 1

    def end_turn(self) -> None:
        """Close a turn; trailing hints join its last line, and a tag that said nothing is an error."""
        self.flush()
        if self.hints and self.turn_lines:
            self.lines[-1]["hints"] = self.lines[-1]["hints"] + self.hints
            self.hints = []
        if not self.narrator:
            self.hints = []
            if self.tag and self.speaker and not self.turn_lines:
                tag = self.tag
                _problem(self.problems, tag.line, tag.col, f"speaker tag {tag.shown} has no text",
                         f'what {self.speaker} says, e.g. "{tag.shown[1:-1]} Hello!"')
        self.turn_lines = 0


def _check_duration(lines: list[dict], trailing: float, problems: list[Problem]) -> None:
    """Refuse scripts estimated past MAX_SPEECH_SECONDS, pointing at the line that crosses it."""
    total, crossing = 0.0, None
    for line in lines:
        total += line["pause_before"] + estimate_speech_seconds(line["text"], line["language"])
        crossing = crossing or (line if total > MAX_SPEECH_SECONDS else None)
    total += trailing
    if total > MAX_SPEECH_SECONDS:
        at = crossing or (lines[-1] if lines else {"source_line": 1, "column": 1})
        minutes, limit = math.ceil(total / 60), MAX_SPEECH_SECONDS // 60
        _problem(problems, at["source_line"], at["column"], f"the script would take about {minutes} minutes "
                 f"to speak; the limit is about {limit} minutes", "a shorter script; split it into episodes")


def parse_script(text: str | bytes, *, max_speakers: int = 4) -> Script:
    """Parse a pasted script, or raise ScriptError listing every problem found."""
    if max_speakers < 1:
        raise ValueError("max_speakers must be at least 1")
    source = _decode(text)
    problems: list[Problem] = []
    tokens = _tokenize(source, problems)
    narrator = not any(tok.kind == "tag" for tok in tokens)
    builder = _Builder(narrator, max_speakers, problems)
    for tok in tokens:
        builder.feed(tok)
    builder.end_turn()
    lines, trailing = builder.lines, builder.pause
    if not lines and not problems:
        _problem(problems, 1, 1, "the script is empty: there is nothing to speak",
                 'a line such as "[A] Hello!"')
    _check_duration(lines, trailing, problems)
    if problems:
        raise ScriptError(sorted(problems, key=lambda p: (p.line, p.column)))
    speakers = [NARRATOR] if narrator else list(builder.speakers.values())
    return Script(lines=[Line(**line) for line in lines], speakers=speakers, trailing_pause=trailing)
