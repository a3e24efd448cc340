"""Text normalisation for scoring, so that formatting is never counted as a speech error.

Whisper writes what it hears in its own house style ("Dr. Smith paid $5"), the script in the
author's ("doctor Smith paid five dollars"); both sides go through the same steps before they are
compared: case and punctuation are dropped, numbers, currency, percentages, ordinals and common
abbreviations are spelled out (num2words for English, cn2an for Mandarin), and common British
spellings become American ones, as Whisper writes them.

Mandarin is compared one Han character at a time, each by its toned reading (pypinyin): Whisper
writes traditional or simplified characters at random and sometimes picks a homophone, neither of
which is something the voice said wrong. A different syllable or tone still counts as an error.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_ABBREVIATIONS = {
    "dr": "doctor", "mr": "mister", "mrs": "missus", "ms": "miss", "prof": "professor", "st": "saint",
    "vs": "versus", "etc": "etcetera", "ok": "okay", "mt": "mount", "jr": "junior", "sr": "senior",
}
_CURRENCY = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}
_MONEY = re.compile(r"([$£€])\s?(\d+(?:,\d{3})*)(?:\.(\d{1,2}))?")
_PERCENT = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_ABBREV = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\b\.?")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORDS = re.compile(r"[a-z0-9]+")
# British spellings Whisper writes the American way (harbour → harbor, centre → center, realise → realize).
_OUR = re.compile(r"\b(?!(?:flour|scour|devour|contour|detour|velour|amour|paramour|troubadour)\b)"
                  r"([a-z]{2,})our(s|ed|ing|ite|ites|able|ful|less)?\b")
_RE = re.compile(r"\b(cent|theat|[a-z]*met|[a-z]*lit|fib|somb|spect|lust)re(s|d)?\b")
_ISE = re.compile(r"\b(organi|reali|recogni|apologi|emphasi|summari|critici|memori|priori|minimi|maximi|"
                  r"authori|speciali|optimi|categori|familiari|symboli|visuali|utili)s(e|ed|es|ing|ation|ations)\b")
_UNITS = {"km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters", "mph": "miles per hour",
          "km/h": "kilometers per hour"}
_UNIT = re.compile(r"(?<=\d)\s?(km/h|km|kg|cm|mm|mph)\b")
_WORDS_GB = {"programme": "program", "programmes": "programs", "grey": "gray", "cheque": "check", "tyre": "tire",
             "travelled": "traveled", "travelling": "traveling", "cancelled": "canceled", "jewellery": "jewelry"}


def normalise(text: str, language: str) -> str:
    """The text as scored: English words separated by spaces; Mandarin characters (and any English
    words among them) with punctuation removed."""
    return " ".join(tokens(text, language)) if language == "en" else "".join(_zh_text(text))


def tokens(text: str, language: str) -> list[str]:
    """What an error rate counts: English words, or, in Mandarin, one toned syllable per Han
    character plus each embedded English word."""
    if language == "en":
        return _WORDS.findall(_english(text))
    from pypinyin import Style, lazy_pinyin

    out: list[str] = []
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+",
                          _zh_text(text)):
        out.extend(lazy_pinyin(run, style=Style.TONE3) if _HAN.match(run) else _WORDS.findall(_english(run)))
    return out


def _english(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("&", " and ")
    text = _MONEY.sub(_money, text)
    text = _UNIT.sub(lambda m: " " + _UNITS[m[1]], text)
    text = re.sub(r"\ba (hundred|thousand|million|billion)\b", r"one \1", text)
    text = _PERCENT.sub(lambda m: f"{m[1]} percent", text)
    text = _ORDINAL.sub(lambda m: num2words(int(m[1]), to="ordinal"), text)
    text = _NUMBER.sub(_number, text)
    text = _ABBREV.sub(lambda m: _ABBREVIATIONS[m[1]], text)
    text = _OUR.sub(r"\1or\2", _RE.sub(r"\1er\2", _ISE.sub(r"\1z\2", text)))
    text = re.sub(r"[a-z]+", lambda m: _WORDS_GB.get(m[0], m[0]), text)
    return re.sub(r"['\-]", lambda m: "" if m[0] == "'" else " ", text)


def _money(match: re.Match) -> str:
    unit, small = _CURRENCY[match[1]]
    whole = int(match[2].replace(",", ""))
    words = f"{num2words(whole)} {unit}{'' if whole == 1 else 's'}"
    cents = int((match[3] or "0").ljust(2, "0"))
    if cents:
        words += f" {num2words(cents)} {small if cents == 1 else ('pence' if small == 'penny' else small + 's')}"
    return words


def _number(match: re.Match) -> str:
    raw = match[0].replace(",", "")
    if "." in raw:
        return num2words(float(raw))
    value = int(raw)
    # "1999" is said "nineteen ninety-nine" far more often than "one thousand nine hundred ...".
    year = len(raw) == 4 and 1100 <= value <= 2099 and "," not in match[0]
    return num2words(value, to="year") if year else num2words(value)


def _zh_text(text: str) -> str:
    """NFKC (full-width to half-width), Arabic numerals to Chinese ones, punctuation dropped."""
    import cn2an

    text = unicodedata.normalize("NFKC", text)
    try:
        text = cn2an.transform(text, "an2cn")
    except (ValueError, KeyError, IndexError):  # cn2an rejects odd digit runs; leave them as written
        pass
    return "".join(ch for ch in text if ch.isalnum() or ch == " " or ch == "'")
