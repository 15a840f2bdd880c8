"""Runs the reference gateway as the README says (`python -m aisoule_ratelimit gateway
--host 127.0.0.1 --port PORT`) in a child process, and talks HTTP to it."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.conftest import PACKAGE_DIR

LOG_LINE = re.compile(
    r"^\S+Z worker=(?P<worker>\d+) key=(?P<key>[0-9a-f]{12}|-) class=(?P<klass>\S+) "
    r"decision=(?P<decision>\S+) status=(?P<status>\d{3}) (?P<method>\S+) (?P<path>\S+) [0-9.]+ms$"
)
RATE_HEADERS = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def names(self) -> list[str]:
        return [n for n, _ in self.headers]

    def rate_headers(self) -> list[str]:
        """The rate-limit header names present, in order, in their case."""
        return [n for n in self.names() if n.lower().startswith("x-ratelimit") or n.lower() == "retry-after"]


def ask(
    conn: http.client.HTTPConnection, method: str, path: str, key: str | None = None, auth: str | None = None
) -> Answer:
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    elif auth is not None:
        headers["Authorization"] = auth
    body = b"{}" if method == "POST" else None
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return Answer(r.status, r.getheaders(), r.read())


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def once(self, method: str, path: str, key: str | None = None, auth: str | None = None) -> Answer:
        """One request on a new connection (so the kernel hands it to any worker)."""
        conn = self.connect()
        try:
            return ask(conn, method, path, key, auth)
        finally:
            conn.close()

    def wait_lines(self, pred: Callable[[str], bool], count: int, timeout_s: float = 20.0) -> list[str]:
        """Waits until `count` stdout lines satisfy `pred` (a worker logs after answering)."""
        end = time.monotonic() + timeout_s
        with self.cond:
            while True:
                found = [line for line in self.out if pred(line)]
                if len(found) >= count:
                    return found
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"{len(found)} of {count} log lines after {timeout_s} s: {self.out[-5:]}"
                    )
                self.cond.wait(left)

    def log(self, key_fp: str) -> list[re.Match[str]]:
        with self.cond:
            lines = list(self.out)
        return [m for m in map(LOG_LINE.match, lines) if m and m["key"] == key_fp]

    def fingerprint(self, key: str) -> str:
        """The key's fingerprint in the log, learnt from a 404 under /v1/media/ (it counts
        against the key's media class, which the callers leave alone)."""
        marker = f"/v1/media/fingerprint-{time.monotonic_ns()}"
        assert self.once("GET", marker, key).status == 404
        (line,) = self.wait_lines(lambda line: line.endswith("ms") and f" {marker} " in line, 1)
        m = LOG_LINE.match(line)
        assert m is not None, line
        return m["key"]

    def worker_of(self, conn: http.client.HTTPConnection) -> str:
        """The worker (pid) serving a kept-alive connection, from the log line of a probe:
        a 404 under /v1/media/ with a throwaway key, so no key under test is counted."""
        marker = f"/v1/media/probe-{uuid.uuid4()}"
        assert ask(conn, "GET", marker, f"probe-{uuid.uuid4()}").status == 404
        (line,) = self.wait_lines(lambda line: line.endswith("ms") and f" {marker} " in line, 1)
        m = LOG_LINE.match(line)
        assert m is not None, line
        return m["worker"]

    def connections_on_workers(self, count: int, workers: int = 2) -> list[http.client.HTTPConnection]:
        """`count` kept-alive connections served by at least `workers` different worker
        processes, so requests sent over them are answered by several workers for sure.

        The kernel hands each new connection to whichever worker accepts first, and one
        worker may win many in a row; connections are opened in concurrent bursts (a
        worker busy with one leaves the next to another) until the set spans enough
        workers, up to 64 bursts."""
        opened: list[tuple[http.client.HTTPConnection, str]] = []
        lock = threading.Lock()

        def open_one() -> None:
            conn = self.connect()
            worker = self.worker_of(conn)
            with lock:
                opened.append((conn, worker))

        for _ in range(64):
            threads = [threading.Thread(target=open_one) for _ in range(max(count, 8))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len({w for _, w in opened}) >= workers and len(opened) >= count:
                break
        by_worker: dict[str, list[http.client.HTTPConnection]] = {}
        for conn, worker in opened:
            by_worker.setdefault(worker, []).append(conn)
        assert len(by_worker) >= workers, f"every connection went to one worker: {list(by_worker)}"
        # One connection of each worker first, then the rest in turn; the others close.
        ordered = [conns[0] for conns in by_worker.values()]
        ordered += [c for conns in by_worker.values() for c in conns[1:]]
        for extra in ordered[count:]:
            extra.close()
        return ordered[:count]

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.out + self.err)


def _pump(stream: object, sink: list[str], cond: threading.Condition) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        with cond:
            sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
            cond.notify_all()


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline_s: float = 60.0) -> None:
    """Polls the socket until the gateway accepts connections (or exits, or the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the gateway did not listen on {port} in {deadline_s} s")


def gateway_command(port: int, *extra: str) -> list[str]:
    """The README's command line, on `port`."""
    return [
        sys.executable,
        "-m",
        "aisoule_ratelimit",
        "gateway",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


@contextmanager
def run_gateway(
    extra: Sequence[str] = (), *, command: list[str] | None = None, port: int | None = None
) -> Iterator[Running]:
    """Starts the gateway, waits until it listens, yields it; Ctrl-C (SIGINT) at the end."""
    port = port if port is not None else free_port()
    proc = subprocess.Popen(
        command or gateway_command(port, *extra),
        cwd=PACKAGE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = Running(proc, port)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, running.out, running.cond), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, running.err, running.cond), daemon=True),
    ]
    for t in pumps:
        t.start()
    try:
        wait_for_port(proc, port)
        yield running
    finally:
        stop(running)
        for t in pumps:
            t.join(timeout=10)


def stop(running: Running) -> int:
    """Ctrl-C as a terminal sends it: SIGINT to the gateway's process group."""
    proc = running.proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def window_start(period_s: int = 60, margin_s: float = 10.0) -> int:
    """The index of the current rolling window (windows of `period_s` aligned to 0 on the
    monotonic clock the gateway reads), after waiting for the next window if fewer than
    `margin_s` seconds are left in this one: a burst that starts now and lasts less than
    `margin_s` falls within one window, so its count is exact."""
    period = period_s * 1_000_000_000
    left = period - time.monotonic_ns() % period
    if left < margin_s * 1e9:
        time.sleep(left / 1e9 + 0.01)
    return time.monotonic_ns() // period


def window_now(period_s: int = 60) -> int:
    return time.monotonic_ns() // (period_s * 1_000_000_000)
