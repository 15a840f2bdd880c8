"""API rate limiting for Python services, answered by the aisoule-ratelimit Rust core.

>>> from aisoule_ratelimit import Limiter
>>> limiter = Limiter()                      # the documented policies
>>> d = limiter.check("key-1", "/v1/messages")
>>> d.allowed, d.status, d.headers["X-RateLimit-Limit"]
(True, 200, '5')

`Limiter.check` returns a `Decision` with every figure, the headers (in the contract's
order and case) and the exact 429 body. `aisoule_ratelimit.asgi` and
`aisoule_ratelimit.wsgi` hold the middleware for Starlette/FastAPI and Flask/Django.
"""

from aisoule_ratelimit._native import (
    BODY_CONTENT_TYPE,
    CELL_SIZE,
    DEFAULT_CAPACITY,
    Decision,
    Limiter,
    __version__,
)

__all__ = [
    "BODY_CONTENT_TYPE",
    "CELL_SIZE",
    "DEFAULT_CAPACITY",
    "Decision",
    "Limiter",
    "__version__",
]
