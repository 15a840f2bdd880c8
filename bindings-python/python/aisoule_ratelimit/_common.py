"""What the ASGI and WSGI middleware share: the key parser and the 401 answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable

MISSING_KEY_BODY: bytes = (
    b'{"success":false,"error":{"code":"missing_api_key",'
    b'"message":"An API key is required: send Authorization: Bearer <key>."}}'
)
"""The default answer to a request without an API key (status 401)."""


def bearer_key(value: bytes) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` value, or None.

    The scheme is case-insensitive (RFC 9110 11.1); an empty token is no key.
    """
    if len(value) > 7 and value[:7].lower() == b"bearer ":
        token = value[7:].strip(b" \t")
        if token:
            return token
    return None


def exempt_matcher(prefixes: Iterable[str]) -> Callable[[str], bool] | None:
    """A test for paths under any of `prefixes` (the path itself, or followed by `/` or
    `?`, as route prefixes match), or None when there are none."""
    if isinstance(prefixes, str):
        raise TypeError("exempt must be an iterable of path prefixes, not a str")
    found = tuple(prefixes)
    for p in found:
        if not isinstance(p, str):
            raise TypeError(f"exempt must hold str path prefixes, not {type(p).__name__}")
    if not found:
        return None

    def is_exempt(path: str) -> bool:
        for p in found:
            if path.startswith(p) and (len(path) == len(p) or path[len(p)] in "/?"):
                return True
        return False

    return is_exempt
