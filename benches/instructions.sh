#!/usr/bin/env bash
# Instructions per save+restore pair and per ensure+release pair (callgrind; independent of
# machine load), raw vs gilgate.
#   benches/instructions.sh [python-prefix | debian:3.X ...]
#   (default: every pyenv CPython >= 3.8, then Debian unstable's 3.14 and 3.15 if fetched)
set -euo pipefail
# The raw variants look libpython's functions up on its handle: gilgate must not rewrite them.
export GILGATE_DLSYM=0
cd "$(dirname "$0")/.."
cargo build --release -p gilgate >&2
lib=$PWD/target/bench/lib; mkdir -p "$lib" target/bench/ir
src_lib=${GILGATE_LIB_DIR:-$PWD/target/release}/libgilgate.so
ln -sf "$src_lib" "$lib/libgilgate.so"
ln -sf "$src_lib" "$lib/libgilgate.so.0"
prefixes=("$@")
if [ ${#prefixes[@]} -eq 0 ]; then
  for d in "$(pyenv root 2>/dev/null || echo ~/.pyenv)"/versions/3.*; do
    v=$(basename "$d"); case $v in 3.[0-7].*) continue;; esac; prefixes+=("$d"); done
  for v in 3.14 3.15; do
    [ -d "${GILGATE_CACHE:-$HOME/.cache/gilgate}/debian-python/$v/tree" ] && prefixes+=("debian:$v")
  done
fi
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
echo "| CPython | pair | raw instr/pair | gilgate_* API | exported drop-in |"
echo "|---|---|---|---|---|"
for p in "${prefixes[@]}"; do
  run=()
  if [[ $p == debian:* ]]; then
    v=${p#debian:}
    env_out=$(bash scripts/debian-python.sh --env "$v" 2>/dev/null) || { echo "| debian-unstable-$v | absent | | | |"; continue; }
    eval "$env_out"
    name=debian-unstable-$v; exe=target/bench/ir/ir-$name
    # shellcheck disable=SC2086
    gcc -O2 -Iinclude $PY_CFLAGS benches/ir.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" $PY_LDFLAGS -ldl
    export PYTHONHOME=$PY_HOME
    run=("$PY_LOADER" --library-path "$PY_LIBRARY_PATH")
  else
    unset PYTHONHOME
    cfg=$p/bin/python3-config; [ -x "$cfg" ] || { echo "| $p | absent | | | |"; continue; }
    name=$(basename "$p"); exe=target/bench/ir/ir-$name
    gcc -O2 -Iinclude $($cfg --includes) benches/ir.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" \
        $($cfg --ldflags --embed) -Wl,-rpath,"$p/lib" -ldl
  fi
  for pair in "save+restore:" "ensure+release:_gs"; do
    row="| $name | ${pair%%:*}"; sfx=${pair#*:}
    for m in raw api exported; do
      a=$(count "${run[@]}" "$exe" "$m$sfx" 2000); b=$(count "${run[@]}" "$exe" "$m$sfx" 22000)
      per=$(( (b - a) / 20000 ))
      if [ "$m" = raw ]; then base=$per; row="$row | $per"; else row="$row | $per (+$((per - base)))"; fi
    done
    echo "$row |"
  done
done
