"""Four uvicorn worker processes, one shared table: the documented limit holds for a key
whose requests land on different workers, under concurrent HTTP load on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aisoule_ratelimit import Limiter
from tests.conftest import BODY_TEMPLATE, PACKAGE_DIR
from tests.test_uvicorn import free_port

WORKERS = 4
WINDOW_NS = 60_000_000_000  # the documented `standard` rule: 120 per 60 s, rolling window


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("uvicorn-workers")
    segment, ready = tmp / "table", tmp / "ready"
    ready.mkdir()
    Limiter.open_shared(segment)  # made here, so the workers only attach
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.apps:shared_starlette_app",
            "--factory",
            "--workers",
            str(WORKERS),
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
        env={**os.environ, "ASRL_TEST_SEGMENT": str(segment), "ASRL_TEST_READY_DIR": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, ready, base)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_until_ready(proc: subprocess.Popen[bytes], ready: Path, base: str, deadline_s: float = 60.0) -> None:
    """Polls until every worker has finished its startup and the server answers."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise RuntimeError(f"uvicorn exited with {proc.returncode}: {proc.stderr.read()!r}")
        if len(list(ready.iterdir())) == WORKERS:
            try:
                # A key of its own, so the tests' keys stay fresh.
                r = httpx.get(base + "/v1/status", headers={"Authorization": "Bearer probe"}, timeout=5)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
    raise TimeoutError(f"{WORKERS} uvicorn workers not ready in {deadline_s} s")


def window_index(mono_ns: int) -> int:
    return mono_ns // WINDOW_NS


async def burst(base: str, key: str, n: int) -> list[httpx.Response]:
    """`n` requests at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        return await asyncio.gather(
            *(client.get("/v1/status", headers={"Authorization": f"Bearer {key}"}) for _ in range(n))
        )


def test_four_workers_hold_the_documented_limit(server: str) -> None:
    # The window rule's windows are aligned to the monotonic clock's 0: run the burst in
    # one window (waiting for the next one when this one ends within 20 s), so the limit
    # is exactly 120 and not 120 plus the previous window's decaying share.
    left_ns = WINDOW_NS - time.monotonic_ns() % WINDOW_NS
    if left_ns < 20_000_000_000:
        time.sleep(left_ns / 1e9 + 0.01)
    start = time.monotonic_ns()
    responses = asyncio.run(burst(server, f"fresh-{uuid.uuid4()}", 150))
    end = time.monotonic_ns()
    assert window_index(start) == window_index(end), "the burst straddled a window"

    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(429)) == (120, 30)
    ok = [r for r in responses if r.status_code == 200]
    denied = [r for r in responses if r.status_code == 429]
    # Every admission was counted once across all workers: each remaining figure once.
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in ok) == list(range(120))
    assert all(r.headers["x-ratelimit-limit"] == "120" for r in responses)
    for r in denied:
        assert r.headers["x-ratelimit-remaining"] == "0"
        retry = int(r.headers["retry-after"])
        assert 1 <= retry <= 60
        assert r.content == (BODY_TEMPLATE % retry).encode()
    # The load was spread over several workers (each process answers for itself).
    workers = {r.headers["x-worker"] for r in responses}
    assert len(workers) >= 2, workers
