"""The README's code runs: its quick starts are the files in examples/ (included verbatim,
checked here) driven through the test clients, and its other Python blocks are executed."""

from __future__ import annotations

import importlib
import re
import textwrap
import time
from typing import Any

import pytest

from tests.conftest import BODY_TEMPLATE, PACKAGE_DIR

README = (PACKAGE_DIR / "README.md").read_text()
BLOCK = re.compile(
    r"(<!-- include: (?P<path>\S+) -->\n)?(?P<indent>[ ]*)```python\n(?P<code>.*?)^(?P=indent)```",
    re.S | re.M,
)
BLOCKS = [(m.group("path"), textwrap.dedent(m.group("code"))) for m in BLOCK.finditer(README)]


def test_readme_has_both_quick_starts() -> None:
    assert [p for p, _ in BLOCKS if p] == ["examples/fastapi_app.py", "examples/flask_app.py"]


@pytest.mark.parametrize("path", [p for p, _ in BLOCKS if p])
def test_included_blocks_are_the_example_files(path: str) -> None:
    code = next(c for p, c in BLOCKS if p == path)
    assert code == (PACKAGE_DIR / path).read_text()


@pytest.mark.parametrize("code", [c for p, c in BLOCKS if not p], ids=lambda c: c.splitlines()[0][:40])
def test_other_blocks_run(code: str) -> None:
    exec(compile(code, "README.md", "exec"), {})


def drive(post: Any, get: Any) -> None:
    """Six POSTs to /v1/messages in a row: 5 admitted (remaining 4..0), then the 429."""
    t0 = time.monotonic()
    answers = [post("/v1/messages") for _ in range(6)]
    if time.monotonic() - t0 >= 0.2:
        pytest.skip("six requests took 200 ms or more: the 5-per-second bucket refilled")
    assert [a[0] for a in answers] == [200] * 5 + [429]
    assert [a[1]["x-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(a[1]["x-ratelimit-limit"] == "5" for a in answers)
    status, headers, body = answers[5]
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    assert body == (BODY_TEMPLATE % 1).encode()
    assert all("retry-after" not in a[1] for a in answers[:5])
    status, headers, body = get("/v1/status")
    assert status == 200 and headers["x-ratelimit-limit"] == "120"


def test_fastapi_quick_start() -> None:
    from starlette.testclient import TestClient

    app = importlib.import_module("examples.fastapi_app").app
    client = TestClient(app)
    auth = {"Authorization": "Bearer readme-key"}

    def lower(r: Any) -> tuple[int, dict[str, str], bytes]:
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    drive(lambda p: lower(client.post(p, headers=auth)), lambda p: lower(client.get(p, headers=auth)))
    r = client.get("/v1/status")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_flask_quick_start() -> None:
    app = importlib.import_module("examples.flask_app").app
    client = app.test_client()
    auth = {"Authorization": "Bearer readme-key"}

    def lower(r: Any) -> tuple[int, dict[str, str], bytes]:
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.data

    drive(lambda p: lower(client.post(p, headers=auth)), lambda p: lower(client.get(p, headers=auth)))
    r = client.get("/v1/status")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_api_key"
