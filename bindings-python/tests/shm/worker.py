"""A Python process on a shared table: the same arguments and protocol as `worker.c`.

Usage: python worker.py SEGMENT CONFIG_JSON CLOCK ATTEMPTS LOG STOP (see worker.c).
"""

from __future__ import annotations

import json
import os
import sys

from aisoule_ratelimit import Limiter


def main() -> int:
    segment, config, clock, attempts_s, log, stop = sys.argv[1:]
    cfg = json.loads(config)
    limiter = Limiter.open_shared(
        segment, policies=cfg["policies"], routes=cfg["routes"], default_policy=cfg["default_policy"]
    )
    now_ns = int(clock.removeprefix("frozen:")) if clock.startswith("frozen:") else None
    attempts = int(attempts_s)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log != "-" else -1
    print("READY", flush=True)
    if not sys.stdin.readline():
        return 2
    check = limiter.check
    admitted = 0
    i = 0
    while attempts == 0 or i < attempts:
        if check("one-key", "/", now_ns=now_ns).allowed:
            admitted += 1
            if log_fd >= 0:
                os.write(log_fd, b"x")
        if attempts == 0 and i & 1023 == 0 and stop != "-" and os.path.exists(stop):
            break
        i += 1
    print(f"ADMITTED {admitted}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
