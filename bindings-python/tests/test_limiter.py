"""The Limiter and Decision API."""

from __future__ import annotations

import time
from typing import Any

import pytest

import aisoule_ratelimit
from aisoule_ratelimit import BODY_CONTENT_TYPE, Decision, Limiter
from tests.conftest import BODY_TEMPLATE

T0 = 1_780_423_178_274_000_000  # a trace timestamp, as nanoseconds


def test_defaults_are_the_documented_policies() -> None:
    lim = Limiter()
    assert lim.policies == ["standard", "messaging", "media"]
    assert lim.default_policy == "standard"
    assert lim.route_policy("/v1/messages/42") == "messaging"
    assert lim.route_policy("/v1/messages?x=1") == "messaging"
    assert lim.route_policy("/v1/messagesX") == "standard"
    assert lim.route_policy("/v1/media") == "media"
    assert lim.capacity == aisoule_ratelimit.DEFAULT_CAPACITY
    assert lim.on_full == "open"
    assert lim.header_style == "x-ratelimit"
    assert lim.check("k", "/v1/status", now_ns=T0).limit == 120
    assert lim.check("k", "/v1/media", now_ns=T0).limit == 30
    assert lim.check("k", "/v1/messages", now_ns=T0).limit == 5


def test_burst_then_429_with_exact_headers_and_body() -> None:
    lim = Limiter(seed=1)
    answers = [lim.check("k1", "/v1/messages", now_ns=T0) for _ in range(6)]
    assert [d.allowed for d in answers] == [True] * 5 + [False]
    assert [d.remaining for d in answers] == [4, 3, 2, 1, 0, 0]
    ok, denied = answers[0], answers[5]
    assert ok.status == 200 and ok.body is None and ok.content_type is None and ok.retry_after == 0
    assert list(ok.headers.items()) == [
        ("X-RateLimit-Limit", "5"),
        ("X-RateLimit-Remaining", "4"),
        ("X-RateLimit-Reset", "1780423179"),
    ]
    assert denied.status == 429
    assert denied.policy == "messaging"
    assert denied.retry_after == 1
    assert denied.retry_after_ns == 200_000_000
    assert list(denied.headers) == [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
    ]
    assert denied.headers["Retry-After"] == "1"
    assert denied.body == (BODY_TEMPLATE % 1).encode()
    assert denied.content_type == BODY_CONTENT_TYPE == "application/json"
    assert denied.header_list == list(denied.headers.items())
    assert denied.asgi_headers == [(k.lower().encode(), v.encode()) for k, v in denied.headers.items()]
    assert isinstance(denied.reset, int)
    assert "allowed=False" in repr(denied) and "status=429" in repr(denied)


def test_str_and_bytes_keys_are_the_same_key() -> None:
    lim = Limiter()
    assert lim.check("ключ", "/v1/messages", now_ns=T0).remaining == 4
    assert lim.check("ключ".encode(), "/v1/messages", now_ns=T0).remaining == 3
    assert lim.check(b"", "/v1/messages", now_ns=T0).remaining == 4  # the empty key is a key


def test_peek_changes_nothing() -> None:
    lim = Limiter()
    # peek: would it be admitted, and the key's state as it is.
    for _ in range(3):
        d = lim.peek("k", "/v1/messages", now_ns=T0)
        assert d.allowed and d.remaining == 5
    assert lim.check("k", "/v1/messages", now_ns=T0).remaining == 4
    assert lim.peek("k", "/v1/messages", now_ns=T0).remaining == 4
    assert not lim.peek("k", "/v1/messages", cost=5, now_ns=T0).allowed
    assert lim.check("k", "/v1/messages", now_ns=T0).remaining == 3


def test_policy_named_directly_and_default() -> None:
    lim = Limiter()
    assert lim.check("k", policy="media", now_ns=T0).policy == "media"
    assert lim.check("k", policy="media", now_ns=T0).remaining == 28
    assert lim.check("k", now_ns=T0).policy == "standard"
    with pytest.raises(ValueError, match=r'^policy: no policy named "gold"'):
        lim.check("k", policy="gold")
    with pytest.raises(TypeError, match="not both"):
        lim.check("k", "/v1/media", policy="media")


