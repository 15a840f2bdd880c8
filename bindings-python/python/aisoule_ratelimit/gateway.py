"""The reference gateway: the AISoule rate limits over HTTP, served by uvicorn.

    python -m aisoule_ratelimit gateway [--host 127.0.0.1] [--port 8080] [--workers N]
                                        [--config FILE] [--shared PATH] [--no-limit]

Routes: `GET /v1/status` (class `standard` by default), `POST /v1/messages` (`messaging`),
`POST /v1/media` (`media`); each answers a small JSON body when allowed. Every request
with an API key (`Authorization: Bearer <key>`) is counted against the class its path
maps to, whatever the answer (404 and 405 included), and every such response carries
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; a refused request
gets the contract's 429 (`Retry-After`, `Content-Type: application/json`, the exact
body). A request without a well-formed `Authorization: Bearer <key>` gets a 401 JSON
error and is not counted.

The worker processes share one table in a shared-memory segment, which the parent
creates fresh before the workers start (mode 0600) and removes at exit. Each request is
logged as one line on stdout, with a keyed hash of the API key (never the key).

`create_app()` is the ASGI app factory the workers load; `uvicorn --factory
aisoule_ratelimit.gateway:create_app` also serves it (one process, its own table).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aisoule_ratelimit._common import MISSING_KEY_BODY, bearer_key
from aisoule_ratelimit._native import BODY_CONTENT_TYPE, CELL_SIZE, Limiter, __version__
from aisoule_ratelimit.asgi import Receive, Scope, Send

__all__ = [
    "DOCUMENTED_CONFIG",
    "ROUTES",
    "Gateway",
    "GatewaySettings",
    "add_arguments",
    "create_app",
    "main",
]

DOCUMENTED_CONFIG: dict[str, Any] = {
    "policies": {
        "standard": [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
        "messaging": [
            {"algorithm": "window", "limit": 300, "period_ms": 60000},
            {"algorithm": "gcra", "limit": 5, "period_ms": 1000, "burst": 5},
        ],
        "media": [{"algorithm": "window", "limit": 30, "period_ms": 60000}],
    },
    "routes": [
        {"prefix": "/v1/messages", "policy": "messaging"},
        {"prefix": "/v1/media", "policy": "media"},
    ],
    "default_policy": "standard",
}
"""The documented limits (SEMANTICS.md section 1) in the config format of
`conformance/FORMAT.md`: what the core's `Config::documented()` holds (a test checks
that the two make the same table), written out for the start-up summary."""

ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/v1/status"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/media"),
)
"""The routes the gateway serves: (method, path)."""

SETTINGS_ENV = "AISOULE_GATEWAY_SETTINGS"
"""The environment variable through which the parent hands its settings to the workers."""

SEGMENT_MAGIC = b"ASRLTBL\0"
"""The first bytes of a table segment (core/host/src/shared.rs)."""

DEFAULT_WORKERS = 4

_JSON = (b"content-type", BODY_CONTENT_TYPE.encode())
_INVALID_AUTH_BODY = (
    b'{"success":false,"error":{"code":"invalid_authorization",'
    b'"message":"The Authorization header must be: Bearer <key>."}}'
)
_NOT_FOUND_BODY = b'{"success":false,"error":{"code":"not_found","message":"No such route."}}'
_NOT_ALLOWED_BODY = (
    b'{"success":false,"error":{"code":"method_not_allowed",'
    b'"message":"This route does not take that method."}}'
)


@dataclass(frozen=True)
class GatewaySettings:
    """What every worker needs to build the same app (sent as JSON in `SETTINGS_ENV`)."""

    config: str | None = None
    """The config object as JSON text (FORMAT.md), or None for the documented limits."""
    shared: str | None = None
    """The table segment's path, or None for a table of this process."""
    no_limit: bool = False
    """Serve the routes without the limiter (for comparison)."""
    access_log: bool = True
    """One line per request on stdout."""
    log_key: str = ""
    """The hex key of the hash that stands for API keys in the log (shared by the workers)."""
    parent_pid: int = 0
    """The gateway's parent process: a worker whose parent dies stops too."""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> GatewaySettings:
        return cls(**json.loads(text))


