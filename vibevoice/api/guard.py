"""What the server lets in, before any route runs: known hosts, same-origin writes, a token off
loopback, and request bodies counted as their bytes arrive.

One pure-ASGI middleware in front of everything (the API and the mounted page):
- **Host**: only names this server answers to (loopback names, the address it listens on,
  ``VIBEVOICE_ALLOWED_HOSTS``), so a DNS-rebinding page cannot talk to it under another name.
- **Origin**: a state-changing request (anything but GET/HEAD/OPTIONS) that carries an ``Origin``
  must come from this server's own origin: a browser would send a cross-site form or fetch without
  asking the user.
- **Token**: on loopback no login is needed (today's default); on any other address every request
  needs the token (``VIBEVOICE_TOKEN``, or one generated and printed at start, like Jupyter's): as
  ``Authorization: Bearer`` (the OpenAI client's ``api_key``), or the ``vibevoice-token`` cookie the
  login page sets (``/login``, or ``/?token=…`` once).
- **Size**: a declared ``Content-Length`` over the route's limit is refused at once, and every body
  is counted as it streams in, so ``Transfer-Encoding: chunked`` or a false length cannot get more
  through. Replies to all of these are small and never echo the request.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from ..errors import BadInput
from ..script import MAX_SCRIPT_BYTES

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE = "vibevoice-token"
MAX_BODY_BYTES = MAX_SCRIPT_BYTES + 64_000  # a script plus the JSON around it
MAX_CLIP_BYTES = 30_000_000 + 64_000  # a few minutes of WAV is plenty for a voice reference
DRAIN_BYTES = 32_000_000  # an over-long declared body up to this size is read away, so the client sees the 413
CLIP_ROUTES = ("/v1/voices/clone", "/gradio_api/upload")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass
class Policy:
    """Who may talk to this server and how much they may send."""

    hosts: frozenset[str]  # lower-case host names without port; empty = any (listening on all addresses)
    token: str | None = None
    origins: frozenset[str] = field(default_factory=frozenset)  # extra allowed origins (scheme://host:port)

    @classmethod
    def for_address(cls, host: str) -> "Policy":
        """Loopback: no token unless ``VIBEVOICE_TOKEN`` sets one; any other address: a token, always."""
        extra = {h.strip().lower() for h in os.environ.get("VIBEVOICE_ALLOWED_HOSTS", "").split(",") if h.strip()}
        token = os.environ.get("VIBEVOICE_TOKEN") or (None if is_loopback(host) else secrets.token_urlsafe(24))
        wildcard = host in ("0.0.0.0", "::", "")
        hosts = frozenset() if wildcard and not extra else frozenset(LOOPBACK_NAMES | {host.lower()} | extra)
        origins = frozenset(o.strip() for o in os.environ.get("VIBEVOICE_ALLOWED_ORIGINS", "").split(",") if o.strip())
        return cls(hosts=hosts, token=token, origins=origins)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def limit_for(path: str) -> int:
    return MAX_CLIP_BYTES if path.startswith(CLIP_ROUTES) else MAX_BODY_BYTES


class TooLarge(BadInput):
    """Raised inside ``receive`` once a body passes its limit; the middleware answers 413."""


class Guard:
    def __init__(self, app, policy: Policy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail, extra = refusal
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await _reply(send, status, detail, extra)
        if scope["type"] == "http" and (login := await self._login(scope, headers, receive, send)):
            return login
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await self._limited(scope, headers, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, str, dict] | None:
        host = _hostname(headers.get("host", ""))
        if self.policy.hosts and host not in self.policy.hosts:
            return 421, "this server does not answer to that host name (set VIBEVOICE_ALLOWED_HOSTS)", {}
        origin = headers.get("origin")
        if scope.get("method", "GET") not in SAFE_METHODS and origin and not self._same_origin(origin, headers):
            return 403, "cross-site request refused: the Origin is not this server", {}
        if self.policy.token and scope["path"] not in ("/login",) and not self._authorised(scope, headers):
            if "text/html" in headers.get("accept", "") and scope.get("method") == "GET":
                return 303, "log in first", {"location": "/login"}
            return 401, "a token is required: Authorization: Bearer <token> (printed when the server started)", \
                {"www-authenticate": "Bearer"}
        return None

    def _same_origin(self, origin: str, headers: dict[str, str]) -> bool:
        if origin in self.policy.origins:
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == headers.get("host", "").lower()

    def _authorised(self, scope, headers: dict[str, str]) -> bool:
        offered = []
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(value.strip())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 — a malformed cookie header is no credential
            pass
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        offered += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])[:1]
        return any(hmac.compare_digest(o.encode(), self.policy.token.encode()) for o in offered if o)

    async def _login(self, scope, headers, receive, send):
        """``/login``: a form asking for the token; a correct one sets the cookie. ``?token=`` sets it too."""
        token = self.policy.token
        if not token:
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        if query and scope["path"] != "/login" and hmac.compare_digest(query[0].encode(), token.encode()):
            return await _reply(send, 303, "logged in", {"location": scope["path"], "set-cookie": _cookie(token)})
        if scope["path"] != "/login":
            return None
        if scope.get("method") == "POST":
            body = b""
            while len(body) <= 4096:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            given = parse_qs(body[:4096].decode("utf-8", "replace")).get("token", [""])[0]
            if hmac.compare_digest(given.encode(), token.encode()):
                return await _reply(send, 303, "logged in", {"location": "/", "set-cookie": _cookie(token)})
            return await _page(send, 401, "That token is not right. It was printed when the server started.")
        return await _page(send, 200, "")

    async def _limited(self, scope, headers, receive, send):
        limit = limit_for(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            if int(declared) <= DRAIN_BYTES:
                while (await receive()).get("more_body"):
                    pass
            return await _reply(send, 413, _too_large(scope["path"], limit), {})
        state = {"received": 0, "over": False, "started": False}

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise TooLarge
            return message

        async def watched(message):
            if state["over"]:
                return  # whatever the app tries to say after the limit: the 413 below replaces it
            state["started"] |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            pass
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _reply(send, 413, _too_large(scope["path"], limit), {})


def _too_large(path: str, limit: int) -> str:
    what = "reference clips are limited to" if limit == MAX_CLIP_BYTES else "scripts are limited to"
    return f"request body over {limit} bytes; {what} {limit - 64_000} bytes"


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(token: str) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


async def _reply(send, status: int, detail: str, extra: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _page(send, status: int, message: str) -> None:
    note = f"<p class='error'>{html.escape(message)}</p>" if message else ""
    body = ("<!doctype html><meta charset='utf-8'><title>VibeVoice WebUI — log in</title>"
            "<body style='font-family:system-ui;max-width:28rem;margin:4rem auto'><h1>VibeVoice WebUI</h1>"
            f"<p>This server needs its access token (printed when it started).</p>{note}"
            "<form method='post' action='/login'><input name='token' type='password' autofocus "
            "style='width:100%;padding:.4rem' aria-label='token'><p><button>Log in</button></p></form>").encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
