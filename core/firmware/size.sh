#!/usr/bin/env bash
# Builds the firmware for a Cortex-M4F (thumbv7em-none-eabihf) and a Cortex-M0+
# (thumbv6m-none-eabi) and prints the size of each ELF section that matters.
set -euo pipefail
cd "$(dirname "$0")"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  rustup target add "$target" >/dev/null 2>&1 || true
  cargo build --quiet --release --target "$target"
  elf="target/$target/release/aisoule-ratelimit-firmware"
  readelf -SW "$elf" | python3 -c '
import sys
size = {}
for line in sys.stdin:
    f = line.replace("[ ", "[").split()
    if len(f) > 5 and f[1] in (".text", ".rodata", ".bss"):
        size[f[1]] = int(f[5], 16)
print("firmware %-22s .text %6d bytes  .rodata %5d bytes  .bss %5d bytes (4096 of it the table)"
      % (sys.argv[1], size.get(".text", 0), size.get(".rodata", 0), size.get(".bss", 0)))
' "$target"
done
