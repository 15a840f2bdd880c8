"""`python -m aisoule_ratelimit replay TRACE`: the binding's answers to a conformance trace."""

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
    args = parser.parse_args(argv)
    path: str = args.trace
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
