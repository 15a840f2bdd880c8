"""WSGI rate-limit middleware for Flask, Django and any WSGI app.

Every response gets the rate-limit headers (the contract's names and case); a denied
request gets the contract's 429 (its headers, `Retry-After`, `Content-Type:
application/json` and the exact body); a request without a key goes to
`on_missing_key` (by default a 401 JSON error, never silently unlimited).

    from flask import Flask
    from aisoule_ratelimit import Limiter
    from aisoule_ratelimit.wsgi import RateLimitMiddleware

    app = Flask(__name__)
    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=Limiter())

For Django, wrap the WSGI application in `wsgi.py`:
`application = RateLimitMiddleware(get_wsgi_application())`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from aisoule_ratelimit._common import MISSING_KEY_BODY, bearer_key, exempt_matcher
from aisoule_ratelimit._native import BODY_CONTENT_TYPE, Limiter

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitMiddleware", "bearer_key_from_environ", "missing_key_app"]


def bearer_key_from_environ(environ: WSGIEnvironment) -> bytes | None:
    """The API key of `Authorization: Bearer <key>`, or None (the default key function)."""
    value = environ.get("HTTP_AUTHORIZATION")
    if not value:
        return None
    # WSGI strings carry the header's bytes as latin-1 code points (PEP 3333).
    return bearer_key(value.encode("latin-1"))


def missing_key_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The default answer to a request without a key: 401 with a JSON error."""
    start_response(
        "401 Unauthorized",
        [
            ("Content-Type", BODY_CONTENT_TYPE),
            ("Content-Length", str(len(MISSING_KEY_BODY))),
            ("WWW-Authenticate", "Bearer"),
        ],
    )
    return [MISSING_KEY_BODY]


class RateLimitMiddleware:
    """Limits every request of `app` per API key and route class.

    Args:
        app: the WSGI app to wrap (for Flask, `app.wsgi_app`).
        limiter: the `Limiter` (default: one with the documented policies).
        key_func: `environ -> str | bytes | None`, the request's API key (default: the
            token of `Authorization: Bearer <key>`). None means "no key".
        on_missing_key: the WSGI app that answers requests without a key (default: a
            401 JSON error). Pass `app` itself to let them through unlimited.
        exempt: path prefixes that go straight to `app`, neither limited nor asked for a
            key (health checks, say): `"/health"` matches `/health`, `/health/db` and
            `/health?x`, not `/healthz`.

    The route is `SCRIPT_NAME + PATH_INFO`, the path the client asked for.
    """

    def __init__(
        self,
        app: WSGIApplication,
        limiter: Limiter | None = None,
        *,
        key_func: Callable[[WSGIEnvironment], str | bytes | None] = bearer_key_from_environ,
        on_missing_key: WSGIApplication = missing_key_app,
        exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._is_exempt = exempt_matcher(exempt)
        self.limiter = limiter if limiter is not None else Limiter()
        self.key_func = key_func
        self.on_missing_key = on_missing_key

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self._is_exempt is not None and self._is_exempt(path):
            return self.app(environ, start_response)
        key = self.key_func(environ)
        if key is None:
            return self.on_missing_key(environ, start_response)
        decision = self.limiter.check(key, path)
        headers = decision.header_list
        if decision.allowed:

            def start_with_headers(
                status: str, response_headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
            ) -> Callable[[bytes], object]:
                return start_response(status, [*response_headers, *headers], exc_info)

            return self.app(environ, start_with_headers)
        body = decision.body or b""
        headers.append(("Content-Type", BODY_CONTENT_TYPE))
        headers.append(("Content-Length", str(len(body))))
        start_response("429 Too Many Requests", headers)
        return [body]
