"""The director's plan for a line, as the ``instruct`` text Qwen3-TTS follows.

Explicit hints written in the script (``(whispering)``) pass through verbatim and come first; the plan
adds emotion with its intensity ("Very excited."), pace from the line's speed, stressed words and
the director's free-text note. A designed voice's description leads, so the voice stays the one
described and the delivery is layered on top. Published examples are short imperative phrases
("Very happy.", "Speak slowly and calmly."): the text keeps to that form.
"""

from __future__ import annotations

from ...delivery import LineDelivery

SLOW, FAST = 0.95, 1.05


def instruct_text(delivery: LineDelivery, hints: list[str] | tuple[str, ...] = (), description: str = "") -> str:
    parts = [_sentence(description)] if description else []
    parts += [_sentence(h) for h in hints if h.strip()]
    if delivery.emotion:
        degree = "Slightly " if delivery.intensity < 0.34 else "Very " if delivery.intensity >= 0.67 else ""
        word = delivery.emotion if degree else delivery.emotion.capitalize()
        parts.append(f"{degree}{word}.")
    if delivery.speed < SLOW:
        parts.append("Speak slowly." if delivery.speed < 0.85 else "Speak a little slowly.")
    elif delivery.speed > FAST:
        parts.append("Speak quickly." if delivery.speed > 1.15 else "Speak a little quickly.")
    if delivery.emphasis:
        parts.append("Stress " + ", ".join(f'"{w}"' for w in delivery.emphasis) + ".")
    if delivery.note:
        parts.append(_sentence(delivery.note))
    return " ".join(parts)


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip("()[] ")
    return text[:1].upper() + text[1:] + ("" if text[-1:] in ".!?。！？" else ".")
