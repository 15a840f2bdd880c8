"""The reference gateway, started as the README says, driven over HTTP on 127.0.0.1.

One gateway (4 workers, the documented limits, the default segment) serves the module;
every test uses fresh API keys.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.gateway import DOCUMENTED_CONFIG, SEGMENT_MAGIC
from tests.conftest import BODY_TEMPLATE, PACKAGE_DIR, REPO_ROOT
from tests.gateway_process import (
    LOG_LINE,
    RATE_HEADERS,
    Answer,
    Running,
    ask,
    free_port,
    run_gateway,
    stop,
    window_now,
    window_start,
)


@pytest.fixture(scope="module")
def gw() -> Iterator[Running]:
    with run_gateway() as running:
        yield running


def fresh_key() -> str:
    return f"test-key-{uuid.uuid4()}"


def check_rate_headers(a: Answer, limit: int) -> int:
    """The three headers, in the contract's order and case; returns Remaining."""
    names = a.rate_headers()
    assert names[:3] == RATE_HEADERS, a.headers
    assert a.header("X-RateLimit-Limit") == str(limit)
    remaining = int(a.header("X-RateLimit-Remaining") or "")
    reset = int(a.header("X-RateLimit-Reset") or "")
    assert 0 <= remaining < limit
    assert time.time() - 1 <= reset <= time.time() + 121  # a window rule: up to two windows
    return remaining


def check_429(a: Answer, limit: int) -> int:
    """The contract's 429: the headers, Retry-After last, JSON, the body byte for byte."""
    assert a.status == 429
    assert a.rate_headers() == [*RATE_HEADERS, "Retry-After"]
    assert a.header("X-RateLimit-Limit") == str(limit)
    assert a.header("X-RateLimit-Remaining") == "0"
    assert a.header("Content-Type") == "application/json"
    retry = int(a.header("Retry-After") or "")
    assert a.body == (BODY_TEMPLATE % retry).encode()
    assert a.header("Content-Length") == str(len(a.body))
    return retry


def test_startup_output_names_the_limits(gw: Running) -> None:
    banner = gw.wait_lines(lambda line: not LOG_LINE.match(line), 12)
    text = "\n".join(banner)
    assert f"listening on http://127.0.0.1:{gw.port} (4 worker processes)" in text
    assert re.search(r"^  standard\s+120 per 60 s \(rolling window\)\s+\(default class\)$", text, re.M)
    assert re.search(
        r"^  messaging\s+300 per 60 s \(rolling window\) and 5 per 1 s, burst 5 \(GCRA\)$", text, re.M
    )
    assert re.search(r"^  media\s+30 per 60 s \(rolling window\)$", text, re.M)
    assert "/v1/messages -> messaging, /v1/media -> media, anything else -> standard" in text
    for route in ("GET  /v1/status    standard", "POST /v1/messages  messaging", "POST /v1/media     media"):
        assert route in text
    segment = f"/dev/shm/aisoule-gateway-{gw.port}"
    assert f"table: 65,536 cells (1 MiB) shared by the workers at {segment}" in text


def test_segment_is_fresh_private_and_shared(gw: Running) -> None:
    segment = Path(f"/dev/shm/aisoule-gateway-{gw.port}")
    st = segment.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == 128 + 65_536 * 16
    assert segment.read_bytes()[:8] == SEGMENT_MAGIC


