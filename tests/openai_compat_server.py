"""A small OpenAI-compatible chat server backed by the shipped SmolLM2 model, for the HTTP planner's tests.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` with text the real model generates
(greedy, through its chat template); nothing is canned. Asked for ``logprobs``, it returns each generated
token's log-probability under the model, as OpenAI's API does. More mounts make the other paths real:

- ``/slow/v1/...`` waits ``slow_seconds`` before generating, so a client's timeout fires;
- ``/chatty/v1/...`` tells the model to answer as a poet instead of following the system prompt, so
  the planner receives genuine model text that is not the JSON it asked for;
- ``/strict/v1/...`` refuses a request for logprobs with 400 Bad Request, as some servers do.

Every request body is kept in ``app.state.requests`` and every generated text in ``app.state.replies``,
so tests can look at what the planner sent and what the model said.
Run standalone: ``python tests/openai_compat_server.py --port 8000`` (then point
``VIBEVOICE_PLANNER_URL`` at ``http://127.0.0.1:8000/v1``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MODEL_ID = "smollm2-135m-instruct"
MAX_NEW_TOKENS = 96  # a server-side cap, as real servers have; keeps the tests quick
POET = "You are a poet. Whatever the user sends, answer with a short rhyming poem about the sea, in plain text."


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[dict[str, Any]] = []


class Logprobs(BaseModel):
    content: list[TokenLogprob]


class Choice(BaseModel):
    index: int = 0
    message: Message
    finish_reason: Literal["stop", "length"]
    logprobs: Logprobs | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


def make_app(model, tokenizer, slow_seconds: float = 5.0) -> FastAPI:
    """The app around an already loaded transformers causal LM and its tokenizer."""
    app = FastAPI(title="OpenAI-compatible test server")
    app.state.requests = []
    app.state.replies = []
    lock = threading.Lock()  # one generation at a time: the model is shared

    def generate(messages: list[Message], max_tokens: int | None) -> tuple[str, int, int, str, Logprobs]:
        import torch

        chat = [m.model_dump() for m in messages]
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        limit = min(max_tokens or MAX_NEW_TOKENS, MAX_NEW_TOKENS)
        with lock, torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=limit, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        new = out.sequences[0, ids["input_ids"].shape[1]:]
        finish = "length" if len(new) >= limit else "stop"
        tokens = []
        for token, scores in zip(new.tolist(), out.scores):
            if token in tokenizer.all_special_ids:
                continue
            text = tokenizer.decode([token])
            logprob = float(torch.log_softmax(scores[0].float(), -1)[token])
            tokens.append(TokenLogprob(token=text, logprob=logprob, bytes=list(text.encode())))
        text = tokenizer.decode(new, skip_special_tokens=True)
        return text, ids["input_ids"].shape[1], len(new), finish, Logprobs(content=tokens)

    def complete(body: ChatRequest, mode: str) -> ChatResponse:
        app.state.requests.append({"mode": mode, **body.model_dump()})
        if mode == "strict" and body.logprobs:
            raise HTTPException(status_code=400, detail="logprobs are not supported by this server")
        messages = body.messages
        limit = body.max_tokens
        if mode == "slow":  # only the delay matters here; a short answer keeps the CPU for other tests
            time.sleep(slow_seconds)
            limit = 16
        if mode == "chatty":
            messages = [Message(role="system", content=POET)] + [m for m in messages if m.role != "system"]
        text, prompt_tokens, new_tokens, finish, logprobs = generate(messages, limit)
        app.state.replies.append(text)
        choice = Choice(message=Message(role="assistant", content=text), finish_reason=finish,
                        logprobs=logprobs if body.logprobs else None)
        return ChatResponse(id=f"chatcmpl-{uuid.uuid4().hex[:12]}", created=int(time.time()), model=body.model,
                            choices=[choice],
                            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=new_tokens,
                                        total_tokens=prompt_tokens + new_tokens))

    for prefix, mode in (("/v1", "normal"), ("/slow/v1", "slow"), ("/chatty/v1", "chatty"),
                         ("/strict/v1", "strict")):
        app.add_api_route(f"{prefix}/chat/completions", _handler(complete, mode), methods=["POST"],
                          response_model=ChatResponse)
        app.add_api_route(f"{prefix}/models", _models, methods=["GET"])
    return app


def _handler(complete, mode: str):
    def handler(body: ChatRequest) -> ChatResponse:  # sync: FastAPI runs it in a worker thread
        return complete(body, mode)

    return handler


def _models() -> dict:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "test"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app: FastAPI, port: int | None = None):
    """Run ``app`` on 127.0.0.1 in a background thread; yields the base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    import argparse

    from vibevoice import paths
    from vibevoice.plan import local_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    loaded = local_model.load(None, "cpu", paths.cache_dir())
    with serve(make_app(loaded.model, loaded.tokenizer), args.port) as url:
        print(f"serving {MODEL_ID} at {url}/v1 (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
