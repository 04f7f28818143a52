#!/usr/bin/env bash
# real-suites.sh -- run test suites nobody here wrote, raw and under LD_PRELOAD=libgilgate.so,
# and compare: per-test outcomes, pass/fail/skip counts, whole-process exit status, time.
# Not part of ./test.sh (it downloads from PyPI and takes minutes per CPython).
#
# Usage: bash scripts/real-suites.sh [VERSION...]
#   VERSION: a pyenv version under ~/.pyenv/versions (3.12.1), or debian-3.14 (Debian
#   unstable's build from scripts/debian-python.sh, run through its own loader).
#   Default: every pyenv 3.8+ version found.
#
# Per CPython (one at a time; a venv per CPython, pip installs from PyPI):
#   pybind11  the pybind11 sdist's own tests (pip download pybind11 --no-binary :all:), built
#             with cmake/ninja, only test_gil_scoped.cpp, test_thread.cpp, test_call_policies.cpp
#             (PYBIND11_TEST_OVERRIDE) plus cross_module_gil_utils; pytest runs
#             test_gil_scoped.py test_thread.py test_call_policies.py. Then its embedding tests
#             (tests/test_with_catch: an executable linking libpython; Py_Initialize/Finalize
#             cycles, threads, subinterpreters), with Catch 2.13 from Debian's catch2 package
#             (apt-get download + dpkg -x into the cache; DOWNLOAD_CATCH needs github.com).
#             pybind11 >= 3 needs Python 3.9+ and the 2.13.6 sdist ships no tests/: on 3.8
#             this suite is absent (the daemon check uses 2.13.6's headers).
#   numpy     the numpy wheel's own tests: python -m pytest --pyargs numpy -k "thread or Thread"
#             (f2py ignored: its tests need meson and a Fortran compiler; about 6 min per run
#             with numpy 2.5 on a loaded 2-core machine), or with REAL_SUITES_NUMPY=mt only
#             numpy/_core/tests/test_multithreading.py where it exists (else -k as above).
#   daemon    8 threading daemon threads looping over a pybind11 function that sleeps 2 ms
#             inside py::gil_scoped_release; the main thread returns (REAL_SUITES_DAEMON_RUNS
#             runs, default 8). Raw 3.9-3.13 mostly abort ("terminate called without an
#             active exception", pybind11 issue 1360; raw 3.8 and 3.14 exit 0); preloaded must
#             exit 0 with an empty stderr (the row's "same" column checks only that).
# Environment:
#   REAL_SUITES_CACHE   cache dir (default ${GILGATE_CACHE:-~/.cache/gilgate}/real-suites)
#   GILGATE_LIB         the library to preload (default target/release/libgilgate.so; built
#                       with cargo if missing)
#   REAL_SUITES_ONLY    space-separated subset of: pybind11 numpy daemon gdb
#   REAL_SUITES_NUMPY   k (default) | mt
#   REAL_SUITES_JOBS    build parallelism (default 2)
#   REAL_SUITES_GDB_RUNS, REAL_SUITES_DAEMON_RUNS, REAL_SUITES_TIMEOUT (s per pytest run, 1800)
#   GILGATE_ROOT        the checkout (default: this script's parent directory)
# The table in docs/testing.md: REAL_SUITES_NUMPY=mt bash scripts/real-suites.sh \
#   3.8.18 3.9.18 3.10.13 3.11.7 3.12.1 3.13.0 debian-3.14
# Output: a table on stdout (markdown), logs and per-test outcome lists under
# $REAL_SUITES_CACHE/out/<timestamp>/. Exit status 0 when raw and preloaded agree everywhere
# (and the daemon check holds), 1 otherwise.

set -uo pipefail

ROOT=${GILGATE_ROOT:-$(cd "$(dirname "$0")/.." && pwd -P)}
CACHE=${REAL_SUITES_CACHE:-${GILGATE_CACHE:-$HOME/.cache/gilgate}/real-suites}
LIB=${GILGATE_LIB:-$ROOT/target/release/libgilgate.so}
ONLY=${REAL_SUITES_ONLY:-pybind11 numpy daemon gdb}
NUMPY_SCOPE=${REAL_SUITES_NUMPY:-k}
JOBS=${REAL_SUITES_JOBS:-2}
GDB_RUNS=${REAL_SUITES_GDB_RUNS:-10}
DAEMON_RUNS=${REAL_SUITES_DAEMON_RUNS:-8}
PYBIND11_VERSION=${REAL_SUITES_PYBIND11:-3.1.0}
PYBIND11_OLD=2.13.6            # last series supporting 3.8
SUITE_TIMEOUT=${REAL_SUITES_TIMEOUT:-1800}

