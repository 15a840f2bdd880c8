"""`python -m aisoule_ratelimit COMMAND`: `replay TRACE` prints the binding's answers to a
conformance trace; `gateway` runs the reference HTTP gateway (see `gateway.py`)."""

from __future__ import annotations

import argparse
import os
import sys

from aisoule_ratelimit._replay import TraceError, replay_lines


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m aisoule_ratelimit")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="print the answers to a conformance trace, one JSON line each")
    rp.add_argument("trace", help="a *.trace.jsonl file (conformance/FORMAT.md)")
    gw = sub.add_parser(
        "gateway",
        help="run the reference HTTP gateway (uvicorn, several workers, one shared table)",
        description="The AISoule rate limits over HTTP: GET /v1/status, POST /v1/messages, "
        "POST /v1/media, per API key (Authorization: Bearer <key>).",
    )
    from aisoule_ratelimit import gateway

    gateway.add_arguments(gw)
    args = parser.parse_args(argv)
    if args.command == "gateway":
        return gateway.main(args)
    return replay(args.trace)


def replay(path: str) -> int:
    """Prints the answers to the trace at `path`; returns the exit status."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    try:
        lines = replay_lines(text)
    except TraceError as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as the Rust replay does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