def test_documented_headers_on_every_response(gw: Running) -> None:
    key = fresh_key()
    conn = gw.connect()
    for method, path, limit, body in [
        ("GET", "/v1/status", 120, {"success": True, "data": {"status": "ok", "class": "standard"}}),
        ("POST", "/v1/messages", 5, {"success": True, "data": {"accepted": True, "class": "messaging"}}),
        ("POST", "/v1/media", 30, {"success": True, "data": {"accepted": True, "class": "media"}}),
    ]:
        a = ask(conn, method, path, key)
        assert a.status == 200, a
        assert check_rate_headers(a, limit) == limit - 1
        assert "Retry-After" not in a.rate_headers()
        assert a.header("Content-Type") == "application/json"
        assert json.loads(a.body) == body
    # Unknown paths and methods: JSON errors, counted against their path's class.
    a = ask(conn, "GET", "/v1/nowhere", key)
    assert a.status == 404 and json.loads(a.body)["error"]["code"] == "not_found"
    assert check_rate_headers(a, 120) == 118
    a = ask(conn, "GET", "/v1/messages", key)
    assert a.status == 405 and a.header("Allow") == "POST"
    assert json.loads(a.body)["error"]["code"] == "method_not_allowed"
    assert check_rate_headers(a, 5) == 3
    a = ask(conn, "GET", "/v1/status", key)
    assert a.status == 200 and check_rate_headers(a, 120) == 117
    conn.close()


def test_sixth_message_in_a_second_is_refused(gw: Running) -> None:
    key = fresh_key()
    conn = gw.connect()
    ask(conn, "GET", "/v1/status", fresh_key())  # the connection is up before the clock starts
    t0 = time.monotonic()
    answers = [ask(conn, "POST", "/v1/messages", key) for _ in range(6)]
    if time.monotonic() - t0 >= 0.2:
        pytest.skip("six requests took 200 ms or more: the 5-per-second bucket refilled one")
    assert [a.status for a in answers] == [200] * 5 + [429]
    assert [check_rate_headers(a, 5) for a in answers[:5]] == [4, 3, 2, 1, 0]
    assert check_429(answers[5], 5) == 1
    assert answers[5].header("X-RateLimit-Reset") is not None
    conn.close()


def test_121st_status_call_is_refused_across_workers(gw: Running) -> None:
    key = fresh_key()
    fp = gw.fingerprint(key)
    window = window_start()
    # Kept-alive connections on two different workers, taking turns.
    conns = gw.connections_on_workers(2)
    answers = [ask(conns[i % 2], "GET", "/v1/status", key) for i in range(121)]
    for conn in conns:
        conn.close()
    assert window_now() == window, "the burst crossed a window edge: its count is not exact"
    assert [a.status for a in answers] == [200] * 120 + [429]
    assert [check_rate_headers(a, 120) for a in answers[:120]] == list(range(119, -1, -1))
    retry = check_429(answers[120], 120)
    assert 1 <= retry <= 60
    lines = gw.wait_lines(lambda line: f"key={fp} class=standard" in line, 121)
    matches = [LOG_LINE.match(line) for line in lines]
    workers = {m["worker"] for m in matches if m}
    assert len(workers) >= 2, f"one worker answered all 121 requests: {workers}"
    decisions = [(m["decision"], m["status"]) for m in matches if m]
    assert decisions.count(("allowed", "200")) == 120 and decisions.count(("denied", "429")) == 1


