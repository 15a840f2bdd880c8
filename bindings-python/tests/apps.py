"""Small apps the middleware tests drive (in-process and under uvicorn)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.asgi import RateLimitMiddleware as ASGIRateLimit
from aisoule_ratelimit.wsgi import RateLimitMiddleware as WSGIRateLimit
from tests.conftest import BURST3

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

from aisoule_ratelimit.asgi import ASGIApp, Message, Receive, Scope, Send


async def hello_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app: 200, `hello`, one header of its own."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-app", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def hello_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A bare WSGI app: 200, `hello`, one header of its own."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")])
    return [b"hello"]


def starlette_app(limiter: Limiter | None = None, **kwargs: Any) -> object:
    """A Starlette app with the middleware and a few routes."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"status": "up"})

    async def messages(request: Request) -> PlainTextResponse:
        return PlainTextResponse("sent", headers={"X-App": "1"})

    return Starlette(
        routes=[Route("/v1/status", status), Route("/v1/messages", messages, methods=["POST"])],
        middleware=[
            Middleware(
                ASGIRateLimit,
                limiter=limiter if limiter is not None else Limiter(policies=BURST3, routes=[]),
                **kwargs,
            )
        ],
    )


def flask_app(limiter: Limiter | None = None, **kwargs: Any) -> object:
    """A Flask app with the middleware."""
    from flask import Flask

    app = Flask(__name__)

    @app.get("/v1/status")
    def status() -> dict[str, str]:
        return {"status": "up"}

    @app.post("/v1/messages")
    def messages() -> tuple[str, int, dict[str, str]]:
        return "sent", 200, {"X-App": "1"}

    app.wsgi_app = WSGIRateLimit(  # type: ignore[method-assign]
        app.wsgi_app,
        limiter=limiter if limiter is not None else Limiter(policies=BURST3, routes=[]),
        **kwargs,
    )
    return app


# For `uvicorn tests.apps:uvicorn_app`.
uvicorn_app = ASGIRateLimit(hello_asgi, Limiter(policies=BURST3, routes=[]))


def shared_starlette_app() -> ASGIApp:
    """For `uvicorn --factory tests.apps:shared_starlette_app --workers N`: a Starlette app
    with the middleware over the documented limits on the shared table at
    `$ASRL_TEST_SEGMENT`. Every response names its worker (`x-worker: <pid>`); each
    worker, once its lifespan startup is done, creates `$ASRL_TEST_READY_DIR/<pid>`."""
    limiter = Limiter.open_shared(os.environ["ASRL_TEST_SEGMENT"])
    app = cast(ASGIApp, starlette_app(limiter))
    pid = str(os.getpid())

    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        async def tag(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-worker", pid.encode())]}
            elif message["type"] == "lifespan.startup.complete":
                (Path(os.environ["ASRL_TEST_READY_DIR"]) / pid).touch()
            await send(message)

        await app(scope, receive, tag)

    return tagged
