"""Hostile input, generated: random bodies, types, sizes and encodings for every route of the real server.

Whatever arrives, the answer is never a 500 and never a traceback in the log, and every 4xx says what
was wrong: the field (``settings.speed``) or the script line. Bounded: a fixed number of examples per
route, no shrinking across server restarts.
"""

from __future__ import annotations

import json
import string

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = ["script", "voices", "settings", "plan", "planner", "speaker_hints", "title", "model", "input", "voice",
          "response_format", "speed", "instructions", "rate", "emotion", "content_filter", "qa", "seed",
          "engine", "model_dir", "turn_gap", "cfg_scale", "lines", "line_index", "A", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=True),
                    st.text(max_size=40), st.sampled_from(["[A] Hi", "[pause 99999s]", "\ud800", "nan", "../../etc"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)), max_leaves=12)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(lambda d: json.dumps(d).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
ROUTES = [("POST", "/v1/jobs"), ("PUT", "/v1/jobs/0123456789ab"), ("POST", "/v1/audio/speech"),
          ("POST", "/v1/scripts/check"), ("POST", "/v1/jobs/0123456789ab/lines/1/rerender"),
          ("POST", "/v1/voices/clone"), ("POST", "/v1/jobs/0123456789ab/cancel")]
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if 400 <= response.status_code < 500:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.strip() and len(response.content) < 20_000


@pytest.fixture(scope="module")
def log_offset(server):
    offset = len(server.log.read_text(errors="replace"))
    yield
    assert "Traceback" not in server.log.read_text(errors="replace")[offset:], "the fuzz left a traceback in the log"


@pytest.mark.parametrize("method, path", ROUTES)
def test_random_bodies_are_answered_with_a_reason(server, log_offset, method, path):
    @FUZZ
    @given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data",
                                                      "application/x-www-form-urlencoded", ""]))
    def one(body: bytes, content_type: str):
        headers = {"Content-Type": content_type} if content_type else {}
        _check(httpx.request(method, server.url + path, content=body, headers=headers, timeout=120))

    one()


@FUZZ
@given(job=st.text(alphabet=string.printable, max_size=30), kind=st.text(max_size=30))
def test_random_ids_and_file_kinds_are_not_found_not_errors(server, log_offset, job, kind):
    from urllib.parse import quote

    response = httpx.get(f"{server.url}/v1/jobs/{quote(job, safe='') or 'x'}/files/{quote(kind, safe='') or 'x'}",
                         timeout=60)
    assert response.status_code in (404, 405, 421, 422, 400), response.text[:300]