def test_one_key_exact_under_concurrent_load(gw: Running) -> None:
    """300 requests of one key on 12 connections at once: exactly 120 admitted, each
    Remaining value from 119 to 0 given once, across the workers (the shared table)."""
    key = fresh_key()
    fp = gw.fingerprint(key)
    answers: list[Answer] = []
    lock = threading.Lock()
    go = threading.Barrier(12)
    # Connected first, on at least two different workers.
    conns = gw.connections_on_workers(12)

    def client(conn: http.client.HTTPConnection) -> None:
        go.wait()
        mine = [ask(conn, "GET", "/v1/status", key) for _ in range(25)]
        conn.close()
        with lock:
            answers.extend(mine)

    window = window_start()
    threads = [threading.Thread(target=client, args=(conn,)) for conn in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert window_now() == window, "the burst crossed a window edge: its count is not exact"
    assert len(answers) == 300
    admitted = [a for a in answers if a.status == 200]
    assert len(admitted) == 120
    assert sorted(check_rate_headers(a, 120) for a in admitted) == list(range(120))
    for a in answers:
        if a.status != 200:
            check_429(a, 120)
    lines = gw.wait_lines(lambda line: f"key={fp} class=standard" in line, 300)
    workers = {m["worker"] for m in map(LOG_LINE.match, lines) if m}
    assert len(workers) >= 2, f"one worker answered all 300 requests: {workers}"


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
        ("Bearer    ", "invalid_authorization"),
        ("Token abc", "invalid_authorization"),
        ("abc", "invalid_authorization"),
    ],
)
def test_401_without_a_well_formed_key(gw: Running, auth: str | None, code: str) -> None:
    for method, path in (("GET", "/v1/status"), ("POST", "/v1/messages"), ("GET", "/v1/nowhere")):
        a = gw.once(method, path, auth=auth)
        assert a.status == 401
        assert a.header("Content-Type") == "application/json"
        assert a.header("WWW-Authenticate") == "Bearer"
        assert json.loads(a.body)["error"]["code"] == code
        assert a.rate_headers() == []


def test_401_is_not_counted(gw: Running) -> None:
    key = fresh_key()
    for auth in (f"Basic {key}", f"Token {key}", key, f"Bearer{key}"):
        assert gw.once("GET", "/v1/status", auth=auth).status == 401
    a = gw.once("GET", "/v1/status", key)
    assert a.status == 200 and check_rate_headers(a, 120) == 119


def test_scheme_is_case_insensitive(gw: Running) -> None:
    key = fresh_key()
    assert check_rate_headers(gw.once("GET", "/v1/status", auth=f"bearer {key}"), 120) == 119
    assert check_rate_headers(gw.once("GET", "/v1/status", auth=f"BEARER {key}"), 120) == 118


def test_log_lines_carry_no_key(gw: Running) -> None:
    key = fresh_key()
    other = fresh_key()
    fp = gw.fingerprint(key)
    assert fp != gw.fingerprint(other)
    for _ in range(6):
        gw.once("POST", "/v1/messages", key)
    gw.once("GET", "/v1/status", auth=f"Basic {key}")
    lines = gw.wait_lines(lambda line: f"key={fp} class=messaging" in line, 6)
    outcomes = [(m["decision"], m["status"], m["method"], m["path"]) for m in map(LOG_LINE.match, lines) if m]
    # Each worker logs after it answers: lines of different workers may swap places.
    allowed = ("allowed", "200", "POST", "/v1/messages")
    denied = ("denied", "429", "POST", "/v1/messages")
    assert len(outcomes) == 6 and set(outcomes) <= {allowed, denied}
    assert outcomes.count(allowed) >= 5  # the sixth is denied unless 200 ms went by
    gw.wait_lines(lambda line: "key=- class=standard decision=unauthenticated status=401" in line, 1)
    text = gw.text()
    for k in (key, other):
        assert k not in text
        assert k.encode().hex() not in text


def test_documented_config_is_the_core_default(tmp_path: Path) -> None:
    """The config the gateway writes out is the core's default: a limiter built from it
    attaches to a segment made for the default config (the segment checks a fingerprint
    of policies, rules and routes), and a changed one does not."""
    segment = tmp_path / "table"
    Limiter(shared=segment)
    Limiter.from_json(json.dumps(DOCUMENTED_CONFIG), shared=segment)
    changed = json.loads(json.dumps(DOCUMENTED_CONFIG))
    changed["policies"]["media"][0]["limit"] = 31
    with pytest.raises(ValueError, match=r"^shared: .*segment was made for other policies"):
        Limiter.from_json(json.dumps(changed), shared=segment)


