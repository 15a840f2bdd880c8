"""`Limiter.check` on a table in a shared-memory segment against one in the process.

Both limiters live in one process with the same policy, capacity and 10,000 keys; their
timed batches alternate, so the drift of a noisy machine hits both alike. The segment is
in /dev/shm (tmpfs) when there is one, as in a service. Prints the medians per call and
the ratio shared / in-process (goal: at most 1.5x).

Usage: `python bench/shared.py [--quick]`.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aisoule_ratelimit import Limiter

KEYS = [f"key-{i:05}" for i in range(10_000)]
QUICK = "--quick" in sys.argv
# A limit nobody reaches in a run: every call takes the admit path and updates a cell.
BIG = {"standard": [{"algorithm": "window", "limit": 60_000, "period_ms": 60_000}]}
CAPACITY = 1 << 16


def batch_of(limiter: Limiter, keys: list[str]) -> Callable[[], int]:
    check = limiter.check

    def run() -> int:
        for k in keys:
            check(k, "/v1/status")
        return len(keys)

    return run


def interleaved(batches: dict[str, Callable[[], int]], n: int) -> dict[str, list[float]]:
    """Runs the batches in turn `n` times with the GC off: the ns per call of each run."""
    per_call: dict[str, list[float]] = {name: [] for name in batches}
    for b in batches.values():
        b()  # warm up: touches every cell the keys use
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            for name, b in batches.items():
                t0 = time.perf_counter_ns()
                calls = b()
                per_call[name].append((time.perf_counter_ns() - t0) / calls)
    finally:
        gc.enable()
    return per_call


def main() -> None:
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as d:
        segment = Path(d) / "bench-table"
        owned = Limiter(policies=BIG, routes=[], capacity=CAPACITY)
        shared = Limiter.open_shared(segment, capacity=CAPACITY, policies=BIG, routes=[])
        rounds = 3 if QUICK else 7
        n = 30 if QUICK else 100
        times: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for _ in range(rounds):
            for what, keys in (("10,000 keys", KEYS), ("one hot key", ["hot"] * len(KEYS))):
                r = interleaved({"in-process": batch_of(owned, keys), "shared": batch_of(shared, keys)}, n)
                for side, v in r.items():
                    times.setdefault(f"{what}|{side}", []).extend(v)
                # Each shared batch against the in-process batch run just before it.
                ratios.setdefault(what, []).extend(
                    s / o for s, o in zip(r["shared"], r["in-process"], strict=True)
                )
        print(f"Limiter.check(key, route): shared segment ({segment.parent}) vs in-process table;")
        print(f"capacity {CAPACITY} cells, {rounds} rounds of {n} interleaved batches of {len(KEYS)} calls")
        for what in ("10,000 keys", "one hot key"):
            own = statistics.median(times[f"{what}|in-process"])
            sh = statistics.median(times[f"{what}|shared"])
            q = statistics.quantiles(ratios[what], n=4)
            print(
                f"  {what:12s} median ns per call: in-process {own:6.1f}, shared {sh:6.1f};  "
                f"ratio shared / in-process {sh / own:.2f}x, median of paired batches "
                f"{statistics.median(ratios[what]):.2f}x (quartiles {q[0]:.2f}-{q[2]:.2f}; goal <= 1.5x)"
            )


if __name__ == "__main__":
    main()
