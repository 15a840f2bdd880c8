"""The gateway's ASGI app alone (no HTTP server, no access log), with the limiter and
without (`--no-limit`), 10,000 keys: the medians of 5 runs, µs a request, as one line
`app app_on_us=... app_off_us=...` (bench/gateway_load.sh reads it)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.gateway import Gateway

KEYS = [b"Bearer app-%d" % i for i in range(10_000)]


async def send(message: Any) -> None:
    pass


async def receive() -> dict[str, Any]:
    return {}


async def per_request_us(app: Gateway, n: int = 30_000) -> float:
    t = time.perf_counter()
    for i in range(n):
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/status",
            "raw_path": b"/v1/status",
            "headers": [(b"host", b"x"), (b"authorization", KEYS[i % 10_000])],
        }
        await app(scope, receive, send)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    on, off = Gateway(Limiter(), access_log=False), Gateway(None, access_log=False)
    runs = [(asyncio.run(per_request_us(on)), asyncio.run(per_request_us(off))) for _ in range(5)]
    on_us = statistics.median(r[0] for r in runs)
    off_us = statistics.median(r[1] for r in runs)
    print(f"app app_on_us={on_us:.2f} app_off_us={off_us:.2f}")


if __name__ == "__main__":
    main()
