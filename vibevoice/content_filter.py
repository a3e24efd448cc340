"""The content filter: every script is checked before anything is rendered, and text is never altered.

A voice tool that clones people and renders hours of speech must make misuse harder without getting
in the way of fiction, news and medicine. So the filter reports, per script line, which category a
phrase falls in and which list it came from, and acts by severity:

- ``block`` (the default): what a careful editor would stop in any script, fiction included, stops
  the job before rendering: a *severe* finding — a threat with a target and a means, place or time,
  instructions for a weapon or a killing, sexual content involving minors, urging the listener to
  harm themselves. What only sounds like these (a villain's "I'll kill you", "you're dead, Jim",
  Camus on whether to kill yourself) is *high* and flagged with the line, as is everything else.
- ``flag``: nothing is stopped; every finding is recorded in the job and shown.
- ``off``: no check.

English profanity comes from the maintained ``badwords-py`` list (flagged as ``profanity``); the
phrase rules no maintained list covers live in ``presets/content-filter/<language>.txt``; a user's own
additions and exceptions in ``$VIBEVOICE_HOME/content-filter.txt`` (format in that folder's README).
An optional second opinion from the director's LLM endpoint is in ``content_review.py``; its findings
go through ``enforce`` with the lists'.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from . import paths
from .errors import BadInput
from .script import Line, Script

Mode = Literal["off", "flag", "block"]
Severity = Literal["severe", "high", "mild"]
MODES: tuple[Mode, ...] = ("off", "flag", "block")
# The standard categories and their severities (the lists may add their own; these are what the LLM
# review may name).
CATEGORIES: dict[str, Severity] = {
    "violent-threat": "severe", "weapon-instructions": "severe", "child-sexual-content": "severe",
    "self-harm-encouragement": "severe", "fraud-impersonation": "high", "hate": "high", "profanity": "mild"}
SEVERITIES: tuple[Severity, ...] = ("severe", "high", "mild")
LISTS_DIR = paths.PRESETS_DIR / "content-filter"
USER_FILE = "content-filter.txt"
# What "..." allows between two tokens: a few words (English) or characters (Mandarin) of one clause.
_GAP = {"en": r"(?:[\s'\"-]+\w+){0,4}?[\s'\"-]+", "zh": r"[^，。！？；,.!?;]{0,10}?"}


class Finding(BaseModel):
    """One phrase the filter reports: where, what category, what happens, and which list said so."""

    line: int  # the script's own line number, as the editor shows it
    column: int
    speaker: str
    category: str
    severity: Severity
    action: Literal["flag", "block"]
    matched: str
    source: str

    def __str__(self) -> str:
        verb = "blocked" if self.action == "block" else "flagged"
        return (f"line {self.line}, column {self.column}: {verb} as {self.category} ({self.severity}): "
                f"“{self.matched}” [{self.source}]")


class ContentBlocked(BadInput):
    """The script has lines in a blocked category; nothing was rendered or written."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        blocked = [f for f in findings if f.action == "block"]
        super().__init__("the content filter blocked this script before rendering:\n"
                         + "\n".join(f"  {f}" for f in blocked)
                         + "\nEdit those lines, add a justified exception under [allow] in "
                         + f"{paths.home() / USER_FILE}, or choose the filter mode 'flag' for this job.")


@dataclass
class Rule:
    category: str
    severity: Severity
    pattern: re.Pattern
    source: str


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    allow: list[re.Pattern] = field(default_factory=list)


def default_mode() -> Mode:
    mode = os.environ.get("VIBEVOICE_CONTENT_FILTER", "block")
    if mode not in MODES:
        raise ValueError(f"VIBEVOICE_CONTENT_FILTER={mode!r}: expected one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def enforce(script: Script, mode: Mode | None = None, reviewed: list[Finding] | None = None) -> list[Finding]:
    """Check ``script``; raise ``ContentBlocked`` if any line is blocked, else return what is flagged.

    ``reviewed`` adds findings from the optional LLM review (``content_review.review``).
    """
    findings = check(script, mode) + list(reviewed or [])
    if any(f.action == "block" for f in findings):
        raise ContentBlocked(findings)
    return findings


def check(script: Script, mode: Mode | None = None) -> list[Finding]:
    """Every finding in ``script`` under ``mode`` (default: ``$VIBEVOICE_CONTENT_FILTER`` or block)."""
    mode = mode or default_mode()
    if mode == "off":
        return []
    rules = {language: rule_set(language) for language in ("en", "zh")}  # once per script, not per line
    return [finding for line in script.lines for finding in check_line(line, mode, rules)]


def check_line(line: Line, mode: Mode, rules_by_language: dict[str, RuleSet]) -> list[Finding]:
    text = _normalise(line.text)
    languages = ("en", "zh") if line.language == "mixed" else (line.language,)
    found: dict[tuple[int, int, str], Finding] = {}
    for language in languages:
        rules = rules_by_language[language]
        allowed = [m.span() for pattern in rules.allow for m in pattern.finditer(text)]
        for category, severity, start, end, source in _matches(text, language, rules):
            if any(start < b and a < end for a, b in allowed):  # an allowed phrase overlaps it
                continue
            action = "block" if mode == "block" and severity == "severe" else "flag"
            found.setdefault((start, end, category), Finding(
                line=line.source_line, column=line.column + start, speaker=line.speaker, category=category,
                severity=severity, action=action, matched=line.text[start:end], source=source))
    return sorted(_most_severe(list(found.values())), key=lambda f: f.column)


def _most_severe(findings: list[Finding]) -> list[Finding]:
    """One finding per phrase: of overlapping findings in one category, the most severe (then longest)."""
    rank = {severity: i for i, severity in enumerate(SEVERITIES)}
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (rank[f.severity], -len(f.matched), f.column)):
        if not any(g.category == f.category and g.column < f.column + len(f.matched)
                   and f.column < g.column + len(g.matched) for g in kept):
            kept.append(f)
    return kept


