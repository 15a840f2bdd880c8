#!/usr/bin/env bash
# Runs every test of bindings-c, building each thing once, and ends with the line
# "N passed, N failed" (the totals of all the suites below).
#   1. the library, once, with the `test-panic` feature (for asrl_test_panic)
#   2. tests/test_asrl.c as C99 and as C++17 under AddressSanitizer + UBSan, and both
#      under valgrind (C99 against the shared library, C++17 against the static one):
#      0 errors, 0 leaks
#   3. every conformance trace through the C replay, compared with the expected answers
#      as JSON values; malformed traces give "line N: ..." and exit status 2
#   4. the example prefork server, driven with curl
#   5. the crate's Rust unit tests
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$here/.." && pwd)
out="$root/target/c"
lib="$root/target/release"
cc=${CC:-cc}
cxx=${CXX:-c++}
warn=(-Wall -Wextra -Werror -pedantic)
# shellcheck disable=SC2054 # one flag whose value has a comma
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
libs=(-lpthread -ldl -lm)
passed=0
failed=0
mkdir -p "$out"
cd "$here" || exit 1

step() { printf '\n== %s\n' "$*"; }
tally() { # adds a suite's "N passed, N failed" line (from file $1) to the totals
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
  if [ -z "$line" ]; then
    echo "FAIL $2: no summary line"
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
  failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
}
one() { # name, status: one test's result
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1"
  fi
}

step "build (cargo --release --features test-panic, then the C programs)"
nice cargo build --quiet --release -p aisoule-ratelimit-c --features test-panic || exit 1
build_ok=0
"$cc" -std=c99 "${warn[@]}" -g -O1 "${san[@]}" -DASRL_FEATURE_TEST_PANIC -Iinclude \
  tests/test_asrl.c "$lib/libaisoule_ratelimit.a" "${libs[@]}" -o "$out/test_c_asan" || build_ok=1
"$cxx" -x c++ -std=c++17 "${warn[@]}" -g -O1 "${san[@]}" -DASRL_FEATURE_TEST_PANIC -Iinclude \
  tests/test_asrl.c -x none "$lib/libaisoule_ratelimit.a" "${libs[@]}" -o "$out/test_cxx_asan" || build_ok=1
"$cc" -std=c99 "${warn[@]}" -g -O1 -DASRL_FEATURE_TEST_PANIC -Iinclude tests/test_asrl.c \
  -L"$lib" -laisoule_ratelimit -Wl,-rpath,"$lib" "${libs[@]}" -o "$out/test_c_so" || build_ok=1
"$cxx" -x c++ -std=c++17 "${warn[@]}" -g -O1 -DASRL_FEATURE_TEST_PANIC -Iinclude tests/test_asrl.c \
  -x none "$lib/libaisoule_ratelimit.a" "${libs[@]}" -o "$out/test_cxx_static" || build_ok=1
"$cc" -std=c99 "${warn[@]}" -O2 -Iinclude tools/replay.c "$lib/libaisoule_ratelimit.a" "${libs[@]}" \
  -o "$out/replay" || build_ok=1
"$cc" -std=c99 "${warn[@]}" -O2 -Iinclude examples/prefork_server.c "$lib/libaisoule_ratelimit.a" \
  "${libs[@]}" -o "$out/prefork_server" || build_ok=1
one "C programs compile (C99 and C++17, -Wall -Wextra -Werror -pedantic)" $build_ok
[ $build_ok -eq 0 ] || { echo "$passed passed, $failed failed"; exit 1; }

step "C tests, C99, AddressSanitizer + UBSan"
"$out/test_c_asan" >"$out/c_asan.log" 2>&1; rc=$?
cat "$out/c_asan.log"; tally "$out/c_asan.log" "C99 ASan"
one "C99 ASan run exits 0" $rc

step "C tests, C++17, AddressSanitizer + UBSan"
"$out/test_cxx_asan" >"$out/cxx_asan.log" 2>&1; rc=$?
cat "$out/cxx_asan.log"; tally "$out/cxx_asan.log" "C++17 ASan"
one "C++17 ASan run exits 0" $rc

grind() { # name, binary: the C tests under valgrind, 0 errors and 0 leaks
  step "C tests, $1, valgrind"
  valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --log-file="$out/valgrind.txt" \
    "$2" >"$out/valgrind.log" 2>&1
  local rc=$?
  cat "$out/valgrind.log"; tally "$out/valgrind.log" "valgrind $1"
  if [ -s "$out/valgrind.txt" ]; then cat "$out/valgrind.txt"; fi
  [ $rc -eq 0 ] && [ ! -s "$out/valgrind.txt" ]; one "valgrind, $1: 0 errors, 0 leaks" $?
}
grind "C99 against the shared library" "$out/test_c_so"
grind "C++17 against the static library" "$out/test_cxx_static"

