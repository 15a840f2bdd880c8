#!/usr/bin/env bash
# conformance/model/diff.sh N [LANG] [FIRST_SEED]
# Generates traces for seeds FIRST_SEED..FIRST_SEED+N-1 (default 1..N) with gen.py, runs
# `conformance/replay LANG` (default rust) and the model on each, and prints, for every trace
# whose answers differ, the seed, the first differing line number (request number, 1-based)
# and both answers. Exit status 1 if any trace differs.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:?usage: diff.sh N [LANG] [FIRST_SEED]}
lang=${2:-rust}
first=${3:-1}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/model-diff.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# build once before the loop
"$root/conformance/replay" "$lang" "$root/conformance/01-burst-at-once.trace.jsonl" >/dev/null || exit 2
compared=0; differing=0; skipped=0
for ((s = first; s < first + n; s++)); do
  tr="$tmp/$s.trace.jsonl"
  python3 "$here/gen.py" "$s" >"$tr"
  python3 "$here/model.py" "$tr" >"$tmp/m" 2>"$tmp/merr"; mrc=$?
  if [ $mrc -eq 3 ]; then skipped=$((skipped + 1)); continue; fi
  if [ $mrc -ne 0 ]; then echo "seed $s: model failed: $(head -c 300 "$tmp/merr")"; differing=$((differing + 1)); continue; fi
  "$root/conformance/replay" "$lang" "$tr" >"$tmp/i" 2>"$tmp/ierr"; irc=$?
  compared=$((compared + 1))
  if [ $irc -ne 0 ]; then
    echo "seed $s: $lang replay failed (status $irc): $(head -c 300 "$tmp/ierr")"
    differing=$((differing + 1)); continue
  fi
  if ! cmp -s "$tmp/m" "$tmp/i"; then
    differing=$((differing + 1))
    python3 - "$s" "$tmp/m" "$tmp/i" "$lang" <<'PY' | tee -a "$tmp/log"
import json, sys
seed, mf, jf, lang = sys.argv[1:]
m = open(mf).read().splitlines(); i = open(jf).read().splitlines()
for k in range(max(len(m), len(i))):
    a = m[k] if k < len(m) else "<missing>"; b = i[k] if k < len(i) else "<missing>"
    if a != b:
        try:
            same = json.loads(a) == json.loads(b)
        except Exception:
            same = False
        print("seed %s: request %d differs%s\n  model: %s\n  %-5s: %s"
              % (seed, k + 1, " (bytes only, equal as JSON)" if same else "", a, lang, b))
        break
PY
  fi
done
echo "compared $compared traces ($lang), $differing differing, $skipped skipped by the model"
# Every difference fails. (Until 2026-11-29 GCRA admissions past u64::MAX ns were a known
# departure, repro/01-02; the core now keeps the tat's 65th bit, and those traces are
# conformance/edge/05-06.)
[ "$differing" -eq 0 ]