def _matches(text: str, language: str, rules: RuleSet):
    for rule in rules.rules:
        for m in rule.pattern.finditer(text):
            yield rule.category, rule.severity, m.start(), m.end(), rule.source
    if language == "en":
        encoded = text.encode("utf-8")
        for m in _profanity().find(text):  # it reports byte offsets
            if "'" in m.matched_text:  # it drops apostrophes, so "he'll" reads as "hell"
                continue
            start = len(encoded[:m.start].decode("utf-8", "ignore"))
            yield "profanity", "mild", start, start + len(m.matched_text), "badwords-py list (en)"


def rule_set(language: str) -> RuleSet:
    """The shipped rules for ``language`` plus the user's file, re-read when the user's file changes."""
    user = paths.home() / USER_FILE
    stamp = user.stat().st_mtime_ns if user.exists() else 0
    return _load(language, str(user), stamp)


@lru_cache(maxsize=8)
def _load(language: str, user_file: str, _stamp: int) -> RuleSet:
    shipped = LISTS_DIR / f"{language}.txt"
    rules = parse_rules(shipped.read_text("utf-8"), language, f"presets/content-filter/{shipped.name}")
    user = Path(user_file)
    if user.exists():
        mine = parse_rules(user.read_text("utf-8"), language, USER_FILE)
        rules.rules += mine.rules
        rules.allow += mine.allow
    return rules


class RulesError(BadInput):
    pass


_GROUP = re.compile(r"^\$[\w-]+\s*=")
_SECTION = re.compile(r"^\[(?:allow|deny\s+([a-z][a-z0-9-]*)\s*:\s*(\w+))\]$")


def parse_rules(text: str, language: str, source: str) -> RuleSet:
    """Read a rules file (format in ``presets/content-filter/README.md``); errors name the line."""
    groups: dict[str, list[str]] = {}
    out, section = RuleSet(), None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        where = f"{source}:{number}"
        if _GROUP.match(line):
            name, _, body = line.partition("=")
            groups[name.strip()] = [alt.strip() for alt in body.split("|") if alt.strip()]
        elif line.startswith("["):
            m = _SECTION.match(line)
            if not m or (m.group(2) and m.group(2) not in SEVERITIES):
                raise RulesError(f"{where}: expected [allow] or [deny CATEGORY: {'|'.join(SEVERITIES)}]")
            section = (m.group(1), m.group(2)) if m.group(1) else "allow"
        elif section is None:
            raise RulesError(f"{where}: a phrase before any [deny …] or [allow] section")
        else:
            pattern = re.compile("|".join(_compile(alt.strip(), groups, language, where)
                                          for alt in line.split("|")), re.IGNORECASE)
            if section == "allow":
                out.allow.append(pattern)
            else:
                out.rules.append(Rule(section[0], section[1], pattern, where))
    return out


def _compile(phrase: str, groups: dict[str, list[str]], language: str, where: str) -> str:
    parts, joiner = [], r"\W+" if language == "en" else ""
    for token in _normalise(phrase).split():
        if token == "...":
            parts.append(None)
        elif token.startswith("$"):
            if token not in groups:
                raise RulesError(f"{where}: unknown group {token} (define it above with `{token} = …`)")
            parts.append("(?:" + "|".join(_compile(alt, groups, language, where) for alt in groups[token]) + ")")
        else:
            word = re.escape(token.rstrip("*")) + (r"\w*" if token.endswith("*") else "")
            parts.append(rf"\b{word}\b" if language == "en" and token[0].isalnum() else word)
    regex = ""
    for previous, part in zip([""] + parts, parts):
        if part is None:
            continue
        regex += (_GAP[language] if previous is None else joiner if regex else "") + part
    return regex


def _normalise(text: str) -> str:
    """Curly apostrophes made straight (case is ignored by the patterns); positions stay the same."""
    return text.replace("’", "'").replace("‘", "'")


@lru_cache(maxsize=1)
def _profanity():
    from badwords import ProfanityFilter

    words = ProfanityFilter()
    words.init(languages=["en"])
    return words
