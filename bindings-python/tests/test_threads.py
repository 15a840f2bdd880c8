"""Threads hammering one key with a frozen clock admit exactly the capacity."""

from __future__ import annotations

import threading

import pytest

from aisoule_ratelimit import Limiter

NOW = 1_780_423_178_274_000_000
THREADS = 8
PER_THREAD = 2_000


@pytest.mark.parametrize(
    ("rule", "capacity"),
    [
        ({"algorithm": "window", "limit": 5_000, "period_ms": 60_000}, 5_000),
        ({"algorithm": "gcra", "limit": 100, "period_ms": 1_000, "burst": 3_000}, 3_000),
    ],
)
def test_threads_admit_exactly_the_capacity(rule: dict[str, object], capacity: int) -> None:
    lim = Limiter(policies={"p": [rule]}, routes=[], default_policy="p")
    admitted = [0] * THREADS
    start = threading.Barrier(THREADS)

    def hammer(i: int) -> None:
        start.wait()
        n = 0
        for _ in range(PER_THREAD):
            if lim.check(b"shared-key", now_ns=NOW).allowed:
                n += 1
        admitted[i] = n

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert THREADS * PER_THREAD > capacity
    assert sum(admitted) == capacity
    assert lim.peek(b"shared-key", now_ns=NOW).remaining == 0


def test_threads_two_rule_policy() -> None:
    # The documented messaging policy: the burst rule of 5 binds.
    lim = Limiter()
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def hammer() -> None:
        start.wait()
        mine = [lim.check("k", "/v1/messages", now_ns=NOW).allowed for _ in range(50)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5