step "conformance traces through the C replay"
for trace in "$root"/conformance/*.trace.jsonl; do
  name=$(basename "$trace" .trace.jsonl)
  expected="${trace%.trace.jsonl}.expected.jsonl"
  "$root/conformance/replay" c "$trace" >"$out/$name.got.jsonl" 2>"$out/$name.err"
  rc=$?
  [ $rc -eq 0 ] && python3 "$here/tools/compare.py" "$out/$name.got.jsonl" "$expected"
  one "conformance $name" $?
done
bad_trace() { # name, content, expected stderr prefix
  printf '%b' "$2" >"$out/bad.jsonl"
  "$root/conformance/replay" c "$out/bad.jsonl" >"$out/bad.out" 2>"$out/bad.err"
  local rc=$?
  [ $rc -eq 2 ] && [ ! -s "$out/bad.out" ] && [ "$(wc -l <"$out/bad.err")" -eq 1 ] &&
    grep -q "^$3" "$out/bad.err"
  one "malformed trace: $1 ($(head -c 70 "$out/bad.err"))" $?
}
bad_trace "not JSON" '{"t_ms":1,"key":"k","route":"/"}\n\n{"t_ms":2,"key":"k"\n' "line 3: invalid JSON"
bad_trace "missing route" '{"t_ms":1,"key":"k"}\n' "line 1: missing field \`route\`"
bad_trace "unknown field" '{"t_ms":1,"key":"k","route":"/","x":1}\n' "line 1: unknown field \`x\`"
bad_trace "negative cost" '{"t_ms":1,"key":"k","route":"/","cost":-1}\n' "line 1: \`cost\` must be"
bad_trace "config not first" '{"t_ms":1,"key":"k","route":"/"}\n{"config":{}}\n' "line 2: \`config\` may only"
bad_trace "config field named" '{"config":{"policies":{"a":[{"algorithm":"window","limit":0,"period_ms":5}]}}}\n' \
  "line 1: config.policies.a\[0\].limit: "
bad_trace "t_ms too large" '{"t_ms":18446744073709551,"key":"k","route":"/"}\n' "line 1: \`t_ms\` is too large"
printf '{"t_ms":1780423178274,"key":"\\u00e9\\ud83d\\ude00\\"q","route":"/v1/media"}\n' >"$out/esc.jsonl"
"$root/conformance/replay" c "$out/esc.jsonl" >"$out/esc.out" 2>&1 &&
  python3 -c 'import json,sys; a=json.loads(open(sys.argv[1]).read()); assert a["allowed"] and a["policy"]=="media", a' "$out/esc.out"
one "escaped keys are read" $?

step "example prefork server"
"$here/tests/test_server.sh" "$out/prefork_server" >"$out/server.log" 2>&1; rc=$?
cat "$out/server.log"; tally "$out/server.log" "server"
one "server test exits 0" $rc

step "make install PREFIX=... and a program built with pkg-config"
prefix="$out/prefix"
rm -rf "$prefix"
make --no-print-directory -s install-files PREFIX="$prefix" >"$out/install.log" 2>&1 &&
  [ -f "$prefix/lib/libaisoule_ratelimit.a" ] && [ -f "$prefix/lib/libaisoule_ratelimit.so" ] &&
  [ -f "$prefix/include/aisoule_ratelimit.h" ] && [ -f "$prefix/lib/pkgconfig/aisoule_ratelimit.pc" ]
one "make install puts lib, header and .pc under PREFIX" $?
cat >"$out/pc_smoke.c" <<'C'
#include <aisoule_ratelimit.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  asrl_limiter *l = NULL;
  asrl_decision d;
  if (asrl_limiter_new(NULL, 0, NULL, &l) != ASRL_RESULT_OK) return 1;
  if (asrl_check(l, (const uint8_t *)"k", 1, "/v1/media", 9, 1, 1, 1, &d) != ASRL_RESULT_OK) return 1;
  printf("%s %llu\n", asrl_version(), (unsigned long long)d.remaining);
  asrl_limiter_free(l);
  return strcmp(asrl_version(), ASRL_VERSION_STRING) != 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
"$cc" -std=c99 "${warn[@]}" "$out/pc_smoke.c" $(pkg-config --cflags --libs aisoule_ratelimit) -o "$out/pc_smoke" &&
  [ "$(LD_LIBRARY_PATH="$prefix/lib" "$out/pc_smoke")" = "$(pkg-config --modversion aisoule_ratelimit) 29" ]
one "pkg-config --cflags --libs builds and runs (shared)" $?
# shellcheck disable=SC2046
"$cc" -std=c99 "${warn[@]}" $(pkg-config --cflags aisoule_ratelimit) "$out/pc_smoke.c" "$prefix/lib/libaisoule_ratelimit.a" \
  $(pkg-config --static --libs-only-l aisoule_ratelimit | sed 's/-laisoule_ratelimit//') -o "$out/pc_smoke_static" &&
  "$out/pc_smoke_static" >/dev/null
one "static link with the .pc's Libs.private" $?

step "Rust unit tests of the crate"
nice cargo test --quiet --release -p aisoule-ratelimit-c --features test-panic >"$out/rust.log" 2>&1; rc=$?
tail -3 "$out/rust.log"
one "cargo test -p aisoule-ratelimit-c" $rc

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
