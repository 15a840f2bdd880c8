"""The ASGI middleware through Starlette's test client and the WSGI middleware through
Flask's, with the same expectations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from starlette.testclient import TestClient

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.asgi import RateLimitMiddleware as ASGIRateLimit
from aisoule_ratelimit.asgi import Receive, Scope, Send
from aisoule_ratelimit.wsgi import RateLimitMiddleware as WSGIRateLimit
from tests.apps import flask_app, hello_asgi, hello_wsgi, starlette_app
from tests.conftest import BODY_TEMPLATE, BURST3

RL = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


class Client:
    """The two test clients behind one face: `request(method, path, key)` returns
    `(status, headers as [(lower-case name, value)], body bytes)`."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        if kind == "starlette":
            self.client: Any = TestClient(starlette_app(**kwargs))  # type: ignore[arg-type]
        else:
            app = flask_app(**kwargs)
            assert isinstance(app, Flask)
            self.client = app.test_client()

    def request(
        self, method: str, path: str, key: str | None = None, auth: str | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {}
        if auth is not None:
            headers["Authorization"] = auth
        elif key is not None:
            headers["Authorization"] = f"Bearer {key}"
        r = (
            self.client.request(method, path, headers=headers)
            if self.kind == "starlette"
            else (self.client.open(path, method=method, headers=headers))
        )
        if self.kind == "starlette":
            return r.status_code, [(k.lower(), v) for k, v in r.headers.multi_items()], r.content
        return r.status_code, [(k.lower(), v) for k, v in r.headers.items()], r.data


KINDS = ["starlette", "flask"]


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k for k, _ in headers]


def value(headers: list[tuple[str, str]], name: str) -> str:
    found = [v for k, v in headers if k == name]
    assert len(found) == 1, (name, headers)
    return found[0]


