#!/usr/bin/env bash
# Exit latency of a polite real-world-shaped program, raw vs through gilgate: c_tests/idioms_ext.c
# in pybind11's idiom (4 native threads: PyThreadState_New + AcquireThread, a Python callback,
# Clear + DeleteCurrent, in a loop) stopped by an atexit handler registered before the threads
# ran, so they are still calling in when Py_FinalizeEx starts. Per CPython: median wall time of
# the process over RUNS runs each (interleaved), and gilgate's drain time (GILGATE_SHOW_STATS).
#   benches/finalize.sh [RUNS]      (default 20; every pyenv CPython >= 3.8)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release -p gilgate >&2
lib=$PWD/target/release/libgilgate.so
out=target/bench/finalize; mkdir -p "$out"
echo "| CPython | runs | raw: process wall ms, median [p10–p90] | through gilgate | difference of medians | gilgate drain µs, median [max] | drain timeouts |"
echo "|---|---|---|---|---|---|---|"
for d in "$(pyenv root 2>/dev/null || echo ~/.pyenv)"/versions/3.*; do
  v=$(basename "$d"); case $v in 3.[0-7].*) continue;; esac
  py=$d/bin/python3; [ -x "$py" ] || { echo "| $v | absent | | | | | |"; continue; }
  suffix=$("$py" -c 'import sysconfig;print(sysconfig.get_config_var("EXT_SUFFIX"))')
  mkdir -p "$out/$v"
  gcc -shared -fPIC -O2 $("$d/bin/python3-config" --includes) c_tests/idioms_ext.c -o "$out/$v/gg_idioms$suffix"
  : >"$out/$v/raw.txt"; : >"$out/$v/gg.txt"; : >"$out/$v/drain.txt"
  for i in $(seq "$runs"); do
    for mode in raw gg; do
      t0=$(date +%s%N)
      if [ $mode = raw ]; then
        PYTHONPATH=$out/$v "$py" c_tests/idioms_main.py pybind11 atexit-before >/dev/null 2>&1
      else
        PYTHONPATH=$out/$v GILGATE_SHOW_STATS=1 LD_PRELOAD=$lib "$py" c_tests/idioms_main.py pybind11 atexit-before \
          2>"$out/$v/stderr" >/dev/null
        grep -o 'drain_timeouts=[0-9]* drain_max_us=[0-9]*' "$out/$v/stderr" | tail -1 >>"$out/$v/drain.txt"
      fi
      echo $(( ($(date +%s%N) - t0) / 1000 )) >>"$out/$v/$mode.txt"
    done
  done
  python3 - "$v" "$runs" "$out/$v" <<'EOF'
import statistics, sys
v, runs, d = sys.argv[1], sys.argv[2], sys.argv[3]
def q(f):
    xs = sorted(int(x) / 1000 for x in open(f"{d}/{f}") if x.strip())
    p = lambda r: xs[min(len(xs) - 1, int(r * (len(xs) - 1) + 0.5))]
    return statistics.median(xs), p(0.1), p(0.9)
r, g = q("raw.txt"), q("gg.txt")
dr = [l.split() for l in open(f"{d}/drain.txt") if l.strip()]
us = sorted(int(x[1].split("=")[1]) for x in dr)
to = sum(int(x[0].split("=")[1]) for x in dr)
print(f"| {v} | {runs} | {r[0]:.1f} [{r[1]:.1f}–{r[2]:.1f}] | {g[0]:.1f} [{g[1]:.1f}–{g[2]:.1f}] | {g[0]-r[0]:+.1f} | "
      f"{statistics.median(us) if us else 'n/a'} [{max(us) if us else 'n/a'}] | {to} |")
EOF
done
