#!/usr/bin/env bash
# Regenerates include/aisoule_ratelimit.h with the pinned cbindgen. The version macros
# come from the crate version (cargo metadata), never typed by hand.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
want=0.29.4
have=$(cbindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "gen-header: cbindgen $want needed (have '${have:-none}'): cargo install cbindgen --version $want --locked" >&2
  exit 1
fi
version=$(cargo metadata --no-deps --format-version 1 --manifest-path "$here/Cargo.toml" |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "aisoule-ratelimit-c"))')
IFS=. read -r major minor patch <<<"${version%%[-+]*}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# after_includes is a top-level key: put it before the file's tables.
{
  printf 'after_includes = """\n'
  printf '/* The version of the crate this header was generated from; asrl_version() gives the library'"'"'s. */\n'
  printf '#define ASRL_VERSION_MAJOR %s\n#define ASRL_VERSION_MINOR %s\n#define ASRL_VERSION_PATCH %s\n' "$major" "$minor" "$patch"
  printf '#define ASRL_VERSION_STRING "%s"\n"""\n' "$version"
  cat "$here/cbindgen.toml"
} >"$tmp/cbindgen.toml"
cd "$here"
cbindgen --quiet --config "$tmp/cbindgen.toml" --crate aisoule-ratelimit-c --output include/aisoule_ratelimit.h .