def test_cost() -> None:
    lim = Limiter()
    assert lim.check("k", "/v1/messages", cost=3, now_ns=T0).remaining == 2
    with pytest.raises(ValueError, match=r"^cost: .*\"messaging\" takes from 1 to 5"):
        lim.check("k", "/v1/messages", cost=6, now_ns=T0)
    with pytest.raises(ValueError, match=r"^cost: "):
        lim.check("k", "/v1/messages", cost=0, now_ns=T0)
    with pytest.raises(ValueError, match=r"^cost: "):
        lim.check("k", "/v1/messages", cost=-1, now_ns=T0)
    with pytest.raises(ValueError, match=r"^cost: "):
        lim.check("k", "/v1/messages", cost=1 << 70, now_ns=T0)
    # None of the refused calls changed anything.
    assert lim.check("k", "/v1/messages", now_ns=T0).remaining == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ((5, "/v1/media"), {}, "key must be str or bytes, not int"),
        ((None,), {}, "key must be str or bytes, not NoneType"),
        ((bytearray(b"k"), "/"), {}, "key must be str or bytes"),
        (("k", b"/v1/media"), {}, "route must be a str, not bytes"),
        (("k",), {"policy": 3}, "policy must be a str"),
        (("k", "/"), {"cost": 1.0}, "cost must be an int, not float"),
        (("k", "/"), {"cost": "1"}, "cost must be an int, not str"),
        (("k", "/"), {"now_ns": 1.5}, "now_ns must be an int, not float"),
    ],
)
def test_wrong_types_raise_type_error_and_change_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str
) -> None:
    lim = Limiter()
    with pytest.raises(TypeError, match=fragment):
        lim.check(*args, **kwargs)
    with pytest.raises(TypeError, match=fragment):
        lim.peek(*args, **kwargs)
    assert lim.check("k", "/", now_ns=T0).remaining == 119


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "() missing 1 required positional argument: 'key'"),
        (("k", "/", "x"), {}, "() takes from 1 to 2 positional arguments but 3 were given"),
        (("k",), {"bogus": 1}, "() got an unexpected keyword argument 'bogus'"),
        (("k", "/"), {"route": "/"}, "() got multiple values for argument 'route'"),
        (("k",), {"key": "k"}, "() got multiple values for argument 'key'"),
    ],
)
def test_bad_arguments_raise_type_error_and_change_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    lim = Limiter()
    for name in ("check", "peek"):
        with pytest.raises(TypeError) as e:
            getattr(lim, name)(*args, **kwargs)
        assert str(e.value) == f"Limiter.{name}{message}"
    assert lim.check("k", "/", now_ns=T0).remaining == 119


def test_arguments_by_keyword_and_none_for_the_defaults() -> None:
    lim = Limiter()
    d = lim.check(key="k", route="/v1/messages", now_ns=T0)
    assert (d.policy, d.remaining) == ("messaging", 4)
    nones: dict[str, Any] = {"policy": None, "cost": None}
    d = lim.check("k", "/v1/messages", now_ns=T0, **nones)
    assert (d.policy, d.remaining) == ("messaging", 3)
    d = lim.peek("k", None, policy="messaging", cost=2, now_ns=T0)
    assert (d.policy, d.allowed) == ("messaging", True)
    d = lim.check(now_ns=T0, cost=3, key=b"k", policy="messaging")
    assert (d.allowed, d.remaining) == (True, 0)


def test_refused_calls_leave_no_reference_behind() -> None:
    import gc
    import sys

    lim = Limiter()
    bad: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("k", "/"), {"cost": 1.5}),
        (("k", "/"), {"now_ns": -1}),
        ((5, "/"), {}),
        (("k",), {"bogus": 1}),
        (("k",), {"policy": "gold"}),
    ]
    for args, kwargs in bad:
        for _ in range(3):  # warm up caches that keep a reference once
            with pytest.raises((TypeError, ValueError)):
                lim.check(*args, **kwargs)
        gc.collect()
        before = sys.getrefcount(TypeError), sys.getrefcount(ValueError)
        for _ in range(200):
            with pytest.raises((TypeError, ValueError)):
                lim.check(*args, **kwargs)
        gc.collect()
        assert (sys.getrefcount(TypeError), sys.getrefcount(ValueError)) == before


def test_signatures() -> None:
    import inspect

    for method in (Limiter.check, Limiter.peek):
        assert str(inspect.signature(method)) == (
            "(self, /, key, route=None, *, policy=None, cost=1, now_ns=None)"
        )


