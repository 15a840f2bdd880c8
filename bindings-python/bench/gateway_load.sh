#!/usr/bin/env bash
# The reference gateway under load on loopback (wrk), 4 workers, two parts:
#   1. exactness: one API key hammered from many connections for a few seconds, across the
#      workers: exactly the documented 120 admitted in the 60 s window, the rest 429;
#   2. throughput: GET /v1/status with 10,000 keys, the limiter on (the default gateway)
#      and off (`--no-limit`, the same routes), alternating in short runs over ROUNDS
#      rounds (the machine is shared: short alternating runs see the same load); prints
#      the medians of requests/s and latency percentiles, and the median of the ratios of
#      each round's two runs;
#   3. the ASGI app alone, in-process, with and without the limiter (µs a request).
# Both gateways run at once on free ports and are stopped (SIGINT) at the end.
#
#   bench/gateway_load.sh          # from bindings-python/, after `make build`
#   ROUNDS=20 DURATION=5 CONNECTIONS=64 WORKERS=4 ACCESS_LOG=0 bench/gateway_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
WORKERS=${WORKERS:-4}
KEYS=${KEYS:-10000}
ACCESS_LOG=${ACCESS_LOG:-1}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; })
  else
    echo "gateway_load: wrk is missing (apt-get install wrk)" >&2
    exit 2
  fi
fi

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap cleanup EXIT

log_flag=()
[ "$ACCESS_LOG" = 1 ] || log_flag=(--no-access-log)

start() { # start NAME PORT ARGS...: the gateway as the README runs it; waits until it listens
  local name=$1 port=$2
  shift 2
  "$PY" -m aisoule_ratelimit gateway --host 127.0.0.1 --port "$port" --workers "$WORKERS" \
    "${log_flag[@]}" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" &
  PIDS+=($!)
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
      echo "gateway_load: the $name gateway did not start:" >&2
      cat "$LOGS/$name.err" >&2
      exit 1
    fi
    sleep 0.1
  done
}

ON_PORT=$(free_port)
start on "$ON_PORT"
OFF_PORT=$(free_port)
start off "$OFF_PORT" --no-limit
echo "gateway_load: $WORKERS workers each, limiter on at :$ON_PORT, off at :$OFF_PORT;" \
  "wrk -t$WRK_THREADS -c$CONNECTIONS; $(nproc) CPUs; access log $([ "$ACCESS_LOG" = 1 ] && echo 'on (to a file)' || echo off)"

# --- 1. exactness -------------------------------------------------------------------------
# Windows are aligned to 0 on the monotonic clock: start at least 10 s before an edge, so
# the whole burst falls in one window and its count is exact.
window() { "$PY" -c 'import time; print(time.monotonic_ns() // 60_000_000_000)'; }
"$PY" -c 'import time; left = 60e9 - time.monotonic_ns() % 60e9; time.sleep(left / 1e9 + 0.01 if left < 10e9 else 0)'
w0=$(window)
key="exact-$(date +%s%N)"
exact=$(KEY=$key wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d3s -s bench/wrk/one_key.lua "http://127.0.0.1:$ON_PORT" | grep '^EXACT')
w1=$(window)
admitted=$(sed -E 's/.*admitted=([0-9]+).*/\1/' <<<"$exact")
other=$(sed -E 's/.*other=([0-9]+).*/\1/' <<<"$exact")
echo "exactness: one key, 3 s, $CONNECTIONS connections: $exact"
if [ "$w0" != "$w1" ]; then
  echo "exactness: the burst crossed a window edge; its count is not comparable" >&2
  exit 1
elif [ "$admitted" != 120 ] || [ "$other" != 0 ]; then
  echo "exactness: FAILED: $admitted admitted (120 expected), $other other answers" >&2
  exit 1
fi
if [ "$ACCESS_LOG" = 1 ]; then
  served_by=$(grep -c "class=standard decision=allowed" "$LOGS/on.out" | tr -d ' ')
  workers_seen=$(grep "class=standard decision=allowed" "$LOGS/on.out" | sed -E 's/.* worker=([0-9]+) .*/\1/' | sort -u | wc -l)
  echo "exactness: OK: exactly 120 admitted ($served_by allowed log lines, from $workers_seen workers)"
else
  echo "exactness: OK: exactly 120 admitted"
fi

# --- 2. throughput ------------------------------------------------------------------------
run_wrk() { # run_wrk PORT PREFIX SECONDS
  KEYS=$KEYS KEY_PREFIX=$2 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$3"s -s bench/wrk/many_keys.lua \
    "http://127.0.0.1:$1" | grep '^RESULT'
}
run_wrk "$ON_PORT" warm-on 2 >/dev/null
run_wrk "$OFF_PORT" warm-off 2 >/dev/null
results="$LOGS/results"
: >"$results"
for round in $(seq "$ROUNDS"); do
  for side in on off; do
    port=$ON_PORT
    [ $side = off ] && port=$OFF_PORT
    line=$(run_wrk "$port" "r$round-$side-$(date +%s)" "$DURATION")
    echo "round $round limiter $side: $line"
    echo "$side $line" >>"$results"
  done
done

# --- 3. the app alone (no HTTP server): what the limiter adds to the ASGI app itself -------
"$PY" bench/gateway_app.py >>"$results"

"$PY" - "$results" <<'EOF'
import re
import statistics
import sys

rows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
app: dict[str, float] = {}
for line in open(sys.argv[1]):
    side, rest = line.split(" ", 1)
    if side == "app":
        app = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", rest)}
        continue
    rows[side].append({k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", rest)})
med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in rows.items()}
bad = sum(r["non2xx"] + r["errors"] for rs in rows.values() for r in rs)
print()
print(f"{'limiter':<8} {'req/s (median)':>15} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8}")
for side in ("on", "off"):
    m = med[side]
    print(f"{side:<8} {m['rps']:>15,.0f} {m['p50_us']:>8,.0f} {m['p90_us']:>8,.0f} {m['p99_us']:>8,.0f}")
ratios = sorted(a["rps"] / b["rps"] for a, b in zip(rows["on"], rows["off"]))
r = statistics.median(ratios)
print(
    f"req/s ratio on/off: median {r:.3f} over {len(ratios)} rounds (from {ratios[0]:.3f} to {ratios[-1]:.3f}):"
    f" the limiter costs {100 * (1 - r):.1f}% of the throughput"
)
print(
    f"the ASGI app alone (no server, no access log): {app['app_on_us']:.2f} µs a request with the"
    f" limiter, {app['app_off_us']:.2f} µs without (+{app['app_on_us'] - app['app_off_us']:.2f} µs)"
)
print(f"non-2xx answers or socket errors in the throughput runs: {bad:.0f}")
sys.exit(1 if bad else 0)
EOF
