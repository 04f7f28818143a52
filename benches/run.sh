#!/usr/bin/env bash
# gilgate benchmarks: builds everything and runs every benchmark for every CPython found,
# printing markdown tables (see BENCHMARKS.md). Not part of the test suite.
#
#   benches/run.sh            full run (~6 minutes on a quiet 2-core machine; much longer under load)
#   BENCH_QUICK=1 benches/run.sh   a smoke run (fewer blocks/runs)
#   BENCH_PYTHONS="pyenv-3.12.1 debian-3.11" benches/run.sh   only these
#
# Raw per-version outputs are kept in target/bench/<cpython>/ (pair.txt, workload.txt, drain.txt).
set -euo pipefail
# The raw variants look libpython's functions up on its handle: gilgate must not rewrite them.
export GILGATE_DLSYM=0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/target/bench
LIB=$OUT/lib
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    export PAIR_BLOCKS=${PAIR_BLOCKS:-6} PAIR_N=${PAIR_N:-100000} PAIR_ROUNDS=${PAIR_ROUNDS:-3}
    WL_RUNS=${WL_RUNS:-3}; WL_N=${WL_N:-2000}; DRAIN_RUNS=${DRAIN_RUNS:-2}; RSS_RUNS=${RSS_RUNS:-1}
else
    export PAIR_BLOCKS=${PAIR_BLOCKS:-30} PAIR_N=${PAIR_N:-200000} PAIR_ROUNDS=${PAIR_ROUNDS:-7}
    WL_RUNS=${WL_RUNS:-10}; WL_N=${WL_N:-20000}; DRAIN_RUNS=${DRAIN_RUNS:-5}; RSS_RUNS=${RSS_RUNS:-3}
fi

echo "building libgilgate (cargo build --release -p gilgate)" >&2
cargo build --release -p gilgate >&2
mkdir -p "$LIB"
rm -f "$OUT/absent.tmp"
for n in libgilgate.so libgilgate.so.0; do
    ln -sfn "$ROOT/target/release/libgilgate.so" "$LIB/$n"
done
gcc -O2 -fPIC -shared -o "$LIB/libggshim.so" benches/shim.c

# name|python3-config|python executable
PYTHONS=()
for v in 3.8.18 3.9.18 3.10.13 3.11.7 3.12.1 3.13.0; do
    PYTHONS+=("pyenv-$v|/root/.pyenv/versions/$v/bin/python3-config|/root/.pyenv/versions/$v/bin/python3")
done
PYTHONS+=("debian-3.11|/usr/bin/python3.11-config|/usr/bin/python3.11")
# Debian unstable's 3.14/3.15 trees (scripts/debian-python.sh, fetched and cached by the tests):
# hosts built against the tree, run through its own loader. Its python executable is statically
# linked (README drop-in case c), so the preload workload there measures the interposer only.
for v in 3.14 3.15; do PYTHONS+=("debian-unstable-$v|debian:$v|"); done

PRESENT=()
for entry in "${PYTHONS[@]}"; do
    IFS='|' read -r name cfg exe <<<"$entry"
    if [ -n "${BENCH_PYTHONS:-}" ] && [[ " $BENCH_PYTHONS " != *" $name "* ]]; then continue; fi
    RUN=()
    if [[ $cfg == debian:* ]]; then
        if ! envs=$(bash scripts/debian-python.sh --env "${cfg#debian:}" 2>/dev/null); then
            echo "$name: absent ($(echo "$envs" | tail -1))" >&2
            echo "$name" >>"$OUT/absent.tmp"
            continue
        fi
        eval "$envs"
        inc=$PY_CFLAGS; ld=$PY_LDFLAGS; libdir=$PY_LIBDIR
        RUN=(env PYTHONHOME="$PY_HOME" "$PY_LOADER" --library-path "$PY_LIBRARY_PATH")
        exe=$PY_EXE
    else
        if [ ! -x "$cfg" ] || [ ! -x "$exe" ]; then
            echo "$name: absent" >&2
            echo "$name" >>"$OUT/absent.tmp"
            continue
        fi
        libdir=$("$exe" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
        inc=$("$cfg" --includes)
        ld=$("$cfg" --ldflags --embed)
    fi
    d=$OUT/$name
    mkdir -p "$d"
    common=(-O2 -Wall -Wextra -Iinclude $inc)
    echo "$name: building hosts" >&2
    # shellcheck disable=SC2086
    gcc "${common[@]}" -o "$d/pair" benches/pair.c -L"$LIB" -Wl,-rpath,"$LIB" -lgilgate -lggshim \
        $ld -Wl,-rpath,"$libdir" -ldl -lpthread
    # shellcheck disable=SC2086
    gcc "${common[@]}" -DNO_GILGATE -o "$d/pair-nogg" benches/pair.c -L"$LIB" -Wl,-rpath,"$LIB" -lggshim \
        $ld -Wl,-rpath,"$libdir" -ldl -lpthread
    # shellcheck disable=SC2086
    gcc "${common[@]}" -o "$d/drain" benches/drain.c -L"$LIB" -Wl,-rpath,"$LIB" -lgilgate \
        $ld -Wl,-rpath,"$libdir" -ldl -lpthread

    echo "$name: pair" >&2
    "${RUN[@]}" "$d/pair" >"$d/pair.txt"
    "${RUN[@]}" "$d/pair-nogg" | sed 's/^\([RD]\) \([a-z_0-9]*\) /\1 \2 nogg_/' >>"$d/pair.txt"

    # BENCH_ONLY=pair: re-measure the pairs only (the other outputs stay as they were).
    [ "${BENCH_ONLY:-}" = pair ] && { PRESENT+=("$name"); continue; }
    echo "$name: workload ($WL_RUNS x 2 interleaved runs)" >&2
    : >"$d/workload.txt"
    for ((i = 0; i < WL_RUNS; i++)); do
        if ((i % 2)); then order="pre raw"; else order="raw pre"; fi
        for w in $order; do
            if [ "$w" = pre ]; then
                t=$(LD_PRELOAD="$LIB/libgilgate.so" "${RUN[@]}" "$exe" benches/workload.py "$WL_N")
            else
                t=$("${RUN[@]}" "$exe" benches/workload.py "$WL_N")
            fi
            echo "W $w $i $t" >>"$d/workload.txt"
        done
    done

    echo "$name: drain" >&2
    : >"$d/drain.txt"
    for ((i = 0; i < DRAIN_RUNS; i++)); do
        for m in idle busy; do
            for n in 1 8 64; do
                "${RUN[@]}" "$d/drain" $m $n >>"$d/drain.txt"
            done
        done
    done
    for ((i = 0; i < RSS_RUNS; i++)); do
        "${RUN[@]}" "$d/drain" rss-raw 1000 >>"$d/drain.txt"
        "${RUN[@]}" "$d/drain" rss-gg 1000 >>"$d/drain.txt"
    done
    PRESENT+=("$name")
done

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "gilgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet -- src 2>/dev/null || echo ' (+uncommitted src changes)'); PAIR_BLOCKS=$PAIR_BLOCKS PAIR_N=$PAIR_N PAIR_ROUNDS=$PAIR_ROUNDS WL_RUNS=$WL_RUNS WL_N=$WL_N DRAIN_RUNS=$DRAIN_RUNS"
} >"$OUT/meta.txt"
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$PY" benches/tables.py "$OUT" "${PRESENT[@]}"
if [ -f "$OUT/absent.tmp" ]; then
    sed 's/$/: absent/' "$OUT/absent.tmp"
    rm -f "$OUT/absent.tmp"
fi
