#!/usr/bin/env bash
# Cost of the PEP 788 compatibility layer (include/gilgate_pep788.h): benches/pep788_pair.c.
#   benches/pep788.sh [python-prefix | debian:3.X ...]    (default: pyenv 3.12.1's prefix)
# Per CPython: instructions per pair under callgrind ((22000 pairs - 2000 pairs) / 20000: start-up
# cancels out; independent of machine load), then wall-clock ns (PEP788_BLOCKS blocks of
# PEP788_N pairs, modes interleaved; median and p10/p90 of the per-block difference to raw:
# depends on the machine's load, say what it was).
set -euo pipefail
export GILGATE_DLSYM=0   # the raw variant resolves libpython's own functions
cd "$(dirname "$0")/.."
cargo build --release -p gilgate >&2
lib=$PWD/target/release; out=target/bench/pep788; mkdir -p "$out"
prefixes=("$@")
[ ${#prefixes[@]} -gt 0 ] || prefixes=("$(pyenv root 2>/dev/null || echo ~/.pyenv)/versions/3.12.1")
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for p in "${prefixes[@]}"; do
  run=()
  if [[ $p == debian:* ]]; then
    v=${p#debian:}
    env_out=$(bash scripts/debian-python.sh --env "$v" 2>/dev/null) || { echo "debian-unstable-$v: absent"; continue; }
    eval "$env_out"
    name=debian-unstable-$v; exe=$out/pair-$name
    # shellcheck disable=SC2086
    gcc -O2 -Iinclude $PY_CFLAGS benches/pep788_pair.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" $PY_LDFLAGS -ldl
    export PYTHONHOME=$PY_HOME
    run=("$PY_LOADER" --library-path "$PY_LIBRARY_PATH")
  else
    unset PYTHONHOME
    cfg=$p/bin/python3-config; [ -x "$cfg" ] || { echo "$p: absent"; continue; }
    name=$(basename "$p"); exe=$out/pair-$name
    gcc -O2 -Iinclude $($cfg --includes) benches/pep788_pair.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" \
        $($cfg --ldflags --embed) -Wl,-rpath,"$p/lib" -ldl
  fi
  echo "## $name (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  row="instructions/pair:"
  for m in raw api guard view; do
    a=$(count "${run[@]}" "$exe" $m 2000); b=$(count "${run[@]}" "$exe" $m 22000)
    per=$(( (b - a) / 20000 ))
    if [ $m = raw ]; then base=$per; row="$row raw $per"; else row="$row, $m +$((per - base))"; fi
  done
  echo "$row"
  echo "ns/pair (raw: absolute; others: minus raw, paired per block), median [p10 p90]:"
  "${run[@]}" "$exe" time "${PEP788_BLOCKS:-31}" "${PEP788_N:-200000}"
done