class Gateway:
    """The ASGI app: the routes, the limiter in front of them, the log line.

    Args:
        limiter: the `Limiter`, or None to serve without limits.
        access_log: write one line per request on stdout.
        log_key: the key of the keyed hash (BLAKE2b, 6 bytes) logged instead of the API key.
    """

    def __init__(self, limiter: Limiter | None, *, access_log: bool = True, log_key: bytes = b"") -> None:
        self.limiter = limiter
        self.access_log = access_log
        self._log_key = log_key or os.urandom(16)
        self._pid = os.getpid()
        self._log_second = -1
        self._log_stamp = ""
        self._methods: dict[str, str] = dict((path, method) for method, path in ROUTES)
        self._bodies: dict[tuple[str, str], bytes] = {}

    def _ok_body(self, path: str, klass: str) -> bytes:
        body = self._bodies.get((path, klass))
        if body is None:
            data: dict[str, Any] = {"status": "ok"} if path == "/v1/status" else {"accepted": True}
            data["class"] = klass
            body = json.dumps({"success": True, "data": data}, separators=(",", ":")).encode()
            self._bodies[(path, klass)] = body
        return body

    def fingerprint(self, key: bytes) -> str:
        """What the log shows for an API key: 12 hex digits of a keyed hash."""
        return hashlib.blake2b(key, digest_size=6, key=self._log_key).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        started = time.perf_counter_ns()
        path: str = scope["path"]
        method: str = scope["method"]
        raw_auth: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                raw_auth = value
                break
        key = bearer_key(raw_auth) if raw_auth is not None else None
        limiter = self.limiter
        headers: list[tuple[bytes, bytes]]
        klass = "-"
        if key is None:
            status = 401
            body = MISSING_KEY_BODY if raw_auth is None else _INVALID_AUTH_BODY
            headers = [_JSON, (b"www-authenticate", b"Bearer")]
            outcome = "unauthenticated"
            if limiter is not None:
                klass = limiter.route_policy(path)
        else:
            decision = None
            if limiter is not None:
                decision = limiter.check(key, path)
                klass = decision.policy
                # The contract's names in their exact case (uvicorn writes them as given).
                headers = [(n.encode(), v.encode()) for n, v in decision.header_list]
            else:
                headers = []
            if decision is not None and not decision.allowed:
                status = 429
                body = decision.body or b""
                outcome = "denied"
            else:
                outcome = "allowed" if decision is not None else "unlimited"
                expected = self._methods.get(path)
                if expected is None:
                    status, body = 404, _NOT_FOUND_BODY
                elif expected != method:
                    status, body = 405, _NOT_ALLOWED_BODY
                    headers.append((b"allow", expected.encode()))
                else:
                    status, body = 200, self._ok_body(path, klass)
            headers.append(_JSON)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if self.access_log:
            self._log(scope, key, klass, outcome, status, started)

    def _log(
        self, scope: Scope, key: bytes | None, klass: str, outcome: str, status: int, started: int
    ) -> None:
        now = time.time()
        second = int(now)
        if second != self._log_second:
            self._log_second = second
            self._log_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # raw_path: as sent (percent-encoded), so a decoded newline cannot forge a line.
        target = scope.get("raw_path") or scope["path"].encode()
        line = (
            f"{self._log_stamp}.{int((now - second) * 1000):03d}Z worker={self._pid} "
            f"key={'-' if key is None else self.fingerprint(key)} class={klass} decision={outcome} "
            f"status={status} {scope['method']} {target.decode('ascii', 'backslashreplace')} "
            f"{(time.perf_counter_ns() - started) / 1e6:.2f}ms\n"
        )
        # One write(2) per line: lines of several workers on one pipe never interleave.
        os.write(1, line.encode())


