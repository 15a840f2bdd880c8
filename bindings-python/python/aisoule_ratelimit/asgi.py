"""Pure ASGI rate-limit middleware for Starlette, FastAPI and any ASGI 3 app.

No framework is imported. Every HTTP response gets the rate-limit headers; a denied
request gets the contract's 429 (its headers, `Retry-After`, `Content-Type:
application/json` and the exact body); a request without a key goes to
`on_missing_key` (by default a 401 JSON error, never silently unlimited).

    from fastapi import FastAPI
    from aisoule_ratelimit import Limiter
    from aisoule_ratelimit.asgi import RateLimitMiddleware

    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=Limiter())

ASGI wants lower-case header names, so the names here are the contract's in lower case
(HTTP header names are case-insensitive); `Decision.headers` has the exact case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from aisoule_ratelimit._common import MISSING_KEY_BODY, bearer_key, exempt_matcher
from aisoule_ratelimit._native import BODY_CONTENT_TYPE, Limiter

__all__ = [
    "ASGIApp",
    "Message",
    "RateLimitMiddleware",
    "Receive",
    "Scope",
    "Send",
    "bearer_key_from_scope",
    "missing_key_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONTENT_TYPE = (b"content-type", BODY_CONTENT_TYPE.encode())


def bearer_key_from_scope(scope: Scope) -> bytes | None:
    """The API key of `Authorization: Bearer <key>`, or None (the default key function)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bearer_key(value)
    return None
    # RateLimitMiddleware.__call__ inlines this function: keep the two alike.


async def missing_key_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The default answer to a request without a key: 401 with a JSON error."""
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                _CONTENT_TYPE,
                (b"content-length", str(len(MISSING_KEY_BODY)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": MISSING_KEY_BODY})


class RateLimitMiddleware:
    """Limits every HTTP request of `app` per API key and route class.

    Args:
        app: the ASGI app to wrap.
        limiter: the `Limiter` (default: one with the documented policies).
        key_func: `scope -> str | bytes | None`, the request's API key (default: the
            token of `Authorization: Bearer <key>`). None means "no key".
        on_missing_key: the ASGI app that answers requests without a key (default: a
            401 JSON error). Pass `app` itself to let them through unlimited.
        exempt: path prefixes that go straight to `app`, neither limited nor asked for a
            key (health checks, say): `"/health"` matches `/health`, `/health/db` and
            `/health?x`, not `/healthz`.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter | None = None,
        *,
        key_func: Callable[[Scope], str | bytes | None] = bearer_key_from_scope,
        on_missing_key: ASGIApp = missing_key_app,
        exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._is_exempt = exempt_matcher(exempt)
        self.limiter = limiter if limiter is not None else Limiter()
        self.key_func = key_func
        self.on_missing_key = on_missing_key
        self._check = self.limiter.check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self._is_exempt is not None and self._is_exempt(scope["path"])):
            await self.app(scope, receive, send)
            return
        key: str | bytes | None = None
        if self.key_func is bearer_key_from_scope:
            # bearer_key_from_scope inlined: a function call less on every request.
            for name, value in scope["headers"]:
                if name == b"authorization":
                    if value[:7].lower() == b"bearer ":
                        key = value[7:].strip(b" \t") or None
                    break
        else:
            key = self.key_func(scope)
        if key is None:
            await self.on_missing_key(scope, receive, send)
            return
        decision = self._check(key, scope["path"])
        headers = decision.asgi_headers
        if decision.allowed:

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *headers]
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        body = decision.body or b""
        headers.append(_CONTENT_TYPE)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
