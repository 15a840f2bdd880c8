"""Several processes, of Python and of C, on one table in a shared-memory segment.

The workers (`tests/shm/worker.py` and `tests/shm/worker.c`, same arguments and protocol)
open the segment, print READY, wait for a line on stdin, then hammer one key: all of them
are released at once, so their checks overlap on the same cell.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aisoule_ratelimit import Limiter
from tests.conftest import PACKAGE_DIR, REPO_ROOT

NOW = 1_780_423_178_274_000_000
SHM_DIR = PACKAGE_DIR / "tests" / "shm"
PY_WORKER = [sys.executable, str(SHM_DIR / "worker.py")]


def config(policy: list[dict[str, object]]) -> dict[str, object]:
    """One policy for every path (the workers check route "/")."""
    return {"policies": {"only": policy}, "routes": [], "default_policy": "only"}


def open_segment(path: Path, cfg: dict[str, object], capacity: int = 4096) -> Limiter:
    return Limiter.open_shared(
        path,
        capacity=capacity,
        policies=cfg["policies"],  # type: ignore[arg-type]
        routes=cfg["routes"],  # type: ignore[arg-type]
        default_policy=cfg["default_policy"],  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def c_worker(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The C worker (`asrl_limiter_open_shared`), compiled against the C binding's static
    library (built here by cargo, once). Skips, saying why, only when there is no C
    compiler."""
    cc = next(
        (
            found
            for name in (os.environ.get("CC", ""), "cc", "gcc", "clang")
            if name and (found := shutil.which(name))
        ),
        None,
    )
    if cc is None:
        pytest.skip("no C compiler ($CC, cc, gcc or clang) on PATH: the C processes cannot be built")
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "aisoule-ratelimit-c"],
        cwd=REPO_ROOT,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    exe = tmp_path_factory.mktemp("c-worker") / "worker"
    include = REPO_ROOT / "bindings-c" / "include"
    subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            f"-I{include}",
            str(SHM_DIR / "worker.c"),
            str(target / "release" / "libaisoule_ratelimit.a"),
            "-lpthread",
            "-ldl",
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    return [str(exe)]


