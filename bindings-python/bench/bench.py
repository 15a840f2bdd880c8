"""Benchmarks of the Python binding against its anchors, in the same run.

1. `Limiter.check` (the decision with its header figures) against `limits` 5.x
   (`MemoryStorage`, `SlidingWindowCounterRateLimiter`: `hit` plus `get_window_stats`,
   which a header-writing middleware needs), on the same 10,000 keys.
2. The ASGI middleware's cost per request over a bare Starlette app, against slowapi's
   middlewares (with headers), driving the ASGI apps in-process with prebuilt scopes.

Each side runs in a child process of its own, the sides alternating over several
rounds: `limits`' `MemoryStorage` (also under slowapi) starts a background expiry
thread that takes the GIL, which would slow whatever is measured after it in the same
process. Within a child, the timed batches are interleaved with the bare app's, so the
drift of a noisy machine hits both alike. Every figure is a median per call.

Usage: `python bench/bench.py [--quick]`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

KEYS = 10_000
NOW = 1_780_423_178_274_000_000
QUICK = "--quick" in sys.argv
# A limit nobody reaches in a run, so every call takes the admit path and updates a cell.
BIG = {"standard": [{"algorithm": "window", "limit": 60_000, "period_ms": 60_000}]}
KEY_NAMES = [f"key-{i:05}" for i in range(KEYS)]


def timed_batches(batch: Callable[[], int], batches: int) -> list[float]:
    """Runs `batch` (which returns how many calls it made) `batches` times with the GC
    off; the time per call of each batch, in nanoseconds."""
    batch()  # warm up
    per_call = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(batches):
            t0 = time.perf_counter_ns()
            n = batch()
            per_call.append((time.perf_counter_ns() - t0) / n)
    finally:
        gc.enable()
    return per_call


# --- 1. check() and limits -------------------------------------------------------------


def part_check_ours() -> dict[str, float]:
    from aisoule_ratelimit import Limiter

    limiter = Limiter(policies=BIG, routes=[], capacity=1 << 16)
    documented = Limiter(capacity=1 << 16)
    keys = KEY_NAMES
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
        # What a header-writing caller reads. (Assigned, not built into a tuple: a tuple
        # would add its own allocation to the figure.)
        for k in keys:
            d = check(k, "/v1/status")
            limit = d.limit  # noqa: F841
            remaining = d.remaining  # noqa: F841
            reset = d.reset  # noqa: F841
        return KEYS

    def ours_headers() -> int:
        for k in keys:
            check(k, "/v1/status").headers  # noqa: B018
        return KEYS

    def ours_messaging() -> int:
        # The documented two-rule policy (window + GCRA); one request per key per batch.
        for k in keys:
            check_doc(k, "/v1/messages")
        return KEYS

    def empty() -> int:
        for _ in keys:
            pass
        return KEYS

    batches = 30 if QUICK else 100
    return {
        name: statistics.median(timed_batches(fn, batches))
        for name, fn in [
            ("check(key, route)", ours),
            ("check(key, route, now_ns=...)", ours_now),
            ("check + limit/remaining/reset", ours_figures),
            ("check + headers dict", ours_headers),
            ("check, documented messaging (2 rules)", ours_messaging),
            ("empty loop", empty),
        ]
    }


def part_check_limits() -> dict[str, float]:
    from limits import RateLimitItemPerMinute
    from limits.storage import MemoryStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    swc = SlidingWindowCounterRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(1_000_000_000)
    for k in KEY_NAMES:  # every key exists before timing, as ours do
        swc.hit(item, k)
    # Batches of 1,000 (limits is slow), walking all 10,000 keys in turn.
    slices = [KEY_NAMES[i : i + 1_000] for i in range(0, KEYS, 1_000)]
    turn = [0]

    def next_keys() -> list[str]:
        turn[0] += 1
        return slices[turn[0] % len(slices)]

    def hit_stats() -> int:
        keys = next_keys()
        for k in keys:
            swc.hit(item, k)
            swc.get_window_stats(item, k)
        return len(keys)

    def hit() -> int:
        keys = next_keys()
        for k in keys:
            swc.hit(item, k)
        return len(keys)

    batches = 10 if QUICK else 30
    return {
        "limits hit + get_window_stats": statistics.median(timed_batches(hit_stats, batches)),
        "limits hit": statistics.median(timed_batches(hit, batches)),
    }


# --- 2. ASGI middleware ----------------------------------------------------------------


def starlette_app(middleware: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/v1/status", hello)], middleware=middleware)


def middleware_app(which: str) -> Any:
    from starlette.middleware import Middleware

    if which == "ours":
        from aisoule_ratelimit import Limiter
        from aisoule_ratelimit.asgi import RateLimitMiddleware

        return starlette_app([Middleware(RateLimitMiddleware, limiter=Limiter(policies=BIG, routes=[]))])
    from slowapi import Limiter as SlowLimiter
    from slowapi.middleware import SlowAPIASGIMiddleware, SlowAPIMiddleware
    from starlette.requests import Request

    def slow_key(request: Request) -> str:
        return request.headers.get("authorization", "")[7:]

    slow = SlowLimiter(key_func=slow_key, default_limits=["1000000000/minute"], headers_enabled=True)
    cls = SlowAPIASGIMiddleware if which == "slowapi-asgi" else SlowAPIMiddleware
    app = starlette_app([Middleware(cls)])
    app.state.limiter = slow
    return app


def part_asgi(which: str) -> dict[str, float]:
    """The bare app and one middleware, batches interleaved: medians per request and the
    median of the per-batch differences (the cost the middleware adds)."""
    apps = {"bare": starlette_app([]), which: middleware_app(which)}
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
        for k in KEY_NAMES
    ]
    request_message = {"type": "http.request", "body": b"", "more_body": False}
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return request_message

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    slow = which != "ours"
    per_batch = (50 if QUICK else 100) if slow else (200 if QUICK else 500)
    batches = (20 if QUICK else 60) if slow else (30 if QUICK else 100)

    async def run(app: Any, start: int) -> None:
        for i in range(per_batch):
            await app(dict(scopes[(start + i) % KEYS]), receive, send)

    async def main() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():
            await run(app, 0)  # warm up
        offset = 0
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

    res = asyncio.run(main())
    assert statuses == {200}, f"unexpected statuses {statuses}"
    return {
        "bare": statistics.median(res["bare"]),
        "with": statistics.median(res[which]),
        "added": statistics.median(x - y for x, y in zip(res[which], res["bare"], strict=True)),
    }


# --- the run ---------------------------------------------------------------------------

PARTS: dict[str, Callable[[], dict[str, float]]] = {
    "check-ours": part_check_ours,
    "check-limits": part_check_limits,
    "asgi-ours": lambda: part_asgi("ours"),
    "asgi-slowapi-asgi": lambda: part_asgi("slowapi-asgi"),
    "asgi-slowapi-http": lambda: part_asgi("slowapi-http"),
}


def run_part(part: str) -> dict[str, float]:
    args = [sys.executable, __file__, "--part", part] + (["--quick"] if QUICK else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def fmt_rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> None:
    rounds = 3 if QUICK else 5
    results: dict[str, list[dict[str, float]]] = {part: [] for part in PARTS}
    for _ in range(rounds):
        for part in PARTS:
            results[part].append(run_part(part))

    def med(part: str, key: str) -> float:
        return statistics.median(r[key] for r in results[part])

    def rounds_of(part: str, key: str) -> str:
        return fmt_rounds([r[key] for r in results[part]])

    print(
        f"Python {sys.version.split()[0]}, aisoule-ratelimit {_version('aisoule-ratelimit')}, "
        f"limits {_version('limits')}, Starlette {_version('starlette')}, slowapi {_version('slowapi')}; "
        f"{rounds} rounds, each side in its own process"
    )
    print("\n## check() vs limits (10,000 keys; ns per call; median over rounds of batch medians)")
    for part in ("check-ours", "check-limits"):
        for key in results[part][0]:
            print(f"  {key:42s} {med(part, key):9.1f} ns   (rounds: {rounds_of(part, key)})")
    ours = med("check-ours", "check(key, route)")
    ratio = med("check-limits", "limits hit + get_window_stats") / ours
    print(f"  ratio limits (hit + get_window_stats) / check(key, route): {ratio:.1f}x   (goal >= 40x)")
    print(f"  check(key, route): {ours:.1f} ns   (goal: well below 120 ns)")
    figures = med("check-ours", "check + limit/remaining/reset")
    print(f"  check + limit/remaining/reset: {figures:.1f} ns   (goal <= 120 ns)")

    print("\n## ASGI middleware added per request over a bare Starlette app (in-process, prebuilt scopes)")
    names = {
        "asgi-ours": "aisoule RateLimitMiddleware",
        "asgi-slowapi-asgi": "slowapi SlowAPIASGIMiddleware",
        "asgi-slowapi-http": "slowapi SlowAPIMiddleware",
    }
    for part, name in names.items():
        print(
            f"  {name:30s} added {med(part, 'added'):9.0f} ns   (bare app {med(part, 'bare'):6.0f} ns; "
            f"rounds: {rounds_of(part, 'added')})"
        )
    ours_added = med("asgi-ours", "added")
    for part in ("asgi-slowapi-asgi", "asgi-slowapi-http"):
        print(f"  ratio {names[part]} / ours: {med(part, 'added') / ours_added:.1f}x   (goal >= 5x)")
    print(f"  ours added: {ours_added / 1000:.2f} us per request   (goal <= 3 us)")


if __name__ == "__main__":
    if "--part" in sys.argv:
        print(json.dumps(PARTS[sys.argv[sys.argv.index("--part") + 1]]()))
    else:
        main()
