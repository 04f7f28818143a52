#!/usr/bin/env bash
# Instructions per save+restore pair (callgrind; independent of machine load), raw vs gilgate.
#   benches/instructions.sh [python-prefix ...]   (default: every pyenv CPython >= 3.8)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p gilgate >&2
lib=$PWD/target/bench/lib; mkdir -p "$lib" target/bench/ir
ln -sf "$PWD/target/release/libgilgate.so" "$lib/libgilgate.so"
ln -sf "$PWD/target/release/libgilgate.so" "$lib/libgilgate.so.0"
prefixes=("$@")
if [ ${#prefixes[@]} -eq 0 ]; then
  for d in "$(pyenv root 2>/dev/null || echo ~/.pyenv)"/versions/3.*; do
    v=$(basename "$d"); case $v in 3.[0-7].*) continue;; esac; prefixes+=("$d"); done
fi
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
echo "| CPython | raw instr/pair | gilgate_* API | exported drop-in |"
echo "|---|---|---|---|"
for p in "${prefixes[@]}"; do
  cfg=$p/bin/python3-config; [ -x "$cfg" ] || { echo "| $p | absent | | |"; continue; }
  exe=target/bench/ir/ir-$(basename "$p")
  gcc -O2 -Iinclude $($cfg --includes) benches/ir.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" \
      $($cfg --ldflags --embed) -Wl,-rpath,"$p/lib" -ldl
  row="| $(basename "$p")"
  for m in raw api exported; do
    a=$(count "$exe" $m 2000); b=$(count "$exe" $m 22000)
    per=$(( (b - a) / 20000 ))
    if [ "$m" = raw ]; then base=$per; row="$row | $per"; else row="$row | $per (+$((per - base)))"; fi
  done
  echo "$row |"
done
