"""Every conformance trace answers as the contract says, in-process and through
`conformance/replay python`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aisoule_ratelimit._replay import TraceError, replay
from tests.conftest import CONFORMANCE, REPO_ROOT

# The shared traces, then the project's own in edge/ (JSON forms, the default config).
TRACES = sorted(CONFORMANCE.glob("*.trace.jsonl")) + sorted(CONFORMANCE.glob("edge/*.trace.jsonl"))
# Traces every binding's replay refuses, at line N of NAME.line-N.jsonl.
MALFORMED = sorted(CONFORMANCE.glob("malformed/*.jsonl"))


def expected(trace: Path) -> list[object]:
    path = trace.with_name(trace.name.replace(".trace.", ".expected."))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_there_are_traces() -> None:
    assert len(TRACES) >= 6


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name)
def test_trace_in_process(trace: Path) -> None:
    got = replay(trace.read_text())
    want = expected(trace)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"request {i + 1}"


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name)
def test_trace_through_replay_script(trace: Path) -> None:
    out = subprocess.run(
        [str(REPO_ROOT / "conformance" / "replay"), "python", str(trace)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert got == expected(trace)


def test_headers_and_body_are_exact_strings() -> None:
    # JSON equality would take 5 for "5": the values must be strings, exactly.
    trace = CONFORMANCE / "01-burst-at-once.trace.jsonl"
    for answer in replay(trace.read_text()):
        assert all(isinstance(v, str) for v in answer["headers"].values())
        assert answer["body"] is None or isinstance(answer["body"], str)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{"t_ms": 1, "key": "k", "route": "/"}\nnot json\n', 2, "invalid JSON"),
        ('{"t_ms": 1, "key": "k"}\n', 1, "missing field `route`"),
        ('{"t_ms": -1, "key": "k", "route": "/"}\n', 1, "`t_ms`"),
        ('{"t_ms": 1, "key": 5, "route": "/"}\n', 1, "`key`"),
        ('{"t_ms": 1, "key": "k", "route": "/", "cost": 1.5}\n', 1, "`cost`"),
        ('{"t_ms": 1, "key": "k", "route": "/", "x": 1}\n', 1, "unknown field `x`"),
        ('\n{"t_ms": 1, "key": "k", "route": "/"}\n{"config": {}}\n', 3, "first line"),
        (
            '{"config": {"policies": {"a": [{"algorithm": "gcra", "limit": 0, "period_ms": 1}]}}}',
            1,
            "config.policies.a[0].limit",
        ),
        ('{"t_ms": 99999999999999999, "key": "k", "route": "/"}\n', 1, "too large"),
    ],
)
def test_malformed_trace_names_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(TraceError) as info:
        replay(text)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_malformed_trace_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.trace.jsonl"
    bad.write_text('{"t_ms": 1, "key": "k", "route": "/"}\n{"t_ms": "x", "key": "k", "route": "/"}\n')
    run = subprocess.run(
        [str(REPO_ROOT / "conformance" / "replay"), "python", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert "line 2" in run.stderr


def test_invalid_cost_answers_error_and_changes_nothing() -> None:
    lines = [
        '{"t_ms": 1000, "key": "k", "route": "/v1/messages", "cost": 6}',
        '{"t_ms": 1000, "key": "k", "route": "/v1/messages", "cost": 0}',
        '{"t_ms": 1000, "key": "k", "route": "/v1/messages", "cost": 5}',
    ]
    got = replay("\n".join(lines))
    assert got[0] == {"error": "invalid_cost"}
    assert got[1] == {"error": "invalid_cost"}
    assert got[2]["allowed"] is True
    assert got[2]["headers"]["X-RateLimit-Remaining"] == "0"


def test_there_are_malformed_traces() -> None:
    assert len(MALFORMED) >= 20


@pytest.mark.parametrize("trace", MALFORMED, ids=lambda p: p.name)
def test_malformed_trace_is_refused_at_its_line(trace: Path) -> None:
    line = int(trace.name.rsplit(".line-", 1)[1].removesuffix(".jsonl"))
    with pytest.raises(TraceError) as info:
        replay(trace.read_text())
    assert info.value.line == line, str(info.value)