def test_config_file_and_two_workers(tmp_path: Path) -> None:
    config = tmp_path / "limits.json"
    config.write_text(
        json.dumps(
            {
                "policies": {
                    "free": [{"algorithm": "gcra", "limit": 2, "period_ms": 3_600_000}],
                    "upload": [{"algorithm": "window", "limit": 10, "period_ms": 60_000}],
                },
                "routes": [{"prefix": "/v1/media", "policy": "upload"}],
                "default_policy": "free",
                "capacity": 4096,
            }
        )
    )
    segment = tmp_path / "segment"
    with run_gateway(["--workers", "2", "--config", str(config), "--shared", str(segment)]) as gw:
        banner = "\n".join(gw.wait_lines(lambda line: not LOG_LINE.match(line), 10))
        assert "(2 worker processes)" in banner
        assert f"limits (from {config})" in banner
        assert re.search(r"^  free\s+2 per 1 h, burst 2 \(GCRA\)\s+\(default class\)$", banner, re.M)
        assert "GET  /v1/status    free" in banner and "POST /v1/media     upload" in banner
        assert f"table: 4,096 cells (64 KiB) shared by the workers at {segment}" in banner
        assert segment.stat().st_size == 128 + 4096 * 16
        key = fresh_key()
        answers = [gw.once("GET", "/v1/status", key) for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert check_429(answers[2], 2) >= 1790
        a = gw.once("POST", "/v1/media", key)
        assert a.status == 200 and json.loads(a.body)["data"]["class"] == "upload"
        assert check_rate_headers(a, 10) == 9
    assert not segment.exists()


def test_invalid_config_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"policies": {"free": [{"algorithm": "window", "limit": 0, "period_ms": 1000}]}}')
    segment = tmp_path / "segment"
    port = free_port()
    command = [sys.executable, "-m", "aisoule_ratelimit", "gateway", "--port", str(port)]
    r = subprocess.run(
        [*command, "--config", str(config), "--shared", str(segment)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("gateway: config: policies.free[0].limit: ")
    assert not segment.exists()
    r = subprocess.run([*command, "--config", str(tmp_path / "none.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "none.json" in r.stderr


def test_refuses_a_segment_in_use_and_a_file_not_a_segment(gw: Running, tmp_path: Path) -> None:
    in_use = f"/dev/shm/aisoule-gateway-{gw.port}"
    command = [sys.executable, "-m", "aisoule_ratelimit", "gateway", "--port", str(free_port())]
    r = subprocess.run([*command, "--shared", in_use], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "in use by a running gateway" in r.stderr
    assert Path(in_use).exists()
    other = tmp_path / "precious"
    other.write_bytes(b"not a segment")
    r = subprocess.run([*command, "--shared", str(other)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a rate-limit table segment" in r.stderr
    assert other.read_bytes() == b"not a segment"


def test_stale_segment_is_replaced(tmp_path: Path) -> None:
    segment = tmp_path / "segment"
    stale = Limiter(shared=segment, capacity=64)
    for _ in range(5):
        stale.check("stale-key", "/v1/messages")
    with run_gateway(["--workers", "1", "--shared", str(segment)]) as gw:
        a = gw.once("POST", "/v1/messages", "stale-key")
        assert a.status == 200 and check_rate_headers(a, 5) == 4
        assert segment.stat().st_size == 128 + 65_536 * 16
    assert not segment.exists()


def test_no_limit_serves_the_same_routes(tmp_path: Path) -> None:
    with run_gateway(["--workers", "1", "--no-limit"]) as gw:
        banner = "\n".join(gw.wait_lines(lambda line: not LOG_LINE.match(line), 3))
        assert "limits: OFF (--no-limit)" in banner
        key = fresh_key()
        for _ in range(7):
            a = gw.once("POST", "/v1/messages", key)
            assert a.status == 200 and a.rate_headers() == []
        assert gw.once("GET", "/v1/status").status == 401
        assert gw.once("GET", "/v1/nowhere", key).status == 404
        assert not Path(f"/dev/shm/aisoule-gateway-{gw.port}").exists()


def test_sigterm_removes_the_segment(tmp_path: Path) -> None:
    segment = tmp_path / "segment"
    for workers in ("1", "2"):
        with run_gateway(["--workers", workers, "--shared", str(segment)]) as gw:
            assert gw.once("GET", "/v1/status", fresh_key()).status == 200
            assert segment.exists()
            gw.proc.terminate()
            assert gw.proc.wait(timeout=30) in (0, 128 + 15)
        assert not segment.exists()


def test_make_run_is_the_gateway_and_ctrl_c_cleans_up() -> None:
    """The README's first command, `make run` (on another port), then Ctrl-C."""
    port = free_port()
    env_make = ["make", "-s", "--no-print-directory", "-C", str(REPO_ROOT), "run", f"PORT={port}"]
    with run_gateway(command=env_make, port=port) as gw:
        a = gw.once("GET", "/v1/status", fresh_key())
        assert a.status == 200 and check_rate_headers(a, 120) == 119
        segment = Path(f"/dev/shm/aisoule-gateway-{port}")
        assert segment.exists()
        stop(gw)
    # make has exited; the gateway it ran removes the segment as it stops.
    end = time.monotonic() + 15
    while segment.exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert not segment.exists()
    assert f"listening on http://127.0.0.1:{port}" in gw.text()


README = (REPO_ROOT / "README.md").read_text()
AXIOS = "axios@1.21.1"


def readme_block(lang: str, needle: str) -> str:
    for m in re.finditer(r"^```" + lang + r"\n(.*?)^```", README, re.S | re.M):
        if needle in m.group(1):
            return m.group(1)
    raise AssertionError(f"no {lang} block with {needle!r} in README.md")


def test_readme_docs_examples_work_with_the_host_changed(gw: Running) -> None:
    """The docs' curl, Python requests and Node axios examples, as the root README shows
    them against localhost:8080, run against the test gateway with only the host changed
    (axios is installed from npm into .venv/node-axios the first time)."""
    host = f"127.0.0.1:{gw.port}"
    curl = readme_block("sh", "curl -i").strip().splitlines()[0]
    assert "Bearer YOUR_API_KEY" in curl and "localhost:8080/v1/status" in curl
    r = subprocess.run(curl.replace("localhost:8080", host), shell=True, capture_output=True, text=True)
    assert r.returncode == 0
    head = r.stdout.split("\n\n")[0]  # text mode: CRLF read as LF
    assert "\nX-RateLimit-Limit: 120\n" in head and "\nX-RateLimit-Remaining: 119\n" in head
    code = readme_block("python", "import requests")
    r = subprocess.run(
        [sys.executable, "-c", code.replace("localhost:8080", host)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["120", "118"]
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("no node and npm here for the axios example")
    modules = PACKAGE_DIR / ".venv" / "node-axios"
    if not (modules / "node_modules" / "axios" / "package.json").is_file():
        subprocess.run(
            [npm, "install", "--prefix", str(modules), "--no-audit", "--no-fund", "--silent", AXIOS],
            check=True,
            timeout=300,
        )
    code = readme_block("javascript", 'require("axios")')
    r = subprocess.run(
        [node, "-e", code.replace("localhost:8080", host)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(modules / "node_modules")},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["120", "117"]


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    segment = tmp_path / "segment"
    with run_gateway(["--workers", "2", "--shared", str(segment)]) as gw:
        assert gw.once("GET", "/v1/status", fresh_key()).status == 200
        pid = gw.proc.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert len(children) >= 2
        gw.proc.kill()
        gw.proc.wait(timeout=10)
        end = time.monotonic() + 30
        while any(map(_alive, children)) and time.monotonic() < end:
            time.sleep(0.05)
        orphans = [c for c in children if _alive(c)]
        for c in orphans:  # leave nothing running, whatever the verdict
            os.kill(c, signal.SIGKILL)
        assert not orphans, "workers outlived their killed parent"