def test_now_ns_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"^now_ns: "):
        Limiter().check("k", "/", now_ns=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {
                "policies": {"a": [{"algorithm": "gcra", "limit": 0, "period_ms": 1000}]},
                "default_policy": "a",
                "routes": [],
            },
            "policies.a[0].limit: ",
        ),
        (
            {
                "policies": {"a": [{"algorithm": "sliding", "limit": 1, "period_ms": 1000}]},
                "default_policy": "a",
                "routes": [],
            },
            'policies.a[0].algorithm: must be "gcra" or "window"',
        ),
        (
            {
                "policies": {"a": [{"algorithm": "window", "limit": 1, "period_ms": 1000, "burst": 2}]},
                "default_policy": "a",
                "routes": [],
            },
            "policies.a[0].burst: ",
        ),
        (
            {"policies": {"a": [{"algorithm": "window", "limit": 1}]}, "default_policy": "a", "routes": []},
            "policies.a[0].period_ms: is required",
        ),
        (
            {
                "policies": {"a": [{"algorithm": "window", "limit": 1, "period_ms": 1000, "x": 1}]},
                "default_policy": "a",
                "routes": [],
            },
            "policies.a[0].x: is not a config field",
        ),
        ({"routes": [{"prefix": "/x", "policy": "nope"}]}, "routes[0]"),
        ({"default_policy": "nope"}, "default_policy: "),
        ({"capacity": 0}, "capacity: must be from 1 to 4294967296"),
        ({"capacity": (1 << 32) + 1}, "capacity: must be from 1 to 4294967296"),
        ({"on_full": "maybe"}, 'on_full: must be "open" or "closed"'),
        ({"header_style": "draft"}, "header_style: must be"),
        ({"seed": b"short"}, "seed: must be 16 bytes"),
        ({"seed": -1}, "seed: must be from 0"),
        (
            {"policies": {"a": [{"algorithm": "window", "limit": float("nan"), "period_ms": 1}]}},
            "policies.a[0].limit: ",
        ),
        (
            {"policies": {"a": [{"algorithm": "window", "limit": 1.5, "period_ms": 1}]}},
            "policies.a[0].limit: ",
        ),
    ],
)
def test_invalid_config_raises_value_error_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + _escape(message)):
        Limiter(**kwargs)


