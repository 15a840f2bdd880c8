"""Benchmarks of the Python binding against its anchors, run in the same process.

1. `Limiter.check` (the decision with its header figures) against `limits` 5.x
   (`MemoryStorage`, `SlidingWindowCounterRateLimiter`: `hit` plus `get_window_stats`,
   which a header-writing middleware needs), on the same 10,000 keys.
2. The ASGI middleware's cost per request over a bare Starlette app, against slowapi's
   middlewares (with headers), driving the ASGI apps in-process with prebuilt scopes.

Every figure is the median over many timed batches, per call. Usage:
`python bench/bench.py [--quick]`.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.asgi import RateLimitMiddleware

KEYS = 10_000
NOW = 1_780_423_178_274_000_000
QUICK = "--quick" in sys.argv

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def median_per_call(batch: Callable[[], int], batches: int) -> float:
    """Runs `batch` (which returns how many calls it made) `batches` times; the median
    time per call in nanoseconds."""
    batch()  # warm up
    per_call = []
    gc.disable()
    try:
        for _ in range(batches):
            t0 = time.perf_counter_ns()
            n = batch()
            per_call.append((time.perf_counter_ns() - t0) / n)
    finally:
        gc.enable()
    return statistics.median(per_call)


def bench_check() -> None:
    # A limit nobody reaches, so every call takes the admit path and updates a cell.
    big = {"standard": [{"algorithm": "window", "limit": 60_000, "period_ms": 60_000}]}
    limiter = Limiter(policies=big, routes=[], capacity=1 << 16)
    documented = Limiter(capacity=1 << 16)
    keys = [f"key-{i:05}" for i in range(KEYS)]
    check = limiter.check
    check_doc = documented.check

    def ours() -> int:
        for k in keys:
            check(k, "/v1/status")
        return KEYS

    def ours_now() -> int:
        for k in keys:
            check(k, "/v1/status", now_ns=NOW)
        return KEYS

    def ours_figures() -> int:
        for k in keys:
            d = check(k, "/v1/status")
            d.limit, d.remaining, d.reset  # noqa: B018
        return KEYS

    def ours_headers() -> int:
        for k in keys:
            check(k, "/v1/status").headers  # noqa: B018
        return KEYS

    def ours_messaging() -> int:
        # The documented two-rule policy (window + GCRA); keys rotate, 1 request per key
        # per batch, so the 5/s burst is not the bottleneck.
        for k in keys:
            check_doc(k, "/v1/messages")
        return KEYS

    def empty() -> int:
        for _ in keys:
            pass
        return KEYS

    from limits import RateLimitItemPerMinute
    from limits.storage import MemoryStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    storage = MemoryStorage()
    swc = SlidingWindowCounterRateLimiter(storage)
    item = RateLimitItemPerMinute(1_000_000_000)
    limits_keys = keys[:2_000]

    def limits_hit_stats() -> int:
        for k in limits_keys:
            swc.hit(item, k)
            swc.get_window_stats(item, k)
        return len(limits_keys)

    def limits_hit() -> int:
        for k in limits_keys:
            swc.hit(item, k)
        return len(limits_keys)

    for k in keys:  # every key of `limits` exists before timing, as ours do
        swc.hit(item, k)

    rounds = 3 if QUICK else 5
    batches = 20 if QUICK else 60
    results: dict[str, list[float]] = {}
    for _ in range(rounds):  # interleaved, so drift of a noisy machine hits all alike
        for name, fn, b in [
            ("check(key, route)", ours, batches),
            ("check(key, route, now_ns=...)", ours_now, batches),
            ("check + limit/remaining/reset", ours_figures, batches),
            ("check + headers dict", ours_headers, batches),
            ("check, documented messaging (2 rules)", ours_messaging, batches),
            ("empty loop", empty, batches),
            ("limits hit + get_window_stats", limits_hit_stats, max(3, batches // 10)),
            ("limits hit", limits_hit, max(3, batches // 10)),
        ]:
            results.setdefault(name, []).append(median_per_call(fn, b))
    print(f"## check() vs limits {_version('limits')} (10,000 keys; ns per call, median of rounds)")
    med = {name: statistics.median(v) for name, v in results.items()}
    for name, v in results.items():
        print(f"  {name:42s} {med[name]:9.1f} ns   (rounds: {', '.join(f'{x:.0f}' for x in v)})")
    ratio = med["limits hit + get_window_stats"] / med["check(key, route)"]
    print(f"  ratio limits (hit + stats) / check: {ratio:.1f}x   (goal >= 40x)")
    print(f"  check(key, route) median {med['check(key, route)']:.1f} ns   (goal <= 120 ns)")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def starlette_app(middleware: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/v1/status", hello)], middleware=middleware)


def bench_asgi() -> None:
    from slowapi import Limiter as SlowLimiter
    from slowapi.middleware import SlowAPIASGIMiddleware, SlowAPIMiddleware
    from starlette.middleware import Middleware
    from starlette.requests import Request

    big = {"standard": [{"algorithm": "window", "limit": 60_000, "period_ms": 60_000}]}
    keys = [f"key-{i:05}" for i in range(KEYS)]

    def slow_key(request: Request) -> str:
        return request.headers.get("authorization", "")[7:]

    def slowapi_app(cls: Any) -> Any:
        slow = SlowLimiter(key_func=slow_key, default_limits=["1000000000/minute"], headers_enabled=True)
        app = starlette_app([Middleware(cls)])
        app.state.limiter = slow
        return app

    apps: dict[str, Any] = {
        "bare Starlette": starlette_app([]),
        "aisoule RateLimitMiddleware": starlette_app(
            [Middleware(RateLimitMiddleware, limiter=Limiter(policies=big, routes=[]))]
        ),
        "slowapi SlowAPIASGIMiddleware": slowapi_app(SlowAPIASGIMiddleware),
        "slowapi SlowAPIMiddleware": slowapi_app(SlowAPIMiddleware),
    }
    scopes = [
        {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/status",
            "raw_path": b"/v1/status",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {k}".encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        for k in keys
    ]
    request_message = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return request_message

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    per_batch = 200 if QUICK else 400
    batches = 30 if QUICK else 150

    async def run(app: Any, start: int) -> int:
        for i in range(per_batch):
            await app(dict(scopes[(start + i) % KEYS]), receive, send)
        return per_batch

    async def main() -> dict[str, list[float]]:
        # Batches interleaved app by app, so the drift of a noisy machine hits all alike;
        # the cost a middleware adds is the median of (its batch - the bare app's batch).
        out: dict[str, list[float]] = {name: [] for name in apps}
        offset = 0
        for app in apps.values():
            await run(app, offset)  # warm up
        gc.collect()
        gc.disable()
        try:
            for _ in range(batches):
                offset += per_batch
                for name, app in apps.items():
                    t0 = time.perf_counter_ns()
                    await run(app, offset)
                    out[name].append((time.perf_counter_ns() - t0) / per_batch)
                gc.collect()
        finally:
            gc.enable()
        return out

    results = asyncio.run(main())
    assert set(statuses) == {200}, f"unexpected statuses {set(statuses)}"
    bare = results["bare Starlette"]
    med = {name: statistics.median(v) for name, v in results.items()}
    added = {
        name: statistics.median(x - y for x, y in zip(v, bare, strict=True)) for name, v in results.items()
    }
    print(
        f"\n## ASGI middleware per request (Starlette {_version('starlette')}, slowapi {_version('slowapi')};"
    )
    print(f"## in-process, prebuilt scopes, 10,000 keys; medians of {batches} interleaved batches)")
    for name in results:
        extra = "" if name == "bare Starlette" else f"   added: {added[name]:8.0f} ns"
        print(f"  {name:32s} {med[name]:8.0f} ns per request{extra}")
    ours = added["aisoule RateLimitMiddleware"]
    for name in ("slowapi SlowAPIASGIMiddleware", "slowapi SlowAPIMiddleware"):
        print(f"  ratio {name} / ours (added cost): {added[name] / ours:.1f}x   (goal >= 5x)")
    print(f"  ours added {ours / 1000:.2f} us per request   (goal <= 3 us)")


if __name__ == "__main__":
    print(f"Python {sys.version.split()[0]}, aisoule-ratelimit {_version('aisoule-ratelimit')}")
    bench_check()
    bench_asgi()
