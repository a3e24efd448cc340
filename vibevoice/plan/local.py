"""The local planner: a small instruct LLM, constrained to score the fixed emotions, never to write.

A 135M model answers free-form questions badly, so it is not asked any. The script is written out as
prose from a novel, the form such models have read most (``"Did you hear that?" Nina said``), after a
fixed header of example lines, and for each line the model only predicts the word after
``, sounding``. Each emotion is scored by the probability of a few words for it ("scared",
"afraid", "nervous" for fearful), divided by the model's average for those words over a built-in
balanced set of lines (its bias towards, say, "sad" cancels out), and the best one wins.

Cost is what makes this usable during a render: the header is computed once per model and kept as
a KV cache, and a block of lines is read as one running text, so each script token passes through
the model once (plus a two-token question that is dropped again). Every block starts over from the
header with ``context_lines`` lines before it, so a line's plan depends only on its block and that
context (the plan cache keys on exactly that).

What rules read better stays with rules: stage directions ("(laughs)" is a decision already made),
sentence type, pauses, emphasis and rate. Mandarin lines stay with rules too: SmolLM2 reads Chinese
as bytes and scored below rules on the Mandarin half of ``bench/data/planner_labels.jsonl``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from ..script import Line, Script
from . import local_model, rules
from .base import Failed, Planner, block_of, blocks
from .schema import LinePlan
from .settings import PlannerSettings

PROMPT_VERSION = "local-prose-1"
BLOCK_LINES = 8
_HEADER = "The following is a scene from a novel.\n\n"
_FRAME = ", sounding"
_END = ".\n"
_MAX_QUOTE_TOKENS = 120  # longer lines are cut from the front: the end carries the tone

# Words that follow "sounding" for each emotion; the first one is also used in the header's examples.
VERBALIZERS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "casual", "normal"), "happy": ("happy", "pleased", "cheerful", "glad"),
    "excited": ("excited", "thrilled"), "sad": ("sad", "upset", "miserable"),
    "angry": ("angry", "furious", "annoyed", "irritated"), "surprised": ("surprised", "shocked", "amazed"),
    "skeptical": ("skeptical", "doubtful", "suspicious"), "calm": ("calm", "relaxed", "reassuring", "steady"),
    "serious": ("serious", "grave", "stern", "firm"), "fearful": ("scared", "afraid", "frightened", "nervous"),
    "tender": ("tender", "gentle", "warm", "loving", "soft"), "amused": ("playful", "teasing"),
}
# One example per emotion, in the header. Written for the planner; none is from the benchmark set.
EXAMPLES = [
    ("Ann", "The train leaves at six, platform four.", "neutral"),
    ("Raj", "We finally finished the garden, and it looks lovely.", "happy"),
    ("Ann", "Tickets went on sale and we got front row seats!", "excited"),
    ("Raj", "I kept his letters. I still read them sometimes.", "sad"),
    ("Ann", "You promised you'd be here, and you didn't even call!", "angry"),
    ("Raj", "You're here? I thought you were in Paris!", "surprised"),
    ("Ann", "A free cruise, just for answering one phone call? Sure.", "skeptical"),
    ("Raj", "Breathe. We have plenty of time, one step at a time.", "calm"),
    ("Ann", "This contract decides whether we keep the company.", "serious"),
    ("Raj", "The lights just went out and someone is on the stairs.", "fearful"),
    ("Ann", "Come here, little one. I've got you.", "tender"),
    ("Raj", "You call that a haircut? My cat does better work.", "amused"),
]
# The calibration set: the examples plus the same balance in Mandarin. Its average answer is the bias.
CALIBRATION = EXAMPLES + [
    ("李", "会议改到下午三点了。", "neutral"), ("王", "我们赢了！冠军是我们的！", "excited"),
    ("李", "他走了以后，家里安静了很多。", "sad"), ("王", "你为什么又把我的东西弄坏了？", "angry"),
    ("李", "什么？你已经结婚了？", "surprised"), ("王", "他会主动道歉？我不信。", "skeptical"),
    ("李", "外面好像有人，我不敢出去。", "fearful"), ("王", "乖，妈妈在这儿，睡吧。", "tender"),
    ("李", "你这手艺，还不如我家的猫呢。", "amused"), ("王", "今天天气真好，我们出去走走吧。", "happy"),
    ("李", "没事的，慢慢来，不着急。", "calm"), ("王", "这件事非常重要，你必须认真对待。", "serious"),
]


class LocalPlanner(Planner):
    name = "local"

    def __init__(self, settings: PlannerSettings):
        self.settings = settings
        self.loaded = local_model.load(settings.model, settings.device, settings.resolved_cache_dir(),
                                       quantize=settings.quantize)
        self.model = self.loaded.label
        self._blocks: tuple[Script, list[range]] | None = None

    def fingerprint(self) -> str:
        return f"{PROMPT_VERSION}|{self.loaded.fingerprint}|ctx={self.settings.context_lines}|block={BLOCK_LINES}"

    def span(self, script: Script, index: int) -> range:
        if not uses_model(script.lines[index]):
            return range(index, index + 1)
        block = block_of(self._script_blocks(script), index)
        return range(max(0, block.start - self.settings.context_lines), index + 1)

    def warm(self) -> None:
        """Compute the model's prompt state now (the header's cache, the calibration), not in the first plan."""
        with self.loaded.lock, _threads(self.settings.threads if self.loaded.device == "cpu" else None):
            self._state()

    def plan(self, script: Script, todo: list[int], deadline: float | None) -> Iterator[tuple[int, LinePlan | Failed]]:
        with self.loaded.lock, _threads(self.settings.threads if self.loaded.device == "cpu" else None):
            yield from self._plan(script, todo, deadline)

    def _plan(self, script: Script, todo: list[int], deadline: float | None):
        state = self._state()
        cache, header_len = state["cache"], state["header_len"]
        current, fed = None, -1  # the block being read, and the last line of it already in the cache
        for i in todo:
            line = script.lines[i]
            if not uses_model(line):  # a stage direction decided, or a Mandarin line: rules' emotion
                why = rules.emotion_cue(line)[1]
                note = None if rules.hint_emotion(line.hints) else "rules (Mandarin line)" + (f": {why}" if why else "")
                yield i, rules.plan_line(script, i, note=note)
                continue
            if deadline is not None and time.monotonic() > deadline:
                yield i, Failed(f"the planning time budget ({self.settings.budget:g} s) ran out")
                continue
            block = block_of(self._script_blocks(script), i)
            ids: list[int] = []
            if block != current or fed >= i:  # start the block over from the header and its context
                _trim(cache, header_len)
                current, fed = block, max(0, block.start - self.settings.context_lines) - 1
            elif fed >= 0:
                ids += state["end"]  # close the line read last; it joins the cache with this one
            for j in range(fed + 1, i):
                ids += self._said(script.lines[j]) + state["end"]
            ids += self._said(line)
            try:
                scores = self._scores(ids + state["frame"], cache)
                _trim(cache, cache.get_seq_length() - len(state["frame"]))  # drop the question again
            except (RuntimeError, ValueError) as err:  # out of memory, a model that cannot take the input
                current = None
                yield i, Failed(f"the local model failed on this line: {type(err).__name__}: {err}"[:200])
                continue
            fed = i
            ranked = sorted(zip(scores.tolist(), rules.EMOTIONS), reverse=True)
            (best, emotion), (second, runner_up) = ranked[0], ranked[1]
            note = f"local model: {emotion} {best:.0%}, then {runner_up} {second:.0%}"
            yield i, rules.plan_line(script, i, emotion=emotion, note=note, confidence=best)

    # -- model state, computed once per loaded model -------------------------------------------

    def _state(self) -> dict:
        """Token ids of the fixed pieces, the header's KV cache and the calibration prior (set last)."""
        state = self.loaded.state
        if "prior" in state:
            return state
        from transformers import DynamicCache

        tok = self.loaded.tokenizer
        state["end"] = tok.encode(_END, add_special_tokens=False)
        state["frame"] = tok.encode(_FRAME, add_special_tokens=False)
        state["words"] = [_word_ids(tok, VERBALIZERS[e]) for e in rules.EMOTIONS]
        examples = "".join(f'"{text}" {who} said{_FRAME} {VERBALIZERS[e][0]}{_END}' for who, text, e in EXAMPLES)
        header = tok.encode(_HEADER + examples + "\n", add_special_tokens=False)
        cache = DynamicCache()
        self._forward(header, cache)
        state.update(cache=cache, header_len=len(header))
        prior = []
        for who, text, _ in CALIBRATION:
            line = Line(index=0, turn=0, speaker=who, text=text, language="en", source_line=1, column=1)
            prior.append(self._scores(self._said(line) + state["frame"], cache, raw=True))
            _trim(cache, len(header))
        state["prior"] = sum(prior) / len(prior)
        return state

    def _said(self, line: Line) -> list[int]:
        """Token ids of ``"text" Speaker said``: tokenised in parts, so a line's ids never depend on its
        neighbours and a block read in one go or line by line gives the same sequence."""
        tok = self.loaded.tokenizer
        quote = tok.encode(line.text, add_special_tokens=False)[-_MAX_QUOTE_TOKENS:]
        return tok.encode('"', add_special_tokens=False) + quote + tok.encode(f'" {line.speaker} said',
                                                                              add_special_tokens=False)

    def _forward(self, ids: list[int], cache):
        import torch

        with torch.inference_mode():
            out = self.loaded.model(input_ids=torch.tensor([ids], device=self.loaded.device),
                                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    def _scores(self, ids: list[int], cache, raw: bool = False):
        """Probability of each emotion's words after ``ids``; unless ``raw``, divided by the bias."""
        import torch

        probs = self._forward(ids, cache).softmax(-1)
        scores = torch.stack([probs[w].sum() for w in self.loaded.state["words"]])
        if raw:
            return scores
        scores = scores / self.loaded.state["prior"]
        return scores / scores.sum()

    def _script_blocks(self, script: Script) -> list[range]:
        if self._blocks is None or self._blocks[0] is not script:
            self._blocks = (script, blocks(script, BLOCK_LINES))
        return self._blocks[1]


def uses_model(line: Line) -> bool:
    """Whether the model decides this line's emotion (not a stage direction, not Mandarin)."""
    return line.language != "zh" and rules.hint_emotion(line.hints) is None


def _word_ids(tok, words: tuple[str, ...]) -> list[int]:
    """Single-token ids of `` word`` for each word; other tokenisers may split some, then the first piece counts."""
    single = [ids[0] for w in words if len(ids := tok.encode(" " + w, add_special_tokens=False)) == 1]
    return single or [tok.encode(" " + words[0], add_special_tokens=False)[0]]


@contextlib.contextmanager
def _threads(count: int | None):
    """Run torch with ``count`` threads, then restore: a planner next to a renderer takes one core.

    (torch's thread count is per process; an engine using torch in another thread shares it meanwhile.)
    """
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _trim(cache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
