"""Shared paths and fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent
CONFORMANCE = REPO_ROOT / "conformance"

# The examples and the test apps import as `examples.*` and `tests.*`.
if str(PACKAGE_DIR) not in sys.path:
    sys.path.insert(0, str(PACKAGE_DIR))

# The limits of the test apps: a GCRA burst of 3 per minute, so a fresh key is admitted
# exactly 3 times at once and the next request only 20 s later: no test runs that long.
BURST3 = {"standard": [{"algorithm": "gcra", "limit": 3, "period_ms": 60000}]}

BODY_TEMPLATE = (
    '{"success":false,"error":{"code":"rate_limit_exceeded",'
    '"message":"Too many requests. Please wait before retrying.","retry_after_seconds":%d}'
    "}"
)
"""SEMANTICS.md section 4, written out here to check the core's bytes against."""
