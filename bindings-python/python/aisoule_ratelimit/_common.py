"""What the ASGI and WSGI middleware share: the key parser and the 401 answer."""

from __future__ import annotations

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
