#!/usr/bin/env bash
# Starts examples/prefork_server and drives it with curl: documented headers, 429, 401,
# 404, several workers, clean shutdown; then several workers over one shared-memory
# segment (-S) driven by several client processes at once: a key gets exactly its limit
# whatever worker answers. Prints "N passed, N failed".
# usage: tests/test_server.sh SERVER_BINARY
set -uo pipefail
server=$1
tmp=$(mktemp -d)
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
expect() { # name, got, want
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi
}

# /v1/media: 2 per hour (a rolling window), so the third request is denied whatever the
# machine's speed; the other classes keep their documented limits.
cat >"$tmp/config.json" <<'JSON'
{"policies": {
   "standard":  [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
   "messaging": [{"algorithm": "window", "limit": 300, "period_ms": 60000},
                 {"algorithm": "gcra",   "limit": 5,   "period_ms": 1000, "burst": 5}],
   "media":     [{"algorithm": "window", "limit": 2,   "period_ms": 3600000}]}}
JSON

start() { # workers [more server options]: sets PORT and SERVER_PID
  local workers=$1
  shift
  coproc SRV { exec "$server" -p 0 -w "$workers" -c "$tmp/config.json" "$@"; }
  SERVER_PID=$SRV_PID
  local line=""
  if ! read -r -t 20 line <&"${SRV[0]}"; then
    echo "FAIL server did not start"; exit 1
  fi
  PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' <<<"$line")
  [ -n "$PORT" ] || { echo "FAIL unexpected first line: $line"; exit 1; }
}
stop() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID"
  expect "server exits cleanly on SIGTERM" "$?" "0"
}
get() { # path, key (empty: no Authorization): sets CODE, writes $tmp/h and $tmp/b
  local auth=()
  [ -n "$2" ] && auth=(-H "Authorization: Bearer $2")
  CODE=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "${auth[@]}" "http://127.0.0.1:$PORT$1")
}
header() { grep -i "^$1:" "$tmp/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

start 1
t0=$(date +%s)

get /v1/status ""
expect "401 without a key" "$CODE" "401"
expect "401 is JSON" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$tmp/b")" "missing_api_key"
expect "401 has no rate-limit headers" "$(header X-RateLimit-Limit)" ""

get /v1/messages k1
expect "messages 200" "$CODE" "200"
expect "messages limit (the burst rule binds)" "$(header X-RateLimit-Limit)" "5"
expect "messages remaining" "$(header X-RateLimit-Remaining)" "4"
reset=$(header X-RateLimit-Reset)
if [[ "$reset" =~ ^[0-9]+$ ]] && [ "$reset" -ge "$t0" ] && [ "$reset" -le $((t0 + 30)) ]; then
  ok "messages reset is epoch seconds just ahead"
else
  bad "messages reset is epoch seconds just ahead" "'$reset' (now $t0)"
fi
expect "allowed answer has no Retry-After" "$(header Retry-After)" ""

get /v1/status k1
expect "status 200" "$CODE" "200"
expect "status limit" "$(header X-RateLimit-Limit)" "120"
expect "status remaining" "$(header X-RateLimit-Remaining)" "119"

get /v1/media k2
expect "media 1 remaining" "$CODE/$(header X-RateLimit-Remaining)" "200/1"
get /v1/media/7 k2
expect "media 2 remaining" "$CODE/$(header X-RateLimit-Remaining)" "200/0"
get "/v1/media?page=2" k2
expect "media 3 is 429" "$CODE" "429"
expect "429 remaining" "$(header X-RateLimit-Remaining)" "0"
expect "429 content type" "$(header Content-Type)" "application/json"
retry=$(header Retry-After)
if [[ "$retry" =~ ^[0-9]+$ ]] && [ "$retry" -ge 1 ] && [ "$retry" -le 3600 ]; then
  ok "429 Retry-After in seconds"
else
  bad "429 Retry-After in seconds" "'$retry'"
fi
want="{\"success\":false,\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Too many requests. Please wait before retrying.\",\"retry_after_seconds\":$retry}}"
expect "429 body, exact" "$(cat "$tmp/b")" "$want"
get /v1/media k3
expect "another key is not limited" "$CODE" "200"

get /nowhere k1
expect "unknown route 404 with headers" "$CODE/$(header X-RateLimit-Limit)" "404/120"
stop

# Several workers: every request is answered (each worker counts in its own table).
start 3
codes=""
for i in 1 2 3 4 5 6; do
  get /v1/status "multi-$i"
  codes="$codes$CODE/$(header X-RateLimit-Remaining) "
done
expect "3 workers answer" "$codes" "200/119 200/119 200/119 200/119 200/119 200/119 "
stop

# One table for all workers: a segment in /dev/shm (or the temporary directory).
shm_dir=/dev/shm
[ -d "$shm_dir" ] && [ -w "$shm_dir" ] || shm_dir=$tmp
seg="$shm_dir/asrl-server-test-$$"
rm -f "$seg"
start 4 -S "$seg"
[ -f "$seg" ] && [ "$(stat -c %a "$seg")" = 600 ]
expect "the server creates the segment, mode 0600" "$?" "0"
mono() { python3 -c 'import time; print(time.monotonic_ns() // 60000000000)'; }
burst() { # key: 121 requests for /v1/status from 4 client processes at once
  local c pids=()
  for c in 0 1 2 3; do
    (
      n=30
      [ "$c" = 0 ] && n=31
      for _ in $(seq "$n"); do
        code=$(curl -s -o /dev/null -D "$tmp/h.$c" -w '%{http_code}' -H "Authorization: Bearer $1" \
          "http://127.0.0.1:$PORT/v1/status")
        echo "$code $(grep -i '^X-RateLimit-Remaining:' "$tmp/h.$c" | tr -d '\r' | cut -d' ' -f2) $(grep -i '^X-Worker:' "$tmp/h.$c" | tr -d '\r' | cut -d' ' -f2)"
      done >"$tmp/client.$c"
    ) &
    pids+=($!)
  done
  wait "${pids[@]}" # (not a bare wait: the server is a child too)
  cat "$tmp"/client.[0-3] >"$tmp/answers"
}
# The rolling window (120 per 60 s) is aligned to the monotonic clock: a burst that
# straddles a minute may be owed the next window's share. Such a burst is run again with
# a fresh key (the next straddle is a minute away).
for attempt in 1 2; do
  before=$(mono)
  burst "fresh-$attempt-$$"
  after=$(mono)
  [ "$before" = "$after" ] && break
  echo "     the burst straddled a window boundary: again with a fresh key"
done
expect "121 answers from 4 client processes" "$(wc -l <"$tmp/answers")" "121"
expect "exactly 120 allowed across workers" "$(grep -c '^200 ' "$tmp/answers")" "120"
expect "exactly 1 denied" "$(grep -c '^429 ' "$tmp/answers")" "1"
expect "each remaining count from 119 to 0 given once" \
  "$(awk '$1 == 200 {print $2}' "$tmp/answers" | sort -n | tr '\n' ' ')" "$(seq 0 119 | tr '\n' ' ')"
workers_seen=$(awk '{print $3}' "$tmp/answers" | sort -u | wc -l)
if [ "$workers_seen" -ge 2 ]; then
  ok "answers came from $workers_seen workers"
else
  bad "answers came from several workers" "only $workers_seen"
fi
stop
# The segment outlives the server: the key is still limited after a restart.
start 2 -S "$seg"
get /v1/status "fresh-$attempt-$$"
expect "a restarted server sees the counts" "$CODE/$(header X-RateLimit-Remaining)" "429/0"
stop
# A server with another config refuses the segment, naming the difference.
sed 's/"limit": 120/"limit": 100/' "$tmp/config.json" >"$tmp/other.json"
"$server" -p 0 -w 1 -c "$tmp/other.json" -S "$seg" >"$tmp/out" 2>"$tmp/err"
expect "another config: exit status 2" "$?" "2"
grep -q "made for other policies or routes" "$tmp/err"
expect "another config: the error names it ($(head -c 60 "$tmp/err"))" "$?" "0"
rm -f "$seg"

rm -rf "$tmp"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
