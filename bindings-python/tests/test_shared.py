"""A table in a shared-memory segment: limiters of several processes (gunicorn or
uvicorn workers) count together."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
    with pytest.raises(ValueError, match=r"^shared: .*/table: segment was made for other policies"):
        Limiter(shared=seg, routes=[])
    with pytest.raises(
        ValueError, match=r"^shared: .*/table: segment has capacity 64, this process asked for 128"
    ):
        Limiter(shared=seg, capacity=128)
    with pytest.raises(ValueError, match=r"^seed: a shared table keeps its own seed"):
        Limiter(shared=seg, seed=7)
    not_a_segment = tmp_path / "other"
    not_a_segment.write_bytes(b"x" * 4096)
    with pytest.raises(ValueError, match=r"^shared: .*not a rate-limit table segment"):
        Limiter(shared=not_a_segment)


def test_shared_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"shared: cannot create the segment"):
        Limiter(shared=tmp_path / "no" / "such" / "dir")
    with pytest.raises(TypeError, match=r"^shared must be a str or os.PathLike, not int"):
        Limiter(shared=5)  # type: ignore[arg-type]


# --- Limiter.open_shared -----------------------------------------------------------------


def test_open_shared_is_the_shared_table(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    a = Limiter.open_shared(seg, capacity=256, header_style="both", on_full="closed")
    b = Limiter(shared=seg)  # the same segment through `shared=`
    c = Limiter.open_shared(str(seg))  # capacity from the segment
    assert (a.capacity, b.capacity, c.capacity) == (256, 256, 256)
    assert (a.shared, a.header_style, a.on_full) == (seg, "both", "closed")
    assert a.check("k", "/v1/messages", now_ns=NOW).remaining == 4
    assert b.check("k", "/v1/messages", now_ns=NOW).remaining == 3
    d = c.peek("k", "/v1/messages", now_ns=NOW)
    assert d.remaining == 3 and d.headers == b.peek("k", "/v1/messages", now_ns=NOW).headers
    assert "RateLimit-Policy" in a.check("k", "/v1/media", now_ns=NOW).headers
    # Custom policies, routes and a named policy work as on an owned table.
    p = {"free": [{"algorithm": "window", "limit": 2, "period_ms": 1000}]}
    f = Limiter.open_shared(tmp_path / "free", policies=p, routes=[], default_policy="free")
    assert [f.check("k", policy="free", now_ns=NOW).allowed for _ in range(3)] == [True, True, False]
    assert f.policies == ["free"]


@pytest.fixture
def segment(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    """A segment with one key counted, and its bytes."""
    seg = tmp_path / "table"
    Limiter.open_shared(seg, capacity=64).check("k", "/v1/status", now_ns=NOW)
    yield seg, seg.read_bytes()


def test_mismatches_are_named_and_change_nothing(segment: tuple[Path, bytes]) -> None:
    seg, before = segment
    with pytest.raises(
        ValueError, match=r"^shared: .*table: segment has capacity 64, this process asked for 128$"
    ):
        Limiter.open_shared(seg, capacity=128)
    with pytest.raises(ValueError, match=r"^shared: .*table: segment was made for other policies or routes"):
        Limiter.open_shared(seg, routes=[])
    with pytest.raises(ValueError, match=r"^shared: .*table: segment was made for other policies or routes"):
        Limiter.open_shared(
            seg, policies={"standard": [{"algorithm": "window", "limit": 121, "period_ms": 60000}]}
        )
    # Bad arguments are refused before the file is touched.
    with pytest.raises(ValueError, match=r'^on_full: must be "open" or "closed"'):
        Limiter.open_shared(seg, on_full="ajar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^capacity: "):
        Limiter.open_shared(seg, capacity=0)
    with pytest.raises(TypeError, match=r"^path must be a str or os.PathLike, not int"):
        Limiter.open_shared(5)  # type: ignore[arg-type]
    assert seg.read_bytes() == before
    assert Limiter.open_shared(seg).peek("k", "/v1/status", now_ns=NOW).remaining == 119


def test_truncated_corrupt_and_foreign_files(segment: tuple[Path, bytes]) -> None:
    seg, whole = segment
    for cut in (len(whole) - 16, 100, 0):
        seg.write_bytes(whole[:cut])
        with pytest.raises(
            ValueError, match=r"^shared: .*table: segment file is \d+ bytes, its header implies"
        ):
            Limiter.open_shared(seg)
        assert seg.read_bytes() == whole[:cut]
    corrupt = bytearray(whole)
    corrupt[24] ^= 1  # the capacity, without its layout hash
    seg.write_bytes(corrupt)
    with pytest.raises(ValueError, match=r"^shared: .*table: segment header is corrupt"):
        Limiter.open_shared(seg)
    foreign = b"#!/bin/sh\n" + bytes(len(whole) - 10)
    seg.write_bytes(foreign)
    with pytest.raises(ValueError, match=r"^shared: .*table: not a rate-limit table segment"):
        Limiter.open_shared(seg)
    assert seg.read_bytes() == foreign


def test_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "table"
    with pytest.raises(FileNotFoundError) as e:
        Limiter.open_shared(path)
    assert (e.value.errno, e.value.filename) == (2, str(path))
    assert str(e.value).startswith("[Errno 2] shared: cannot create the segment: ")
    assert not path.parent.exists()


def unprivileged_open(path: Path) -> str:
    """`Limiter.open_shared(path)` in a child process without root's right to write any
    file (uid and gid `nobody` when the tests run as root): what it raised."""
    code = (
        "import json, os, sys  # imported while the interpreter's files are readable\n"
        "from aisoule_ratelimit import Limiter\n"
        "if os.geteuid() == 0:\n"
        "    os.setgroups([])\n"
        "    os.setgid(65534)\n"
        "    os.setuid(65534)\n"
        "try:\n"
        "    Limiter.open_shared(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e.errno, e.filename)\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return out.stdout


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is 0700, root's)."""
    d = Path(tempfile.mkdtemp(prefix="asrl-ro-"))
    d.chmod(0o755)
    yield d
    d.chmod(0o755)
    shutil.rmtree(d)


def test_read_only_file(open_dir: Path) -> None:
    seg = open_dir / "table"
    Limiter.open_shared(seg, capacity=64).check("k", "/v1/status", now_ns=NOW)
    before = seg.read_bytes()
    seg.chmod(0o444)
    first, message = unprivileged_open(seg).splitlines()
    assert first == f"PermissionError 13 {seg}"
    assert message.startswith("[Errno 13] shared: cannot open the segment: Permission denied")
    assert seg.read_bytes() == before


def test_read_only_directory(open_dir: Path) -> None:
    open_dir.chmod(0o555)
    seg = open_dir / "table"
    first, message = unprivileged_open(seg).splitlines()
    assert first == f"PermissionError 13 {seg}"
    assert message.startswith("[Errno 13] shared: cannot create the segment: Permission denied")
    assert list(open_dir.iterdir()) == []