@pytest.mark.parametrize("kind", KINDS)
def test_headers_on_every_response_then_exact_429(kind: str) -> None:
    c = Client(kind)
    t0 = time.time()
    for want_remaining in ("2", "1", "0"):
        status, headers, body = c.request("GET", "/v1/status", "alice")
        assert status == 200
        assert json.loads(body) == {"status": "up"}
        assert value(headers, "x-ratelimit-limit") == "3"
        assert value(headers, "x-ratelimit-remaining") == want_remaining
        reset = int(value(headers, "x-ratelimit-reset"))
        assert t0 < reset <= time.time() + 61
        assert "retry-after" not in names(headers)
    status, headers, body = c.request("POST", "/v1/messages", "alice")
    assert status == 429
    retry = int(value(headers, "retry-after"))
    assert 1 <= retry <= 20  # one request is back every 20 s
    assert body == (BODY_TEMPLATE % retry).encode()
    assert value(headers, "content-type") == "application/json"
    assert value(headers, "content-length") == str(len(body))
    assert value(headers, "x-ratelimit-remaining") == "0"
    # The contract's order: the three headers, then Retry-After.
    rl = [n for n in names(headers) if n in (*RL, "retry-after")]
    assert rl == [*RL, "retry-after"]
    # Another key is not limited by alice's requests; the app's own headers stay.
    status, headers, body = c.request("POST", "/v1/messages", "bob")
    assert status == 200 and body == b"sent"
    assert value(headers, "x-app") == "1"
    assert value(headers, "x-ratelimit-remaining") == "2"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("auth", [None, "", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer   "])
def test_missing_key_gets_401_json(kind: str, auth: str | None) -> None:
    c = Client(kind)
    status, headers, body = c.request("GET", "/v1/status", auth=auth)
    assert status == 401
    assert value(headers, "content-type") == "application/json"
    assert value(headers, "www-authenticate") == "Bearer"
    assert json.loads(body)["error"]["code"] == "missing_api_key"
    assert not set(names(headers)) & {*RL, "retry-after"}


@pytest.mark.parametrize("kind", KINDS)
def test_bearer_scheme_is_case_insensitive(kind: str) -> None:
    c = Client(kind)
    assert c.request("GET", "/v1/status", auth="bearer k1")[0] == 200
    assert value(c.request("GET", "/v1/status", auth="BEARER k1")[1], "x-ratelimit-remaining") == "1"


def test_custom_key_function_and_missing_key_handler_asgi() -> None:
    async def let_through(scope: Scope, receive: Receive, send: Send) -> None:
        await hello_asgi(scope, receive, send)

    def key_func(scope: Scope) -> str | None:
        for name, val in scope["headers"]:
            if name == b"x-api-key":
                return str(val.decode())
        return None

    c = Client("starlette", key_func=key_func, on_missing_key=let_through)
    assert c.client.get("/v1/status", headers={"X-Api-Key": "k"}).status_code == 200
    r = c.client.get("/v1/status", headers={"X-Api-Key": "k"})
    assert r.headers["x-ratelimit-remaining"] == "1"
    r = c.client.get("/v1/status", headers={"Authorization": "Bearer k"})  # not the key here
    assert r.status_code == 200 and r.text == "hello" and "x-ratelimit-limit" not in r.headers


def test_custom_key_function_and_missing_key_handler_wsgi() -> None:
    def key_func(environ: dict[str, Any]) -> str | None:
        return environ.get("HTTP_X_API_KEY")

    c = Client("flask", key_func=key_func, on_missing_key=hello_wsgi)
    assert c.client.get("/v1/status", headers={"X-Api-Key": "k"}).status_code == 200
    r = c.client.get("/v1/status", headers={"X-Api-Key": "k"})
    assert r.headers["X-RateLimit-Remaining"] == "1"
    r = c.client.get("/v1/status")
    assert r.status_code == 200 and r.data == b"hello" and "X-RateLimit-Limit" not in r.headers


def test_wsgi_headers_keep_the_contract_case() -> None:
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        seen.append((status, headers))
        return lambda b: None

    mw = WSGIRateLimit(hello_wsgi, Limiter(policies=BURST3, routes=[]))
    env = {"HTTP_AUTHORIZATION": "Bearer k", "PATH_INFO": "/x", "SCRIPT_NAME": ""}
    for _ in range(3):
        assert list(mw(env, start_response)) == [b"hello"]
    body = b"".join(mw(env, start_response))
    assert seen[0][0] == "200 OK"
    assert [k for k, _ in seen[0][1]] == [
        "Content-Type",
        "X-App",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ]
    status, headers = seen[3]
    assert status == "429 Too Many Requests"
    assert [k for k, _ in headers] == [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
        "Content-Type",
        "Content-Length",
    ]
    assert body == (BODY_TEMPLATE % int(dict(headers)["Retry-After"])).encode()


def test_asgi_routes_by_path_and_passes_other_scopes() -> None:
    import asyncio

    lim = Limiter()
    mw = ASGIRateLimit(hello_asgi, lim)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "path": path, "headers": [(b"authorization", b"Bearer k")]}

    asyncio.run(mw(scope("/v1/media/1"), receive, send))
    assert (b"x-ratelimit-limit", b"30") in sent[0]["headers"]
    asyncio.run(mw(scope("/v1/messages"), receive, send))
    assert (b"x-ratelimit-limit", b"5") in sent[2]["headers"]
    # lifespan and websocket scopes go straight to the app, unlimited.
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    asyncio.run(ASGIRateLimit(app, lim)({"type": "lifespan"}, receive, send))
    assert seen == ["lifespan"]


@pytest.mark.parametrize("kind", KINDS)
def test_exempt_paths_skip_key_and_limit(kind: str) -> None:
    c = Client(kind, exempt=["/v1/status"])
    for _ in range(5):  # no key, no limit, no headers
        status, headers, body = c.request("GET", "/v1/status")
        assert status == 200 and json.loads(body) == {"status": "up"}
        assert not set(names(headers)) & {*RL, "retry-after"}
    assert c.request("POST", "/v1/messages")[0] == 401  # not exempt
    assert c.request("GET", "/v1/statusX", "k")[0] == 404  # a prefix on a `/` boundary only


def test_exempt_must_be_prefixes() -> None:
    with pytest.raises(TypeError, match="not a str"):
        ASGIRateLimit(hello_asgi, exempt="/health")
    with pytest.raises(TypeError, match="str path prefixes"):
        WSGIRateLimit(hello_wsgi, exempt=[b"/health"])  # type: ignore[list-item]
