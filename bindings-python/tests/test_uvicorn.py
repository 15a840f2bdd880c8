"""The ASGI middleware in a real uvicorn server on 127.0.0.1, driven over HTTP by httpx."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BODY_TEMPLATE, PACKAGE_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline_s: float = 30.0) -> None:
    """Polls the socket until the server accepts connections (or dies, or the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            continue
    raise TimeoutError(f"uvicorn did not listen on {port} in {deadline_s} s")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.apps:uvicorn_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--app-dir",
            str(PACKAGE_DIR),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_headers_429_body_retry_after(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        for remaining in ("2", "1", "0"):
            r = client.get("/v1/anything", headers={"Authorization": "Bearer uv-key"})
            assert r.status_code == 200
            assert r.text == "hello"
            assert r.headers["x-app"] == "1"
            assert r.headers["x-ratelimit-limit"] == "3"
            assert r.headers["x-ratelimit-remaining"] == remaining
            assert int(r.headers["x-ratelimit-reset"]) >= int(time.time())
            assert "retry-after" not in r.headers
        r = client.get("/v1/anything", headers={"Authorization": "Bearer uv-key"})
        assert r.status_code == 429
        retry = int(r.headers["retry-after"])
        assert 1 <= retry <= 20
        assert r.content == (BODY_TEMPLATE % retry).encode()
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-ratelimit-remaining"] == "0"
        names = [k.decode().lower() for k, _ in r.headers.raw]
        assert [n for n in names if n.startswith("x-ratelimit") or n == "retry-after"] == [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        ]


def test_missing_key(server: str) -> None:
    r = httpx.get(server + "/v1/anything")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "missing_api_key"
    assert "x-ratelimit-limit" not in r.headers
