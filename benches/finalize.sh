#!/usr/bin/env bash
# Exit latency, raw vs through gilgate: whole-process wall time (median, p10–p90) and exit status
# counts over RUNS interleaved runs, per CPython, of three programs (benches/finalize.py has the
# details):
#   polite  c_tests/idioms_ext.c in pybind11's idiom, 4 native threads calling in while
#           Py_FinalizeEx starts, stopped by an atexit handler registered before they ran;
#   rude    benches/exit_rude.{c,py}: 4 native threads of a ctypes-loaded library calling a
#           CFUNCTYPE callback in a loop when the main thread returns;
#   daemon  benches/exit_daemon{_ext.c,.py}: 8 Python daemon threads in an extension function's
#           Py_BEGIN_ALLOW_THREADS; usleep(2000); Py_END_ALLOW_THREADS loop when main returns.
# Through gilgate: LD_PRELOAD with gilgate's defaults; the drain column from separate untimed runs with
# GILGATE_SHOW_STATS=1 (its exit-time line lengthens the exit: see benches/finalize.py).
# CPythons: every pyenv CPython >= 3.8, Debian's python3.11, Debian unstable 3.14/3.15 if their
# trees are cached (scripts/debian-python.sh); absent ones are listed.
#   benches/finalize.sh [RUNS]      (default 20)
#   GILGATE_LIB=<path> benches/finalize.sh   another build (before/after), nothing rebuilt
#   FINALIZE_PROGRAMS="rude daemon" FINALIZE_PYTHONS="3.12 debian-unstable" FINALIZE_TIMEOUT=30
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
if [ -z "${GILGATE_LIB:-}" ]; then
  cargo build --release -p gilgate >&2
  GILGATE_LIB=$PWD/target/release/libgilgate.so
fi
exec python3 benches/finalize.py "$runs" "$GILGATE_LIB" target/bench/finalize