def create_app() -> Gateway:
    """The ASGI app factory of the workers: the settings come from `SETTINGS_ENV`.

    Without it (a plain `uvicorn --factory aisoule_ratelimit.gateway:create_app`): the
    documented limits in a table of this process.
    """
    text = os.environ.get(SETTINGS_ENV)
    settings = GatewaySettings.from_env(text) if text else GatewaySettings()
    if settings.parent_pid and settings.parent_pid != os.getpid():
        _stop_with_parent(settings.parent_pid)
    limiter = None
    if not settings.no_limit:
        config = settings.config if settings.config is not None else json.dumps(DOCUMENTED_CONFIG)
        limiter = Limiter.from_json(config, shared=settings.shared)
    return Gateway(limiter, access_log=settings.access_log, log_key=bytes.fromhex(settings.log_key))


def _stop_with_parent(parent_pid: int) -> None:
    """Asks Linux for a SIGTERM (a graceful uvicorn shutdown) when the parent dies, so a
    killed parent (SIGKILL) leaves no orphan workers serving without it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the request took effect
        raise SystemExit("gateway worker: the parent process is gone")


# --- the command line ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m aisoule_ratelimit gateway`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free)"
    )
    parser.add_argument(
        "--workers",
        type=_count,
        default=DEFAULT_WORKERS,
        help=f"worker processes (default {DEFAULT_WORKERS}; 0: one per CPU)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="limits as JSON: the config object of conformance/FORMAT.md (default: the documented limits)",
    )
    parser.add_argument(
        "--shared",
        metavar="PATH",
        help="the table's shared-memory segment (default /dev/shm/aisoule-gateway-PORT); "
        "created fresh at start-up, removed at exit",
    )
    parser.add_argument(
        "--no-limit", action="store_true", help="serve the same routes without the limiter (for comparison)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="no line per request on stdout")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's own log level (stderr; default warning)",
    )


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


class GatewayError(Exception):
    """A start-up failure, printed as one line."""


def _period(ms: int) -> str:
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000:,} h"
    if ms % 1000 == 0:
        return f"{ms // 1000:,} s"
    return f"{ms:,} ms"


def _rule_text(rule: Mapping[str, Any]) -> str:
    text = f"{rule['limit']:,} per {_period(int(rule['period_ms']))}"
    if rule["algorithm"] == "gcra":
        return f"{text}, burst {rule.get('burst', rule['limit']):,} (GCRA)"
    return f"{text} (rolling window)"


def summary_lines(
    limiter: Limiter | None,
    config: Mapping[str, Any],
    *,
    url: str,
    workers: int,
    segment: Path | None,
    from_file: str | None,
    access_log: bool,
) -> list[str]:
    """The start-up summary: where it listens and which limits it enforces."""
    lines = [f"aisoule-ratelimit gateway {__version__}: listening on {url} ({workers} worker processes)"]
    if limiter is None:
        lines.append("limits: OFF (--no-limit): the same routes, no limiter, no rate-limit headers")
        lines.append("routes: " + ", ".join(f"{m} {p}" for m, p in ROUTES) + "; other paths 404")
    else:
        source = f"from {from_file}" if from_file else "the documented defaults"
        lines.append(f"limits ({source}), per API key (Authorization: Bearer <key>) and class:")
        policies: Mapping[str, Sequence[Mapping[str, Any]]] = config.get(
            "policies", DOCUMENTED_CONFIG["policies"]
        )
        width = max(len(name) for name in limiter.policies)
        for name in limiter.policies:
            rules = " and ".join(_rule_text(r) for r in policies[name])
            default = "   (default class)" if name == limiter.default_policy else ""
            lines.append(f"  {name:<{width}}  {rules}{default}")
        prefixes = config.get("routes", DOCUMENTED_CONFIG["routes"])
        classes = [f"{r['prefix']} -> {limiter.route_policy(r['prefix'])}" for r in prefixes]
        classes.append(f"anything else -> {limiter.default_policy}")
        lines.append("classes by path prefix: " + ", ".join(classes))
        lines.append("routes:")
        for method, path in ROUTES:
            lines.append(f"  {method:<4} {path:<13} {limiter.route_policy(path)}")
        lines.append(
            "  other paths: 404, other methods: 405, both counted against their path's class; "
            "no or malformed Authorization: 401, not counted"
        )
        assert segment is not None
        size = limiter.capacity * CELL_SIZE
        size_text = f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size / 1024:g} KiB"
        lines.append(
            f"table: {limiter.capacity:,} cells ({size_text}) shared by the workers at {segment} "
            "(mode 0600, removed at exit)"
        )
    if access_log:
        lines.append("log: one line per request on stdout (key=keyed hash of the API key, never the key)")
    else:
        lines.append("log: off (--no-access-log)")
    return lines


def _default_segment(port: int) -> Path:
    base = Path("/dev/shm")
    if not base.is_dir():
        base = Path(tempfile.gettempdir())
    return base / f"aisoule-gateway-{port}"


def _remove_stale_segment(path: Path) -> None:
    """Removes a segment left at `path` by a gateway that is gone; refuses when the file
    is not a segment or a running gateway holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as e:
        raise GatewayError(f"--shared {path}: {e.strerror}") from None
    try:
        if os.read(fd, len(SEGMENT_MAGIC)) != SEGMENT_MAGIC:
            raise GatewayError(
                f"--shared {path}: exists and is not a rate-limit table segment; not touching it"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GatewayError(
                f"--shared {path}: in use by a running gateway; stop it or give another --shared PATH"
            ) from None
        path.unlink()
    finally:
        os.close(fd)


@contextlib.contextmanager
def _segment(path: Path, config: str) -> Iterator[Limiter]:
    """Creates the segment fresh, holds a lock on it while the gateway runs (so a second
    gateway cannot take it for stale), removes it at exit."""
    _remove_stale_segment(path)
    try:
        limiter = Limiter.from_json(config, shared=path)
    except ValueError as e:  # the core's message names the field: policies.x[0].limit: ...
        raise GatewayError(f"config: {e}") from None
    except OSError as e:
        raise GatewayError(f"--shared {path}: {e}") from None
    fd = os.open(path, os.O_RDONLY)
    ours = os.fstat(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield limiter
    finally:
        with contextlib.suppress(FileNotFoundError):
            found = path.stat()
            # Only our segment: never one that another gateway made at the same path since.
            if (found.st_dev, found.st_ino) == (ours.st_dev, ours.st_ino):
                path.unlink()
        os.close(fd)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(args: argparse.Namespace) -> int:
    """Runs the gateway until SIGINT or SIGTERM; returns the exit status."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    workers: int = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    text: str | None = None
    if args.config is not None:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise GatewayError(f"--config {args.config}: {e}") from None
    config_text = text if text is not None else json.dumps(DOCUMENTED_CONFIG)

    config = uvicorn.Config(
        "aisoule_ratelimit.gateway:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=workers,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    # Bound here, before anything else is touched: a port in use stops us first.
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # uvicorn makes the socket with proto 0, so asyncio does not set TCP_NODELAY on the
        # connections (it checks proto == IPPROTO_TCP), and the response body, written
        # after its head, waits for a delayed ACK: 40 ms a request. Accepted sockets
        # inherit the option from the listening one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    # SIGTERM unwinds like Ctrl-C, so the segment is removed (Multiprocess takes both over).
    signal.signal(signal.SIGTERM, _raise_exit)
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        limiter: Limiter | None = None
        segment: Path | None = None
        if not args.no_limit:
            segment = Path(args.shared) if args.shared else _default_segment(port)
            limiter = stack.enter_context(_segment(segment, config_text))
        settings = GatewaySettings(
            config=config_text,
            shared=str(segment) if segment else None,
            no_limit=args.no_limit,
            access_log=not args.no_access_log,
            log_key=os.urandom(16).hex(),
            parent_pid=os.getpid(),
        )
        os.environ[SETTINGS_ENV] = settings.to_env()
        for line in summary_lines(
            limiter,
            json.loads(config_text),
            url=url,
            workers=workers,
            segment=segment,
            from_file=args.config,
            access_log=settings.access_log,
        ):
            print(line)
        sys.stdout.flush()
        if workers > 1:
            supervisor = Multiprocess(config, sockets=[sock])
            supervisor.run()
            if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
                return 3
        else:
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
            if not server.started:
                return 3
    return 0


def main(args: argparse.Namespace) -> int:
    """`python -m aisoule_ratelimit gateway ...`."""
    try:
        return serve(args)
    except GatewayError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
