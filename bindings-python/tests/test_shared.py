"""A table in a shared-memory segment: limiters of several processes (gunicorn or
uvicorn workers) count together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aisoule_ratelimit import Limiter

NOW = 1_780_423_178_274_000_000


def test_two_limiters_on_one_segment_share_counts(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    a = Limiter(shared=seg, capacity=1024)
    b = Limiter(shared=str(seg))  # capacity taken from the segment
    assert a.shared == seg and b.shared == seg
    assert b.capacity == 1024
    assert a.check("k", "/v1/messages", now_ns=NOW).remaining == 4
    assert b.check("k", "/v1/messages", now_ns=NOW).remaining == 3
    assert a.peek("k", "/v1/messages", now_ns=NOW).remaining == 3
    assert Limiter().shared is None


def test_processes_share_one_table(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    Limiter(shared=seg)  # created here, default capacity
    code = (
        "import sys\n"
        "from aisoule_ratelimit import Limiter\n"
        f"lim = Limiter(shared={str(seg)!r})\n"
        f"print(sum(lim.check('k', '/v1/messages', now_ns={NOW}).allowed for _ in range(3)))\n"
    )
    procs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True) for _ in range(3)]
    assert [p.returncode for p in procs] == [0, 0, 0], [p.stderr for p in procs]
    # 9 requests from three processes against one burst of 5.
    assert [int(p.stdout) for p in procs] == [3, 2, 0]


def test_segment_must_fit_the_limiter(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    Limiter(shared=seg, capacity=64)
    with pytest.raises(ValueError, match=r"^shared: segment was made for other policies"):
        Limiter(shared=seg, routes=[])
    with pytest.raises(ValueError, match=r"^shared: segment has capacity 64, this process asked for 128"):
        Limiter(shared=seg, capacity=128)
    with pytest.raises(ValueError, match=r"^seed: a shared table keeps its own seed"):
        Limiter(shared=seg, seed=7)
    not_a_segment = tmp_path / "other"
    not_a_segment.write_bytes(b"x" * 4096)
    with pytest.raises(ValueError, match=r"^shared: .*not a rate-limit table segment"):
        Limiter(shared=not_a_segment)


def test_shared_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^shared: "):
        Limiter(shared=tmp_path / "no" / "such" / "dir")
    with pytest.raises(TypeError, match="shared must be a path"):
        Limiter(shared=5)  # type: ignore[arg-type]
