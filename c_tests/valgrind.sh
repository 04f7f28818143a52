#!/usr/bin/env bash
# Valgrind over the C test hosts for one CPython: memcheck (errors + leaks) and a thread checker
# (DRD by default). Policy and suppressions: docs/valgrind.md, c_tests/valgrind.supp,
# c_tests/valgrind_report.py.
#
# usage: c_tests/valgrind.sh PYTHON_PREFIX        e.g. /root/.pyenv/versions/3.12.1
#        c_tests/valgrind.sh ~/.cache/gilgate/debian-python/3.14d/tree/usr   (a Debian unstable
#        tree of scripts/debian-python.sh, e.g. the Py_DEBUG 3.14d: the hosts run through the
#        tree's own dynamic loader, whose symbols valgrind needs: debian-python.sh puts its
#        debug file from libc6-dbg next to it, <libdir>/.debug/)
#
# Needs the hosts built by the c_hosts suite first (target/c_tests/c_hosts/<python-name>/,
# target/c_tests/c_hosts/no_python), e.g.:
#   cargo build --release -p gilgate
#   GILGATE_TEST_RUNS=1 GILGATE_DEBIAN_PYTHONS=0 cargo test --release -p gilgate-harness --test c_hosts
#
# Environment:
#   VG_THREAD_TOOL=drd|helgrind   thread checker (default drd; helgrind is much slower)
#   VG_JOBS=N                     checks run in parallel (default: number of CPUs)
#   VG_TIMEOUT=S                  per-check timeout in seconds (default 480; a check takes 10-60 s on an idle 2-CPU box)
#   VG_KEEP=DIR                   keep the XML/logs in DIR (default: a temp dir, removed on pass)
#   VG_CHECKS=all|memcheck        which checks (default all; test.sh runs memcheck only on the
#                                 Py_DEBUG build: docs/valgrind.md says why)
# Prints one line per check and "N passed, N failed"; exits 1 if any check failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
prefix=${1:?usage: $0 PYTHON_PREFIX}
prefix=$(cd "$prefix" && pwd) || exit 2
tool=${VG_THREAD_TOOL:-drd}
jobs=${VG_JOBS:-$(nproc 2>/dev/null || echo 2)}
tmo=${VG_TIMEOUT:-480}
supp="$here/valgrind.supp"
report="$here/valgrind_report.py"
ct="${VG_HOSTS_DIR:-$root/target/c_tests/c_hosts}"

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)"; exit 2; }
command -v python3 >/dev/null || { echo "python3 not found"; exit 2; }

