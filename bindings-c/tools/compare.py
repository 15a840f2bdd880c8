#!/usr/bin/env python3
"""compare.py GOT EXPECTED: answers compare as JSON values, line by line (FORMAT.md)."""
import json
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    got, want = lines(sys.argv[1]), lines(sys.argv[2])
    for i, (g, w) in enumerate(zip(got, want), 1):
        if g != w:
            print(f"answer {i}: got {json.dumps(g)}\n          expected {json.dumps(w)}")
            return 1
    if len(got) != len(want):
        print(f"{len(got)} answers, expected {len(want)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
