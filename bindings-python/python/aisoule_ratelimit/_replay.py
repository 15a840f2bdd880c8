"""Replays a conformance trace (conformance/FORMAT.md) through the Python binding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aisoule_ratelimit._native import Limiter

__all__ = ["TraceError", "replay", "replay_lines"]

_U64_MAX = (1 << 64) - 1
# The seed of the Rust replay; any seed gives the same answers while the table has room.
_SEED = 0x5EED | (0xC0FFEE << 64)


class TraceError(ValueError):
    """A malformed trace line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class _Request:
    line: int
    t_ms: int
    key: str
    route: str
    cost: int


def _int(text: str) -> int | float:
    """A JSON integer as json reads it, except `-0`: json reads it as 0, the other bindings'
    parsers as a signed number, refused where a whole number is due. As -0.0 it is refused
    here too (and inside a config, which is dumped again for the core's parser)."""
    return -0.0 if text == "-0" else int(text)


def _whole(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _U64_MAX


def _well_formed(value: Any) -> bool:
    """Whether a string has UTF-8 bytes: a lone surrogate (`"\\ud800"`) has none, and the
    other bindings' parsers refuse it as invalid JSON."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse(text: str) -> tuple[Limiter, list[_Request]]:
    limiter: Limiter | None = None
    requests: list[_Request] = []
    for i, raw in enumerate(text.splitlines()):
        line = i + 1
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, parse_int=_int)
        except ValueError as e:
            raise TraceError(line, f"invalid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise TraceError(line, "must be a JSON object")
        if "config" in obj:
            if requests or limiter is not None:
                raise TraceError(line, "`config` may only be on the first line")
            if len(obj) != 1:
                raise TraceError(line, "a config line holds only `config`")
            try:
                limiter = Limiter.from_json(json.dumps(obj["config"]), seed=_SEED)
            except ValueError as e:
                raise TraceError(line, f"config.{e}") from None
            continue
        for k in obj:
            if k not in ("t_ms", "key", "route", "cost"):
                raise TraceError(line, f"unknown field `{k}`")
        for k in ("t_ms", "key", "route"):
            if k not in obj:
                raise TraceError(line, f"missing field `{k}`")
        if not _whole(obj["t_ms"]):
            raise TraceError(line, "`t_ms` must be a whole number of milliseconds")
        if not isinstance(obj["key"], str):
            raise TraceError(line, "`key` must be a string")
        if not isinstance(obj["route"], str):
            raise TraceError(line, "`route` must be a string")
        cost = obj.get("cost", 1)
        if not _whole(cost):
            raise TraceError(line, "`cost` must be a whole number")
        for k in ("key", "route"):
            if not _well_formed(obj[k]):
                raise TraceError(line, f"invalid JSON: a lone surrogate in `{k}`")
        requests.append(_Request(line, obj["t_ms"], obj["key"], obj["route"], cost))
    return (limiter if limiter is not None else Limiter(seed=_SEED)), requests


def replay(text: str) -> list[dict[str, Any]]:
    """The answers to every request of a trace, as JSON-shaped dicts.

    Raises:
        TraceError: the trace is malformed (the message names the line).
    """
    limiter, requests = _parse(text)
    answers: list[dict[str, Any]] = []
    for req in requests:
        ns = req.t_ms * 1_000_000
        if ns > _U64_MAX:
            raise TraceError(req.line, "`t_ms` is too large for nanoseconds in 64 bits")
        try:
            d = limiter.check(req.key, req.route, cost=req.cost, now_ns=ns)
        except ValueError:
            # The only ValueError a whole cost and a str route can give.
            answers.append({"error": "invalid_cost"})
            continue
        body = d.body
        answers.append(
            {
                "allowed": d.allowed,
                "status": d.status,
                "policy": d.policy,
                "headers": d.headers,
                "body": None if body is None else body.decode(),
            }
        )
    return answers


def replay_lines(text: str) -> list[str]:
    """The answers as compact JSON lines."""
    return [json.dumps(a, separators=(",", ":"), ensure_ascii=False) for a in replay(text)]