log() { printf 'real-suites: %s\n' "$*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

mkdir -p "$CACHE/src" || exit 2
OUT=$CACHE/out/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
ROWS=$OUT/rows.md
DIFFS=$OUT/differences.txt
ABSENT=$OUT/absent.txt
: > "$ROWS"; : > "$DIFFS"; : > "$ABSENT"
BAD=0

if [[ ! -f $LIB ]]; then
    log "building $LIB"
    (cd "$ROOT" && cargo build --release -p gilgate) >&2 || { log "cannot build $LIB"; exit 2; }
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
absent() { printf '%s\t%s\n' "$1" "$2" >> "$ABSENT"; log "ABSENT $1: $2"; }

# ---------------------------------------------------------------------------
# Interpreters: PY runs the interpreter (a venv's python, or the Debian tree's python3.X-run
# wrapper, which execs the tree's loader; LD_PRELOAD reaches both the same way).
# ---------------------------------------------------------------------------
setup_pyenv() {  # $1 version -> VENV, PY
    local v=$1 base=$HOME/.pyenv/versions/$1/bin/python
    [[ -x $base ]] || { absent "$v" "no $base"; return 1; }
    VENV=$CACHE/venv-$v
    if [[ ! -x $VENV/bin/python ]]; then
        "$base" -m venv "$VENV" >&2 || { absent "$v" "venv failed"; return 1; }
    fi
    PY=$VENV/bin/python
    if ! "$PY" -c 'import pytest, numpy, hypothesis, ninja' 2>/dev/null; then
        log "$v: pip install pytest pytest-timeout ninja numpy hypothesis"
        "$PY" -m pip install -q --disable-pip-version-check pytest pytest-timeout ninja numpy hypothesis >&2 \
            || { absent "$v" "pip install failed"; return 1; }
    fi
    NINJA=$VENV/bin/ninja
    CMAKE_EXTRA=()
    PYTAG=$v
    return 0
}

# Debian unstable's 3.14/3.15: no pip/venv in the tree; wheels are installed with a host pip
# into a --target dir for the tree's ABI, and PYTHONPATH points there.
setup_debian() {  # $1 = debian-3.X
    local ver=${1#debian-} env
    env=$(bash "$ROOT/scripts/debian-python.sh" --env "$ver" 2>"$OUT/debian-$ver.log") \
        || { absent "$1" "debian-python.sh: $(tail -n1 <<<"$env")"; return 1; }
    eval "$env"
    local abi=cp${ver//./} site=$CACHE/site-debian-$ver hostpy
    hostpy=$(ls -d "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python 2>/dev/null | tail -n1)
    [[ -n $hostpy ]] || { absent "$1" "no host python with pip for the --target install"; return 1; }
    if [[ ! -d $site/numpy ]]; then
        log "$1: pip install --target $site (platform manylinux, $abi)"
        "$hostpy" -m pip install -q --disable-pip-version-check --target "$site" --only-binary :all: \
            --python-version "$ver" --implementation cp --abi "$abi" --abi abi3 --abi none \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any pytest pytest-timeout numpy hypothesis ninja >&2 \
            || { absent "$1" "pip --target install failed"; return 1; }
    fi
    export PYTHONPATH=$site
    PY=$PY_PYTHON            # the tree's python3.X-run wrapper (loader + library path)
    NINJA=$site/bin/ninja
    # Debian's pyconfig.h dispatches to <x86_64-linux-gnu/python3.X/pyconfig.h>
    # libpython references newer GLIBC_2.xx symbols than the host's libc.so has (test_with_catch)
    CMAKE_EXTRA=(-DCMAKE_CXX_FLAGS="$PY_CFLAGS" -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined)
    PYTAG=$1
    return 0
}

# run_py MODE LOG -- ARGS: run the interpreter raw or preloaded, record exit status and time.
run_py() {
    local mode=$1 logf=$2; shift 3
    local t0 rc
    t0=$(now)
    if [[ $mode == pre ]]; then
        LD_PRELOAD=$LIB${LD_PRELOAD:+:$LD_PRELOAD} timeout "$SUITE_TIMEOUT" "$PY" "$@" > "$logf" 2>&1; rc=$?
    else
        timeout "$SUITE_TIMEOUT" "$PY" "$@" > "$logf" 2>&1; rc=$?
    fi
    RUN_RC=$rc
    RUN_T=$(secs "$t0" "$(now)")
}

# pytest's -rA short summary -> "OUTCOME nodeid" lines, sorted; the final line -> counts
outcomes() { sed -nE 's/^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\[[0-9]+\] )?([^ ]+).*/\1 \3/p' "$1" | sort; }
counts() {
    local l
    l=$(grep -E '^=+ .*(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' "$1" | tail -n1 \
        | sed -E 's/^=+ //; s/ =+$//; s/ in [0-9.]+s( \([0-9:]+\))?$//; s/, [0-9]+ deselected//; s/, [0-9]+ warnings?//')
    [[ -n $l ]] && echo "$l" || echo "(no summary: $(tail -n1 "$1" | cut -c1-60))"
}

key() { tr -c 'A-Za-z0-9.\n-' '_' <<<"$1"; }
compare_pytest() {  # display-name rc-raw time-raw rc-pre time-pre (logs: $OUT/$PYTAG.<key>.{raw,pre}.log)
    local suite=$1 rraw=$2 traw=$3 rpre=$4 tpre=$5
    local b=$OUT/$PYTAG.$(key "$suite") craw cpre same=yes
    outcomes "$b.raw.log" > "$b.raw.outcomes"
    outcomes "$b.pre.log" > "$b.pre.outcomes"
    craw=$(counts "$b.raw.log"); cpre=$(counts "$b.pre.log")
    if [[ $rraw != "$rpre" || $craw != "$cpre" ]] || ! cmp -s "$b.raw.outcomes" "$b.pre.outcomes"; then
        same=**no**; BAD=1
        {
            echo "== $PYTAG $suite: raw exit $rraw ($craw), preloaded exit $rpre ($cpre)"
            diff "$b.raw.outcomes" "$b.pre.outcomes" | sed -n 's/^[<>] /  &/p'
            echo "  logs: $b.raw.log $b.pre.log"
        } >> "$DIFFS"
    fi
    printf '| %s | %s | %s | %s | %ss | %s | %s | %ss | %s |\n' "$PYTAG" "$suite" "$craw" "$rraw" "$traw" \
        "$cpre" "$rpre" "$tpre" "$same" >> "$ROWS"
}

# ---------------------------------------------------------------------------
# pybind11's own tests
# ---------------------------------------------------------------------------
pybind11_src() {  # $1 version -> echoes the source dir
    local ver=$1 d=$CACHE/src/pybind11-$1
    if [[ ! -f $d/pyproject.toml ]]; then
        log "pip download pybind11==$ver --no-binary :all:"
        "$PY" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
            -d "$CACHE/src" "pybind11==$ver" >&2 || return 1
        tar -xzf "$CACHE/src/pybind11-$ver.tar.gz" -C "$CACHE/src" || return 1
    fi
    echo "$d"
}

suite_pybind11() {
    local ver=$PYBIND11_VERSION src bld
    [[ $("$PY" -c 'import sys; print(sys.version_info[:2] < (3, 9))') == True ]] && ver=$PYBIND11_OLD
    src=$(pybind11_src "$ver") || { absent "$PYTAG" "pybind11 $ver sdist download failed"; return; }
    [[ -f $src/tests/test_gil_scoped.py ]] \
        || { absent "$PYTAG" "pybind11 suite: pybind11 >= 3 needs Python 3.9+ and the $ver sdist ships no tests/"; return; }
    bld=$CACHE/build-pybind11-$ver-$PYTAG
    local exe=$PY
    if [[ ! -f $bld/build.ok ]]; then
        log "$PYTAG: building pybind11 $ver tests (cmake, ninja -j$JOBS)"
        cmake -G Ninja -S "$src" -B "$bld" -DCMAKE_MAKE_PROGRAM="$NINJA" -DPYBIND11_TEST=ON \
            -DPYBIND11_FINDPYTHON=ON -DPython_EXECUTABLE="$exe" -DPYTHON_EXECUTABLE="$exe" \
            -DPYBIND11_TEST_OVERRIDE="test_gil_scoped.cpp;test_thread.cpp;test_call_policies.cpp" \
            -DCMAKE_BUILD_TYPE=Release "${CMAKE_EXTRA[@]}" > "$OUT/$PYTAG.pybind11.cmake.log" 2>&1 \
            && nice "$NINJA" -C "$bld" -j"$JOBS" pybind11_tests cross_module_gil_utils >> "$OUT/$PYTAG.pybind11.cmake.log" 2>&1 \
            && touch "$bld/build.ok" \
            || { absent "$PYTAG" "pybind11 $ver test build failed ($OUT/$PYTAG.pybind11.cmake.log)"; return; }
    fi
    local t=$src/tests r1 t1 r2 t2
    local files=("$t/test_gil_scoped.py" "$t/test_thread.py" "$t/test_call_policies.py")
    pushd "$bld/tests" >/dev/null || return
    local k; k=$(key "pybind11 $ver")
    log "$PYTAG: pybind11 $ver pytest raw"
    run_py raw "$OUT/$PYTAG.$k.raw.log" -- -m pytest -p no:cacheprovider -rA "${files[@]}"; r1=$RUN_RC; t1=$RUN_T
    log "$PYTAG: pybind11 $ver pytest preloaded"
    run_py pre "$OUT/$PYTAG.$k.pre.log" -- -m pytest -p no:cacheprovider -rA "${files[@]}"; r2=$RUN_RC; t2=$RUN_T
    popd >/dev/null || return
    compare_pytest "pybind11 $ver" "$r1" "$t1" "$r2" "$t2"
    suite_pybind11_embed "$src" "$bld" "$ver"
}

# pybind11's embedding tests (tests/test_with_catch: an executable linking libpython that
# initializes, finalizes and re-initializes the interpreter, runs threads and subinterpreters).
# Needs Catch 2.13: Debian's catch2 package, fetched with apt-get download into the cache.
catch2_dir() {
    local d=$CACHE/catch2
    if [[ ! -f $d/root/usr/include/catch2/catch.hpp ]]; then
        mkdir -p "$d"
        (cd "$d" && apt-get download catch2 >&2 && dpkg -x catch2_*.deb root) || return 1
    fi
    echo "$d/root/usr/include/catch2"
}

suite_pybind11_embed() {
    local src=$1 bld=$2 ver=$3 cdir
    cdir=$(catch2_dir) || { absent "$PYTAG" "pybind11 embedding tests: no Catch2 (apt-get download catch2 failed)"; return; }
    if [[ ! -f $bld/embed.ok ]]; then
        log "$PYTAG: building pybind11 $ver test_with_catch"
        cmake "$bld" -DCATCH_INCLUDE_DIR="$cdir" "${CMAKE_EXTRA[@]}" >> "$OUT/$PYTAG.pybind11.cmake.log" 2>&1 \
            && nice "$NINJA" -C "$bld" -j"$JOBS" test_with_catch external_module >> "$OUT/$PYTAG.pybind11.cmake.log" 2>&1 \
            && touch "$bld/embed.ok" \
            || { absent "$PYTAG" "pybind11 test_with_catch build failed ($OUT/$PYTAG.pybind11.cmake.log)"; return; }
    fi
    local mode k rc t0 rr rt pr pt sr sp
    k=$(key "pybind11 $ver test_with_catch")
    for mode in raw pre; do
        log "$PYTAG: pybind11 $ver test_with_catch $mode"
        t0=$(now)
        (
            cd "$bld/tests/test_with_catch" || exit 99
            pre=(); [[ $mode == pre ]] && pre=(env LD_PRELOAD="$LIB")
            if [[ $PYTAG == debian-* ]]; then
                exec "${pre[@]}" env PYTHONHOME="$PY_HOME" timeout "$SUITE_TIMEOUT" "$PY_LOADER" \
                    --library-path "$PY_LIBRARY_PATH" ./test_with_catch
            else
                exec "${pre[@]}" timeout "$SUITE_TIMEOUT" ./test_with_catch
            fi
        ) > "$OUT/$PYTAG.$k.$mode.log" 2>&1
        rc=$?
        if [[ $mode == raw ]]; then rr=$rc; rt=$(secs "$t0" "$(now)"); else pr=$rc; pt=$(secs "$t0" "$(now)"); fi
    done
    # pybind11's progress reporter: "[       OK ] name", "[  FAILED  ] name", "[  PASSED  ] 34 test
    # cases, 11360 assertions." (Catch's own "All tests passed"/"test cases:" lines otherwise)
    catch_summary() {
        grep -E '^(\[ *(PASSED|FAILED) *\] [0-9]+ test case|All tests passed|test cases:)' "$1" | tail -n1 \
            | sed -E 's/^\[ *([A-Z]+) *\] /\1: /; s/ *\| */, /g; s/\.$//'
    }
    sed -nE 's/^\[ *(OK|FAILED|SKIPPED) *\] (.*)/\1 \2/p' "$OUT/$PYTAG.$k.raw.log" | sort > "$OUT/$PYTAG.$k.raw.outcomes"
    sed -nE 's/^\[ *(OK|FAILED|SKIPPED) *\] (.*)/\1 \2/p' "$OUT/$PYTAG.$k.pre.log" | sort > "$OUT/$PYTAG.$k.pre.outcomes"
    sr=$(catch_summary "$OUT/$PYTAG.$k.raw.log"); sp=$(catch_summary "$OUT/$PYTAG.$k.pre.log")
    [[ -n $sr ]] || sr="(no summary: $(tail -n1 "$OUT/$PYTAG.$k.raw.log" | cut -c1-60))"
    [[ -n $sp ]] || sp="(no summary: $(tail -n1 "$OUT/$PYTAG.$k.pre.log" | cut -c1-60))"
    local same=yes
    if [[ $rr != "$pr" || $sr != "$sp" ]] || ! cmp -s "$OUT/$PYTAG.$k.raw.outcomes" "$OUT/$PYTAG.$k.pre.outcomes"; then
        same=**no**; BAD=1
        {
            echo "== $PYTAG pybind11 $ver test_with_catch: raw exit $rr ($sr), preloaded exit $pr ($sp)"
            diff "$OUT/$PYTAG.$k.raw.outcomes" "$OUT/$PYTAG.$k.pre.outcomes" | sed -n 's/^[<>] /  &/p'
            tail -n 5 "$OUT/$PYTAG.$k.pre.log" | sed 's/^/  pre: /'
            echo "  logs: $OUT/$PYTAG.$k.raw.log $OUT/$PYTAG.$k.pre.log"
        } >> "$DIFFS"
    fi
    printf '| %s | %s | %s | %s | %ss | %s | %s | %ss | %s |\n' "$PYTAG" "pybind11 $ver test_with_catch (embedding)" \
        "$sr" "$rr" "$rt" "$sp" "$pr" "$pt" "$same" >> "$ROWS"
}

# ---------------------------------------------------------------------------
# numpy's own tests
# ---------------------------------------------------------------------------
suite_numpy() {
    local nd nv args r1 t1 r2 t2 name
    nd=$("$PY" -c 'import numpy, os; print(os.path.dirname(numpy.__file__))' 2>/dev/null) \
        || { absent "$PYTAG" "numpy does not import"; return; }
    nv=$("$PY" -c 'import numpy; print(numpy.__version__)')
    if [[ $NUMPY_SCOPE == mt && -f $nd/_core/tests/test_multithreading.py ]]; then
        args=("$nd/_core/tests/test_multithreading.py"); name="numpy $nv test_multithreading.py"
    else
        args=(--ignore="$nd/f2py" --pyargs numpy -k "thread or Thread"); name="numpy $nv -k thread"
    fi
    mkdir -p "$OUT/numpy-cwd"; pushd "$OUT/numpy-cwd" >/dev/null || return
    local k; k=$(key "$name")
    log "$PYTAG: $name raw"
    run_py raw "$OUT/$PYTAG.$k.raw.log" -- -m pytest -p no:cacheprovider -rA "${args[@]}"; r1=$RUN_RC; t1=$RUN_T
    log "$PYTAG: $name preloaded"
    run_py pre "$OUT/$PYTAG.$k.pre.log" -- -m pytest -p no:cacheprovider -rA "${args[@]}"; r2=$RUN_RC; t2=$RUN_T
    popd >/dev/null || return
    compare_pytest "$name" "$r1" "$t1" "$r2" "$t2"
}

# ---------------------------------------------------------------------------
# daemon threads inside py::gil_scoped_release (the pybind11 issue 1360 crash)
# ---------------------------------------------------------------------------
suite_daemon() {
    local ver=$PYBIND11_VERSION src d=$CACHE/daemon-$PYTAG inc ext
    [[ $("$PY" -c 'import sys; print(sys.version_info[:2] < (3, 9))') == True ]] && ver=$PYBIND11_OLD
    src=$(pybind11_src "$ver") || { absent "$PYTAG" "pybind11 sdist download failed"; return; }
    mkdir -p "$d"
    local p11inc=$src/include; [[ -d $p11inc/pybind11 ]] || p11inc=$src/pybind11/include   # 2.x sdist layout
    inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    ext=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    if [[ ! -f $d/gg_daemon$ext ]]; then
        cat > "$d/gg_daemon.cpp" <<'EOF'
#include <pybind11/pybind11.h>
#include <chrono>
#include <thread>
namespace py = pybind11;
PYBIND11_MODULE(gg_daemon, m) {
    m.def("sleep_released", [](int ms) {
        py::gil_scoped_release release;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    });
}
EOF
        local extra=()
        [[ $PYTAG == debian-* ]] && extra=($PY_CFLAGS)
        g++ -O2 -shared -fPIC -std=c++17 -I"$p11inc" -I"$inc" "${extra[@]}" "$d/gg_daemon.cpp" \
            -o "$d/gg_daemon$ext" 2> "$d/build.log" || { absent "$PYTAG" "daemon module build failed ($d/build.log)"; return; }
    fi
    cat > "$d/prog.py" <<'EOF'
import threading, time, gg_daemon
def loop():
    while True:
        gg_daemon.sleep_released(2)
for _ in range(8):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.2)
EOF
    local mode i rc t0 st
    for mode in raw pre; do
        declare -A seen=()
        local ok=0 tsum=0 errs=""
        for ((i = 0; i < DAEMON_RUNS; i++)); do
            t0=$(now)
            if [[ $mode == pre ]]; then
                (cd "$d" && LD_PRELOAD=$LIB timeout 60 "$PY" prog.py > out.txt 2> err.txt) 2>/dev/null; rc=$?
            else
                (cd "$d" && timeout 60 "$PY" prog.py > out.txt 2> err.txt) 2>/dev/null; rc=$?
            fi
            tsum=$(awk -v a="$tsum" -v b="$(secs "$t0" "$(now)")" 'BEGIN { print a + b }')
            st=$(head -c 200 "$d/err.txt" | tr '\n' ' ' | sed 's/ *$//')
            [[ -z $st ]] && st="(empty stderr)"
            seen["exit $rc, $st"]=$(( ${seen["exit $rc, $st"]:-0} + 1 ))
            cp "$d/err.txt" "$OUT/$PYTAG.daemon.$mode.$i.err"
        done
        local k summary=""
        for k in "${!seen[@]}"; do summary+="${seen[$k]}x $k; "; done
        summary=${summary%; }
        eval "DAEMON_$mode=\$summary"
        eval "DAEMON_T_$mode=\$(awk -v s=\$tsum -v n=\$DAEMON_RUNS 'BEGIN { printf \"%.2f\", s / n }')"
        unset seen
    done
    local verdict=ok
    if [[ $DAEMON_pre != "${DAEMON_RUNS}x exit 0, (empty stderr)" ]]; then
        verdict=**no**; BAD=1
        echo "== $PYTAG daemon: preloaded runs were not all exit 0 with empty stderr: $DAEMON_pre (stderr in $OUT/$PYTAG.daemon.pre.*.err)" >> "$DIFFS"
    fi
    printf '| %s | daemon threads in gil_scoped_release (pybind11 %s), %d runs | %s | | %ss/run | %s | | %ss/run | %s |\n' \
        "$PYTAG" "$ver" "$DAEMON_RUNS" "$DAEMON_raw" "$DAEMON_T_raw" "$DAEMON_pre" "$DAEMON_T_pre" "$verdict" >> "$ROWS"
}

# ---------------------------------------------------------------------------
# gdb as a host (its own libpython)
# ---------------------------------------------------------------------------
suite_gdb() {
    local gdb=/usr/bin/gdb lp
    [[ -x $gdb ]] || { absent gdb "no /usr/bin/gdb"; return; }
    lp=$(ldd "$gdb" | awk '/libpython/ { print $1 }')
    [[ -n $lp ]] || { absent gdb "gdb does not link libpython"; return; }
    local code='import threading,time; [threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(int,1)], daemon=True).start() for _ in range(4)]'
    local mode i rc t0 tsum
    for mode in raw pre; do
        declare -A seen=()
        tsum=0
        for ((i = 0; i < GDB_RUNS; i++)); do
            t0=$(now)
            if [[ $mode == pre ]]; then
                LD_PRELOAD=$LIB timeout 60 "$gdb" -nx -batch -ex "python $code" -ex 'python print("ok")' > "$OUT/gdb.out" 2> "$OUT/gdb.err"; rc=$?
            else
                timeout 60 "$gdb" -nx -batch -ex "python $code" -ex 'python print("ok")' > "$OUT/gdb.out" 2> "$OUT/gdb.err"; rc=$?
            fi
            tsum=$(awk -v a="$tsum" -v b="$(secs "$t0" "$(now)")" 'BEGIN { print a + b }')
            local k="exit $rc, stdout \"$(tr '\n' ' ' < "$OUT/gdb.out" | sed 's/ *$//')\", stderr \"$(head -c 200 "$OUT/gdb.err" | tr '\n' ' ' | sed 's/ *$//')\""
            seen[$k]=$(( ${seen[$k]:-0} + 1 ))
            cp "$OUT/gdb.err" "$OUT/gdb.$mode.$i.err"
        done
        local s="" k
        for k in "${!seen[@]}"; do s+="${seen[$k]}x $k; "; done
        eval "GDB_$mode=\${s%; }"
        eval "GDB_T_$mode=\$(awk -v s=\$tsum -v n=\$GDB_RUNS 'BEGIN { printf \"%.2f\", s / n }')"
        unset seen
    done
    local same=yes gv
    gv=$("$gdb" --version | head -n1)
    [[ $GDB_raw == "$GDB_pre" ]] || { same=**no**; BAD=1; echo "== gdb: raw [$GDB_raw] vs preloaded [$GDB_pre]" >> "$DIFFS"; }
    printf '| %s (%s) | gdb -batch, 4 daemon threads, %d runs | %s | | %ss/run | %s | | %ss/run | %s |\n' \
        "$gv" "${lp%.so*}" "$GDB_RUNS" "$GDB_raw" "$GDB_T_raw" "$GDB_pre" "$GDB_T_pre" "$same" >> "$ROWS"
}

# ---------------------------------------------------------------------------
VERSIONS=("$@")
if (( ${#VERSIONS[@]} == 0 )); then
    for p in "$HOME"/.pyenv/versions/3.*; do
        v=${p##*/}; [[ $v =~ ^3\.([0-9]+)\. ]] && (( BASH_REMATCH[1] >= 8 )) && VERSIONS+=("$v")
    done
fi

want pybind11 || want numpy || want daemon || VERSIONS=()
for v in "${VERSIONS[@]}"; do
    unset PYTHONPATH
    if [[ $v == debian-* ]]; then setup_debian "$v" || continue; else setup_pyenv "$v" || continue; fi
    want pybind11 && suite_pybind11
    want numpy && suite_numpy
    want daemon && suite_daemon
done
unset PYTHONPATH
want gdb && suite_gdb

{
    echo "Real test suites under LD_PRELOAD=$LIB ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), glibc $(ldd --version | head -n1 | awk '{print $NF}'), gilgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null), library built $(date -u -r "$LIB" '+%H:%M:%S UTC') md5 $(md5sum < "$LIB" | cut -c1-12))"
    echo
    echo "| CPython | suite | raw counts | raw exit | raw time | preloaded counts | preloaded exit | preloaded time | same |"
    echo "|---|---|---|---|---|---|---|---|---|"
    cat "$ROWS"
    echo
    if [[ -s $DIFFS ]]; then echo "Differences:"; cat "$DIFFS"; else echo "Differences: none"; fi
    if [[ -s $ABSENT ]]; then echo; echo "Absent / not run:"; sed 's/^/  /' "$ABSENT"; fi
    echo
    echo "logs: $OUT"
} | tee "$OUT/table.md"
exit $BAD
