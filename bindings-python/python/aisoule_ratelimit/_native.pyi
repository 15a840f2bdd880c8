"""The native module: the Rust core behind `aisoule_ratelimit`."""

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final

__all__ = [
    "BODY_CONTENT_TYPE",
    "CELL_SIZE",
    "DEFAULT_CAPACITY",
    "Decision",
    "Limiter",
    "__version__",
]

BODY_CONTENT_TYPE: Final[str]
DEFAULT_CAPACITY: Final[int]
CELL_SIZE: Final[int]
__version__: Final[str]

@final
class Limiter:
    """Per-key rate limits over a fixed table, answering the contract to the byte."""

    def __new__(
        cls,
        policies: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        routes: Sequence[Mapping[str, str]] | None = None,
        default_policy: str | None = None,
        capacity: int | None = None,
        on_full: Literal["open", "closed"] = "open",
        seed: int | bytes | None = None,
        header_style: Literal["x-ratelimit", "ietf", "both"] = "x-ratelimit",
        shared: str | os.PathLike[str] | None = None,
    ) -> Limiter: ...
    @staticmethod
    def from_json(
        text: str | bytes,
        *,
        on_full: Literal["open", "closed"] = "open",
        seed: int | bytes | None = None,
        header_style: Literal["x-ratelimit", "ietf", "both"] = "x-ratelimit",
        shared: str | os.PathLike[str] | None = None,
    ) -> Limiter: ...
    @classmethod
    def open_shared(
        cls,
        path: str | os.PathLike[str],
        capacity: int | None = None,
        policies: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        routes: Sequence[Mapping[str, str]] | None = None,
        default_policy: str | None = None,
        on_full: Literal["open", "closed"] = "open",
        header_style: Literal["x-ratelimit", "ietf", "both"] = "x-ratelimit",
    ) -> Limiter:
        """A limiter over the table in the shared-memory segment at `path`, created (mode
        0600, `capacity` cells, a seed from the OS) by the first process that opens it.

        Raises ValueError when the segment does not fit (other policies, routes or
        capacity; truncated, corrupt or not a segment), and the OSError subclass of the
        system error (FileNotFoundError, PermissionError, ...) with `filename` set."""
    def check(
        self,
        key: str | bytes,
        route: str | None = None,
        *,
        policy: str | None = None,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision: ...
    def peek(
        self,
        key: str | bytes,
        route: str | None = None,
        *,
        policy: str | None = None,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision: ...
    def route_policy(self, route: str) -> str: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def shared(self) -> pathlib.Path | None: ...
    @property
    def policies(self) -> list[str]: ...
    @property
    def default_policy(self) -> str: ...
    @property
    def on_full(self) -> Literal["open", "closed"]: ...
    @property
    def header_style(self) -> Literal["x-ratelimit", "ietf", "both"]: ...

@final
class Decision:
    """One request's answer: the decision, its figures, its headers and its 429 body."""

    @property
    def allowed(self) -> bool: ...
    @property
    def status(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset(self) -> int: ...
    @property
    def reset_after_ns(self) -> int: ...
    @property
    def retry_after(self) -> int: ...
    @property
    def retry_after_ns(self) -> int: ...
    @property
    def policy(self) -> str: ...
    @property
    def table_full(self) -> bool: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def header_list(self) -> list[tuple[str, str]]: ...
    @property
    def asgi_headers(self) -> list[tuple[bytes, bytes]]: ...
    @property
    def body(self) -> bytes | None: ...
    @property
    def content_type(self) -> str | None: ...