def _escape(s: str) -> str:
    import re

    return re.escape(s)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"policies": [("a", [])]}, "policies must be a mapping"),
        ({"routes": "/v1"}, "routes must be a list"),
        ({"routes": 5}, "routes must be a list"),
        ({"default_policy": 1}, "default_policy must be a str"),
        ({"capacity": "1024"}, "capacity must be an int"),
        ({"capacity": True}, "capacity must be an int"),
        ({"on_full": 1}, "on_full must be a str"),
        ({"seed": 1.5}, "seed must be bytes or an int"),
        (
            {"policies": {"a": [{"algorithm": "window", "limit": object(), "period_ms": 1}]}},
            "JSON serializable",
        ),
    ],
)
def test_wrong_config_types_raise_type_error(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(TypeError, match=fragment):
        Limiter(**kwargs)


def test_custom_policies_and_routes_from_json_shapes() -> None:
    policies = {
        "free": [{"algorithm": "window", "limit": 2, "period_ms": 60000}],
        "upload": [
            {"algorithm": "window", "limit": 10, "period_ms": 60000},
            {"algorithm": "gcra", "limit": 1, "period_ms": 1000, "burst": 2},
        ],
    }
    routes = ({"prefix": "/upload", "policy": "upload"},)  # any sequence
    lim = Limiter(policies=policies, routes=routes, default_policy="free", capacity=128)
    assert lim.policies == ["free", "upload"]
    assert lim.capacity == 128
    assert [lim.check("k", "/upload/x", now_ns=T0).allowed for _ in range(3)] == [True, True, False]
    assert [lim.check("k", "/other", now_ns=T0).allowed for _ in range(3)] == [True, True, False]
    # The same config as JSON text means the same.
    import json

    text = json.dumps(
        {"policies": policies, "routes": list(routes), "default_policy": "free", "capacity": 128}
    )
    lim2 = Limiter.from_json(text)
    assert lim2.capacity == 128 and lim2.policies == lim.policies
    assert Limiter.from_json(text.encode()).policies == lim.policies
    with pytest.raises(ValueError, match=r"^capacity: "):
        Limiter.from_json('{"capacity": 0}')
    with pytest.raises(ValueError, match="invalid JSON at byte"):
        Limiter.from_json("{")


def test_header_styles() -> None:
    ietf = Limiter(header_style="ietf").check("k", "/v1/messages", now_ns=T0)
    assert list(ietf.headers) == ["RateLimit-Policy", "RateLimit"]
    assert ietf.headers["RateLimit-Policy"] == '"messaging.0";q=300;w=60,"messaging.1";q=5;w=1'
    both = Limiter(header_style="both").check("k", "/v1/messages", now_ns=T0)
    assert list(both.headers) == [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "RateLimit-Policy",
        "RateLimit",
    ]


def test_full_table_modes() -> None:
    one = {"a": [{"algorithm": "window", "limit": 5, "period_ms": 60000}]}
    open_ = Limiter(policies=one, routes=[], default_policy="a", capacity=1)
    assert open_.check("k1", now_ns=T0).table_full is False
    d = open_.check("k2", now_ns=T0)
    assert d.allowed and d.table_full
    assert open_.stats() == {"table_full_open": 1, "table_full_closed": 0}
    closed = Limiter(policies=one, routes=[], default_policy="a", capacity=1, on_full="closed")
    closed.check("k1", now_ns=T0)
    d = closed.check("k2", now_ns=T0)
    assert not d.allowed and d.table_full and d.retry_after == 1 and d.status == 429
    assert closed.stats() == {"table_full_open": 0, "table_full_closed": 1}


def test_seeds_int_and_bytes() -> None:
    a = Limiter(seed=(1 << 128) - 1)
    b = Limiter(seed=b"\x00" * 16)
    assert a.check("k", now_ns=T0).allowed and b.check("k", now_ns=T0).allowed


def test_default_clocks() -> None:
    lim = Limiter()
    before = time.time()
    d = lim.check("k", "/v1/messages")
    after = time.time()
    # One request of a fresh 5-per-second bucket: reset is 200 ms after now (wall clock).
    assert int(before + 0.2) <= d.reset <= int(after + 0.2) + 1
    assert d.reset_after_ns == 200_000_000 or 0 < d.reset_after_ns <= 200_000_000
    # The monotonic clock is the one time.monotonic_ns() reads: a request "now" with
    # now_ns taken from it sees the same bucket.
    d2 = lim.check("k", "/v1/messages")
    assert d2.remaining == 3


def test_decision_is_not_constructible() -> None:
    with pytest.raises(TypeError):
        Decision()


def test_decision_attributes_are_read_only_with_their_types() -> None:
    lim = Limiter()
    d = lim.check("k", "/v1/messages", now_ns=T0)
    assert [type(getattr(d, a)) for a in ("allowed", "table_full")] == [bool, bool]
    figures = ("status", "limit", "remaining", "reset", "reset_after_ns", "retry_after", "retry_after_ns")
    assert [type(getattr(d, a)) for a in figures] == [int] * len(figures)
    assert (d.status, d.limit, d.remaining, d.reset) == (200, 5, 4, 1780423179)
    for attr in ("allowed", "status", "limit", "remaining", "reset", "policy", "headers", "body"):
        with pytest.raises(AttributeError):
            setattr(d, attr, 1)
    with pytest.raises(AttributeError):
        d.other = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        setattr(Decision, "limit", 1)  # noqa: B010
    assert type(d) is Decision and Decision.__module__ == "aisoule_ratelimit._native"
    assert Decision.remaining.__doc__ == "`X-RateLimit-Remaining`."


def test_decisions_release_their_limiter() -> None:
    import sys

    lim = Limiter()
    before = sys.getrefcount(lim)
    decisions = [lim.check(f"k{i}", "/") for i in range(100)]
    assert sys.getrefcount(lim) == before + 100
    del decisions
    assert sys.getrefcount(lim) == before


def test_version() -> None:
    import re
    from pathlib import Path

    cargo = (Path(__file__).parent.parent.parent / "Cargo.toml").read_text()
    workspace = cargo[cargo.index("[workspace.package]") :]
    version = re.search(r'^version = "([^"]+)"', workspace, re.M)
    assert version is not None
    assert aisoule_ratelimit.__version__ == version.group(1)


def test_decision_outlives_its_limiter() -> None:
    import gc

    d = Limiter(header_style="both").check("k", "/v1/messages", now_ns=T0)
    gc.collect()
    assert d.policy == "messaging"
    assert d.headers["RateLimit"] == '"messaging.1";r=4;t=1'


def test_repr() -> None:
    r = repr(Limiter(capacity=64))
    assert r == (
        'Limiter(policies=["standard", "messaging", "media"], capacity=64, on_full="open", '
        'header_style="x-ratelimit", shared=None)'
    )


def test_command_line_usage_errors() -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "aisoule_ratelimit"], capture_output=True, text=True)
    assert run.returncode == 2 and "usage" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "aisoule_ratelimit", "replay", "/no/such/trace"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.startswith("/no/such/trace: ")