class Worker:
    """One worker process, started and waited on until it says READY."""

    def __init__(
        self,
        cmd: list[str],
        segment: Path,
        cfg: dict[str, object],
        clock: str,
        attempts: int,
        log: Path | None = None,
        stop: Path | None = None,
    ) -> None:
        args = [str(segment), json.dumps(cfg), clock, str(attempts), str(log or "-"), str(stop or "-")]
        self.proc = subprocess.Popen(
            [*cmd, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PACKAGE_DIR,
        )
        self.log = log
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != "READY\n":
            _, err = self.proc.communicate()
            raise AssertionError(f"worker {cmd[-1]} did not start ({line!r}): {err}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def admitted(self) -> int:
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        assert out.startswith("ADMITTED "), out
        return int(out.split()[1])

    def logged(self) -> int:
        assert self.log is not None
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def run_all(workers: list[Worker]) -> list[int]:
    """Releases every worker at once; their admissions."""
    for w in workers:
        w.go()
    return [w.admitted() for w in workers]


# --- a frozen clock: exactly the limit ---------------------------------------------------

WINDOW = config([{"algorithm": "window", "limit": 50_000, "period_ms": 86_400_000}])


def test_four_python_processes_admit_exactly_the_limit(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    parent = open_segment(seg, WINDOW)
    # 4 x 20,000 attempts against a limit of 50,000.
    workers = [Worker(PY_WORKER, seg, WINDOW, f"frozen:{NOW}", 20_000) for _ in range(4)]
    admitted = run_all(workers)
    assert sum(admitted) == 50_000, admitted
    d = parent.peek("one-key", "/", now_ns=NOW)
    assert (d.allowed, d.remaining) == (False, 0)


def test_python_and_c_processes_admit_exactly_the_limit(tmp_path: Path, c_worker: list[str]) -> None:
    seg = tmp_path / "table"
    parent = open_segment(seg, WINDOW)
    # Two Python processes of 20,000 attempts and two C ones of 40,000 (C is faster),
    # against 50,000: whatever the order, only one shared count gives exactly 50,000.
    workers = [
        Worker(cmd, seg, WINDOW, f"frozen:{NOW}", n)
        for cmd, n in ((PY_WORKER, 20_000), (c_worker, 40_000), (PY_WORKER, 20_000), (c_worker, 40_000))
    ]
    admitted = run_all(workers)
    assert sum(admitted) == 50_000, admitted
    d = parent.peek("one-key", "/", now_ns=NOW)
    assert (d.allowed, d.remaining) == (False, 0)


def test_a_key_counted_by_c_is_seen_by_python(tmp_path: Path, c_worker: list[str]) -> None:
    seg = tmp_path / "table"
    parent = open_segment(seg, WINDOW)
    assert run_all([Worker(c_worker, seg, WINDOW, f"frozen:{NOW}", 7)]) == [7]
    assert parent.check("one-key", "/", now_ns=NOW).remaining == 50_000 - 8


def test_c_refuses_a_python_segment_of_another_config(tmp_path: Path, c_worker: list[str]) -> None:
    seg = tmp_path / "table"
    open_segment(seg, WINDOW).check("one-key", "/", now_ns=NOW)
    before = seg.read_bytes()
    other = config([{"algorithm": "window", "limit": 50_001, "period_ms": 86_400_000}])
    with pytest.raises(AssertionError, match="segment was made for other policies or routes"):
        Worker(c_worker, seg, other, f"frozen:{NOW}", 1)
    assert seg.read_bytes() == before


# --- the real clock: never more than the contract allows ---------------------------------

# GCRA: a burst of 2,000, then one request each T = 10 ms.
GCRA = config([{"algorithm": "gcra", "limit": 2_000, "period_ms": 20_000}])
T_NS = 4_000_000


def real_clock_run(seg: Path, cmds: list[list[str]]) -> None:
    open_segment(seg, GCRA)
    workers = [Worker(cmd, seg, GCRA, "real", 30_000) for cmd in cmds]
    start = time.monotonic_ns()
    admitted = run_all(workers)
    elapsed = time.monotonic_ns() - start
    # From a fresh key, GCRA admits at most B at once and one more each T after: over the
    # run (every check happened between `start` and now) at most B + elapsed / T + 1.
    bound = 2_000 + elapsed // T_NS + 1
    assert 2_000 <= sum(admitted) <= bound, (admitted, elapsed)


def test_four_python_processes_real_clock(tmp_path: Path) -> None:
    real_clock_run(tmp_path / "table", [PY_WORKER] * 4)


def test_python_and_c_processes_real_clock(tmp_path: Path, c_worker: list[str]) -> None:
    real_clock_run(tmp_path / "table", [PY_WORKER, c_worker, PY_WORKER, c_worker])


# --- kill -9 during a run ----------------------------------------------------------------

BIG = config([{"algorithm": "window", "limit": 4_000_000, "period_ms": 86_400_000}])


@pytest.fixture
def worker_cmds(request: pytest.FixtureRequest) -> Iterator[list[list[str]]]:
    """Python workers, and C ones among them when a C compiler is there."""
    try:
        c = request.getfixturevalue("c_worker")
    except pytest.skip.Exception:
        yield [PY_WORKER]
        return
    yield [PY_WORKER, c]


def test_kill_9_during_a_run_keeps_the_counts(tmp_path: Path, worker_cmds: list[list[str]]) -> None:
    seg = tmp_path / "table"
    parent = open_segment(seg, BIG)
    stop = tmp_path / "stop"
    logs = iter(tmp_path / f"w{i}.log" for i in range(1000))
    survivors = [Worker(PY_WORKER, seg, BIG, f"frozen:{NOW}", 0, next(logs), stop) for _ in range(2)]
    everyone = list(survivors)
    for w in survivors:
        w.go()
    victims: list[Worker] = []
    kills = 0
    for round_ in range(16):
        w = Worker(worker_cmds[round_ % len(worker_cmds)], seg, BIG, f"frozen:{NOW}", 0, next(logs))
        w.go()
        victims.append(w)
        everyone.append(w)
        if len(victims) < 2:
            continue
        # Kill the older victim mid-run, once it has admitted a few thousand.
        victim = victims.pop(0)
        target = 1_000 * (round_ % 5 + 1)
        while victim.logged() < target:
            assert victim.proc.poll() is None, "a victim died by itself"
            os.sched_yield()
        victim.kill()
        kills += 1
        assert all(s.proc.poll() is None for s in survivors), "a survivor died"
    for victim in victims:
        victim.kill()
        kills += 1
    # The survivors logged through all of it, and finish cleanly.
    assert all(s.logged() > 0 for s in survivors)
    stop.touch()
    for s in survivors:
        assert s.admitted() == s.logged()
    logged = sum(w.logged() for w in everyone)
    counted = 4_000_000 - parent.peek("one-key", "/", now_ns=NOW).remaining
    # A killed process may have counted an admission it did not live to log: one at most.
    print(f"logged {logged}, counted {counted}, kills {kills}")
    assert logged <= counted <= logged + kills, (logged, counted, kills)
    # The table still works for everyone.
    assert parent.check("another-key", "/", now_ns=NOW).remaining == 4_000_000 - 1


def test_processes_creating_one_segment_at_once_share_it(tmp_path: Path) -> None:
    seg = tmp_path / "table"
    code = (
        "import sys\n"
        "from aisoule_ratelimit import Limiter\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        "limiter = Limiter.open_shared(sys.argv[1], capacity=512)\n"
        f"print(limiter.check('k', '/v1/status', now_ns={NOW}).remaining)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(seg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "READY\n"
    for p in procs:  # all released at once: they race to create the segment
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6
    # One segment won; every process counted in it.
    assert sorted(int(o) for o in outs) == list(range(114, 120))
    assert [p.name for p in tmp_path.iterdir()] == ["table"]  # no temporary file left