# The build directory whose binaries run against this prefix's libpython (their RUNPATH says so).
bindir=""
for d in "$ct"/*/; do
    [ -x "$d/api_edges-c-gilgate" ] || continue
    if readelf -d "$d/api_edges-c-gilgate" 2>/dev/null | grep -q "$prefix/lib"; then bindir=${d%/}; break; fi
done
if [ -z "$bindir" ] && [ -x "$ct/pyenv-$(basename "$prefix")/api_edges-c-gilgate" ]; then
    bindir="$ct/pyenv-$(basename "$prefix")"
fi
if [ -z "$bindir" ] || [ ! -x "$ct/no_python" ]; then
    echo "no C test hosts built for $prefix under $ct (run the c_hosts harness test first)"; exit 2
fi
name=$(basename "$bindir")

# A Debian unstable tree (scripts/debian-python.sh): run every host through the tree's loader
# with the tree's libraries (its glibc is newer than the machine's), PYTHONHOME set.
runner=()
pyhome=()
if [ -f "$prefix/../../complete.stamp" ]; then
    multi=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
    loader=$(ls "$prefix/lib/$multi"/ld-linux*.so.* 2>/dev/null | head -1)
    [ -n "$loader" ] || { echo "no dynamic loader in $prefix/lib/$multi"; exit 2; }
    if ! ls "$prefix/lib/$multi/.debug/"*.debug >/dev/null 2>&1; then
        echo "no debug file for $loader under $prefix/lib/$multi/.debug (valgrind cannot start without its symbols; refetch with scripts/debian-python.sh)"; exit 2
    fi
    runner=("$loader" --library-path "$prefix/lib/$multi")
    pyhome=(PYTHONHOME="$prefix")   # the hosts only: not this script's own python3
fi

out=${VG_KEEP:-$(mktemp -d /tmp/gilgate-valgrind.XXXXXX)}
mkdir -p "$out"

common=(--num-callers=50 --suppressions="$supp" --xml=yes --child-silent-after-fork=yes)
memcheck=(--tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
          --errors-for-leak-kinds=definite)
case "$tool" in
    drd) thread=(--tool=drd) ;;
    helgrind) thread=(--tool=helgrind) ;;
    *) echo "VG_THREAD_TOOL must be drd or helgrind"; exit 2 ;;
esac

# id | kind (memcheck|thread) | binary and arguments
checks=(
    "memcheck-no_python|memcheck|$ct/no_python|host"
    "memcheck-api_edges|memcheck|$bindir/api_edges-c-gilgate"
    "memcheck-seed-gilstate|memcheck|$bindir/seed_host-c-gilgate gilstate 2 20000 1 1"
    "memcheck-seed-tstate|memcheck|$bindir/seed_host-c-gilgate tstate 2 20000 1 2"
    "memcheck-seed-callback-3cycles|memcheck|$bindir/seed_host-c-gilgate callback 2 20000 3 3"
    "$tool-api_edges|thread|$bindir/api_edges-c-gilgate"
    "$tool-seed-gilstate|thread|$bindir/seed_host-c-gilgate gilstate 2 20000 1 1"
    "$tool-seed-tstate|thread|$bindir/seed_host-c-gilgate tstate 2 20000 1 2"
)

if [ "${VG_CHECKS:-all}" = memcheck ]; then
    kept=()
    for c in "${checks[@]}"; do case $c in *"|memcheck|"*) kept+=("$c") ;; esac; done
    checks=("${kept[@]}")
fi

run_one() { # id kind cmd...
    local id=$1 kind=$2; shift 2
    local xml="$out/$id.xml" log="$out/$id.log" opts
    if [ "$kind" = memcheck ]; then opts=("${memcheck[@]}"); else opts=("${thread[@]}"); fi
    local pre=("${runner[@]}")
    if [ "${1:-}" = host ]; then pre=(); shift; fi   # no_python: the machine's own loader
    env "${pyhome[@]}" PYTHONMALLOC=malloc timeout -k 10 "$tmo" valgrind "${opts[@]}" "${common[@]}" \
        --xml-file="$xml" "${pre[@]}" "$@" >"$log" 2>&1
    echo $? >"$out/$id.rc"
}

start=$(date +%s)
pids=()
for c in "${checks[@]}"; do
    IFS='|' read -r id kind cmd where <<<"$c"
    # shellcheck disable=SC2086  # cmd is a binary plus plain words
    if [ "$where" = host ]; then run_one "$id" "$kind" host $cmd & else run_one "$id" "$kind" $cmd & fi
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 0.5; done
done
for p in "${pids[@]}"; do wait "$p"; done

pass=0 fail=0
echo "valgrind $(valgrind --version | sed 's/valgrind-//') over $name ($prefix), checks: ${VG_CHECKS:-all} (thread checker: $tool)"
for c in "${checks[@]}"; do
    IFS='|' read -r id kind cmd where <<<"$c"
    rc=$(cat "$out/$id.rc" 2>/dev/null || echo 255)
    line=$(python3 "$report" "$kind" "$out/$id.xml" "$id" 2>"$out/$id.report")
    ok=$?
    if [ "$rc" != 0 ]; then
        ok=1
        why="host exited $rc"; [ "$rc" = 124 ] && why="timed out after ${tmo}s"
        line="FAIL $id: $why (${line#* $id: }) -- see $out/$id.log"
    fi
    echo "$line"
    [ -s "$out/$id.report" ] && sed 's/^/    /' "$out/$id.report" | head -120
    if [ "$ok" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    # one machine-readable line per check for test.sh's summary (scripts/test-summary.sh)
    if [ -n "${GILGATE_RESULTS:-}" ]; then
        printf 'valgrind\t%s\t%s\t%s\n' "$name" "$id" "$([ "$ok" = 0 ] && echo pass || echo fail)" >>"$GILGATE_RESULTS"
    fi
done
echo "$pass passed, $fail failed ($name, $(( $(date +%s) - start ))s)"
if [ "$fail" = 0 ] && [ -z "${VG_KEEP:-}" ]; then rm -rf "$out"; else echo "logs: $out"; fi
[ "$fail" = 0 ]
