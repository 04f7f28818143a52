#!/usr/bin/env bash
# Runs every test: Rust unit tests, the header freshness check, and the C/C++ hosts against every
# CPython on the machine (pyenv 3.8+, Debian's python3.11, Debian unstable's 3.14/3.15 fetched and
# cached by scripts/debian-python.sh). Installs what it needs (cmake) on a fresh machine.
#   GILGATE_TEST_RUNS   seed-scenario runs per CPython (default 48)
#   GILGATE_DEBIAN_PYTHONS=0  do not fetch Debian unstable's 3.14/3.15 nor the Py_DEBUG builds
#                             3.13d/3.14d/3.15d (reported as absent)
#   GILGATE_DEBUG_PYTHONS=0   do not fetch the Py_DEBUG builds only (reported as absent)
#   GILGATE_CASE=PATTERN      run only the harness cases PATTERN selects (docs/testing.md,
#                             "Running one case"): the build, then the harness suites; the lint,
#                             unit/model tests, pyo3 doctests and valgrind are reported as not run.
#                             Fails when PATTERN selects no case at all.
#   GILGATE_CACHE=DIR         where downloads and client builds are cached (~/.cache/gilgate)
#   GILGATE_ARM64=0           no arm64 lane (scripts/arm64.sh --ci; reported as absent)
# Each step prints how long it took ("-- N s: step"); docs/testing.md "How long it takes".
# Ends, whatever happened, with one summary (scripts/test-summary.sh): per CPython, test cases
# run, passed, failed; the CPythons absent. Result lines: target/test-results.tsv.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p target
export GILGATE_RESULTS="$PWD/target/test-results.tsv"
: >"$GILGATE_RESULTS"
t_start=$SECONDS
deb_fetch_pid=
side_pid=
arm64_pid=
test_build_pid=
kill_tree() { # kill_tree PID: the process and everything it started
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}
summary() {
  if [ -n "$deb_fetch_pid" ]; then kill "$deb_fetch_pid" 2>/dev/null || true; fi
  if [ -n "$side_pid" ]; then echo "test.sh: stopping the side lane"; kill_tree "$side_pid"; fi
  if [ -n "$arm64_pid" ]; then echo "test.sh: stopping the arm64 lane"; kill_tree "$arm64_pid"; fi
  if [ -n "$test_build_pid" ]; then kill_tree "$test_build_pid"; fi
  bash scripts/test-summary.sh "$GILGATE_RESULTS"; echo "test.sh: $((SECONDS - t_start)) s"
}
trap summary EXIT
bash scripts/ensure-tools.sh

# Debian unstable's trees (scripts/debian-python.sh; cached, so this is quick when warm) are
# fetched in the background while the builds below run: a download and dpkg unpacking, next to
# compiles that need the CPU. The suites start after it ended (wait_debian), so discovery finds
# the trees ready; whatever failed here is fetched again, and reported, by discovery itself.
if [ "${GILGATE_DEBIAN_PYTHONS:-1}" != 0 ]; then
  deb_versions="3.14 3.15"
  if [ "${GILGATE_DEBUG_PYTHONS:-1}" != 0 ]; then deb_versions="$deb_versions 3.13d 3.14d 3.15d"; fi
  ( for v in $deb_versions; do bash scripts/debian-python.sh "$v" || true; done ) >target/debian-fetch.log 2>&1 &
  deb_fetch_pid=$!
fi
wait_debian() {
  if [ -n "$deb_fetch_pid" ]; then
    wait "$deb_fetch_pid" || true
    deb_fetch_pid=
    echo "-- $((SECONDS - t_start)) s since start: Debian trees ready (fetched in the background, target/debian-fetch.log)"
  fi
}

case_only=${GILGATE_CASE:-}
# The test binaries (harness suites, unit and model tests) build with the ci-test profile
# (Cargo.toml: release without LTO) into target/ci-test; the library they test is the release
# build below. Cold, that build starts now, beside the release build, whose link-time
# optimization runs on one core (output: target/test-build.log, printed when it is waited for).
test_profile=(--profile ci-test)
if [ -n "$case_only" ]; then
  cargo test "${test_profile[@]}" -p gilgate-harness --no-run >target/test-build.log 2>&1 &
else
  cargo test "${test_profile[@]}" --workspace --no-run >target/test-build.log 2>&1 &
fi
test_build_pid=$!

echo "== build (release) and regenerate include/gilgate.h"
cargo build --release -p gilgate -p gilgate-check
echo "-- $((SECONDS - t_start)) s: tools and build (release)"
# Both builds run build.rs, which regenerates the header: check it once neither is writing.
test_build_rc=0
wait "$test_build_pid" || test_build_rc=$?
test_build_pid=
echo "-- $((SECONDS - t_start)) s since start: test binaries built (ci-test profile, target/test-build.log), exit $test_build_rc"
if [ "$test_build_rc" != 0 ]; then
  cat target/test-build.log
  echo "FAIL: building the test binaries failed" >&2
  exit 1
fi
if git rev-parse --git-dir >/dev/null 2>&1; then
  if ! git diff --quiet -- include/gilgate.h; then
    echo "FAIL: include/gilgate.h is stale: the build regenerated it; commit the new header" >&2
    git --no-pager diff --stat -- include/gilgate.h >&2
    exit 1
  fi
  echo "include/gilgate.h is up to date"
fi

failed_steps=()
step() { # step NAME CMD...: run, remember a failure, go on (every step reports)
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  if ! "$@"; then failed_steps+=("$name"); fi
  echo "-- $((SECONDS - t0)) s: $name"
}

# start_lane NAME FUNCTION: FUNCTION's steps in the background ("lanes", below); its output
# goes to target/NAME.log, the names of its failed steps to target/NAME.failed. `$!` is its pid.
start_lane() {
  : >"target/$1.failed"
  (
    failed_steps=()
    "$2"
    if ((${#failed_steps[@]})); then printf '%s\n' "${failed_steps[@]}" >"target/$1.failed"; fi
  ) >"target/$1.log" 2>&1 &
}
# join_lane NAME PID: wait for it, print its output, take over its failed steps.
join_lane() {
  local t0=$SECONDS f
  wait "$2" || true
  echo "== $1 (its output, target/$1.log; waited $((SECONDS - t0)) s for it here)"
  cat "target/$1.log"
  while IFS= read -r f; do [ -n "$f" ] && failed_steps+=("$f"); done <"target/$1.failed"
}

# Every unsafe block says why (clippy::undocumented_unsafe_blocks) and unsafe fns spell out
# their unsafe operations (unsafe_op_in_unsafe_fn); only these two lints fail the run.
if [ -n "$case_only" ]; then
  echo "lint: not run (GILGATE_CASE), not counted"
elif cargo clippy --version >/dev/null 2>&1; then
  lint() {
    local rc=0
    cargo clippy --release -p gilgate --features portable-entries -- -A clippy::all \
      -D clippy::undocumented_unsafe_blocks -D unsafe_op_in_unsafe_fn || rc=$?
    printf 'lint\t-\tclippy undocumented_unsafe_blocks + unsafe_op_in_unsafe_fn\t%s\n' \
      "$([ $rc = 0 ] && echo pass || echo fail)" >>"$GILGATE_RESULTS"
    return $rc
  }
  step "lint (clippy: undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)" lint
else
  echo "lint: absent (no cargo clippy on this machine), not counted"
  printf 'lint\tclippy (lint)\t-\tabsent\n' >>"$GILGATE_RESULTS"
fi

# Two lanes (docs/testing.md, "How long it takes"): most suites wait on sleeping hosts, watchdogs
# and CPython's regression tests more than they compute, so the "side lane" (below: the drop-in
# suite, the suites that build with cargo and share nothing with the real clients', then the
# portable-entries run) runs beside the rest instead of after it. Each suite builds its hosts in
# its own target/c_tests/<suite>; the result lines are one write each; the PyO3 builds of
# rust_host and clients share a cargo target directory, which cargo's own lock serializes (each
# copies out an output only it builds). cython_gilgate and recipes install into the clients'
# per-CPython directories, so they stay in the clients' lane.
side_suites=(dropin crate_package rust_host wheel)
main_suites=()
for t in harness/tests/*.rs; do
  t=${t##*/}; t=${t%.rs}
  [[ " ${side_suites[*]} " == *" $t "* ]] || main_suites+=("$t")
done

# libtest suites (unit tests, loom, TSO model) print "test result: ok. N passed; M failed";
# they involve no CPython and are recorded as cpython "-" for the summary.
cargo_results() { # cargo_results LOG: one result line per libtest case
  awk '/^     Running / { s = $NF; sub(/^\(/, "", s); sub(/\)$/, "", s); sub(/.*\//, "", s); sub(/-[0-9a-f]+$/, "", s) }
       /^   Doc-tests / { s = "doctest-" $2 }
       /^test result: / { p = $4; f = $6; sub(/;/, "", p); sub(/;/, "", f)
         for (i = 0; i < p; i++) print "libtest\t-\t" s "\tpass"
         for (i = 0; i < f; i++) print "libtest\t-\t" s "\tfail" }' "$1" >>"$GILGATE_RESULTS"
}
cargo_all() {
  local rc=0
  : >target/cargo-test.log
  cargo test "${test_profile[@]}" --workspace --exclude gilgate-harness --no-fail-fast 2>&1 | tee -a target/cargo-test.log || rc=$?
  cargo test "${test_profile[@]}" -p gilgate-harness --no-fail-fast --lib --bins \
    $(printf -- '--test %s ' "${main_suites[@]}") 2>&1 | tee -a target/cargo-test.log || rc=$?
  cargo_results target/cargo-test.log
  return $rc
}

# The entries every other architecture gets (C, __builtin_setjmp), built here with the cargo
# feature portable-entries and run through the C/C++ hosts once (the suite c_hosts-portable,
# hosts in target/c_tests/c_hosts-portable).
portable() {
  cargo build --release -p gilgate --features portable-entries --target-dir target/portable &&
  # The catch inside an entry is covered deterministically by entry_kill.c (the random
  # drain-disabled runs are a stress command, not part of any default run: docs/testing.md).
  GILGATE_LIB_DIR="$PWD/target/portable/release" GILGATE_TEST_RUNS="${GILGATE_PORTABLE_RUNS:-14}" \
    GILGATE_DEBUG_TEST_RUNS="${GILGATE_PORTABLE_RUNS:-14}" GILGATE_RESULTS_SUITE=c_hosts-portable \
    GILGATE_NODRAIN_RUNS=0 GILGATE_HEADER_CHECKS=0 cargo test "${test_profile[@]}" -p gilgate-harness --test c_hosts
}

if [ -n "$case_only" ]; then
  echo "unit/model tests: not run (GILGATE_CASE), not counted"
  wait_debian
  step "harness suites, GILGATE_CASE=$case_only" cargo test "${test_profile[@]}" -p gilgate-harness --no-fail-fast
  step "portable entries (feature portable-entries): C/C++ hosts, GILGATE_CASE=$case_only" portable
  echo "arm64 lane: not run (GILGATE_CASE), not counted"
else
  wait_debian
  side_lane() {
    step "harness suites beside the others: ${side_suites[*]}" cargo test "${test_profile[@]}" -p gilgate-harness \
      --no-fail-fast $(printf -- '--test %s ' "${side_suites[@]}")
    step "portable entries (feature portable-entries): C/C++ hosts" portable
  }
  start_lane side-lane side_lane
  side_pid=$!
  echo "-- side lane started (pid $side_pid): ${side_suites[*]}, then the portable entries; output: target/side-lane.log"
  # The arm64 lane (scripts/arm64.sh --ci): the seed host and api_edges cross-built for aarch64,
  # run under qemu-user on one arm64 CPython; it installs its tools and fetches its CPython, or
  # records them absent.
  if [ "${GILGATE_ARM64:-1}" = 0 ]; then
    echo "arm64 lane: skipped (GILGATE_ARM64=0), not counted"
    printf 'c_hosts\tarm64 (GILGATE_ARM64=0)\t-\tabsent\n' >>"$GILGATE_RESULTS"
  else
    arm64_lane() { step "arm64 lane: seed host and api_edges under qemu-aarch64 (scripts/arm64.sh --ci)" bash scripts/arm64.sh --ci; }
    start_lane arm64-lane arm64_lane
    arm64_pid=$!
    echo "-- arm64 lane started (pid $arm64_pid); output: target/arm64-lane.log"
  fi
  step "cargo test (unit tests, model check, C/C++ hosts, idioms, real clients; not ${side_suites[*]})" cargo_all
fi

# The pyo3 feature (src/pyo3.rs): its doctests start a real CPython (PyO3 links libpython) and
# finalize it through gilgate. Built with the ci-test profile (target/ci-test, sharing the
# dependencies the step above compiled): a cdylib built with the feature must not replace
# target/release/libgilgate.so. (The Rust host itself runs in cargo test: harness/tests/rust_host.rs.)
pyo3_py=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.1[0-3].* 2>/dev/null | tail -1 || true)
if [ -n "$case_only" ]; then
  echo "pyo3 feature doctests: not run (GILGATE_CASE), not counted"
elif [ -z "$pyo3_py" ]; then
  echo "pyo3 feature doctests: absent (no pyenv CPython 3.10-3.13), not counted"
else
  step "pyo3 feature doctests against $pyo3_py" env PYO3_PYTHON="$pyo3_py/bin/python3" \
    LD_LIBRARY_PATH="$pyo3_py/lib" cargo test "${test_profile[@]}" -p gilgate --features pyo3 --doc
fi

# memcheck + DRD over the C hosts for one CPython (c_tests/valgrind.sh; all of them: see
# docs/valgrind.md). GILGATE_VALGRIND=0 skips it (reported, not passed).
vg_py=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12.* 2>/dev/null | tail -1 || true)
if [ -n "$case_only" ]; then
  echo "valgrind checks: not run (GILGATE_CASE), not counted"
elif [ "${GILGATE_VALGRIND:-1}" = 0 ]; then
  echo "valgrind checks: skipped (GILGATE_VALGRIND=0), not counted"
elif ! command -v valgrind >/dev/null || [ -z "$vg_py" ]; then
  echo "valgrind checks: absent (no valgrind or no pyenv CPython 3.12), not counted"
else
  step "valgrind (memcheck, DRD) for $vg_py" bash c_tests/valgrind.sh "$vg_py"
fi
# memcheck once more against an assertion-enabled CPython (Debian's 3.14d: Py_DEBUG, its debug
# allocator checks under PYTHONMALLOC=malloc are off, but every assertion is on); its hosts were
# built by the c_hosts suite above. Absent (not counted) if the tree is not there.
vg_dbg="${GILGATE_CACHE:-$HOME/.cache/gilgate}/debian-python/3.14d/tree/usr"
if [ -n "$case_only" ] || [ "${GILGATE_VALGRIND:-1}" = 0 ]; then
  :
elif ! command -v valgrind >/dev/null || [ ! -f "$vg_dbg/../../complete.stamp" ] \
     || [ "${GILGATE_DEBIAN_PYTHONS:-1}" = 0 ] || [ "${GILGATE_DEBUG_PYTHONS:-1}" = 0 ]; then
  echo "valgrind memcheck on 3.14d: absent (no valgrind, or no Py_DEBUG 3.14 tree), not counted"
  printf 'valgrind\tdebian-unstable-3.14d (valgrind)\t-\tabsent\n' >>"$GILGATE_RESULTS"
elif [ -n "${GILGATE_ONLY_PYTHONS:-}" ] && [[ " $GILGATE_ONLY_PYTHONS " != *3.14d* ]]; then
  echo "valgrind memcheck on 3.14d: not run (GILGATE_ONLY_PYTHONS leaves 3.14d out: c_hosts built no host for it), not counted"
  printf 'valgrind\tdebian-unstable-3.14d (valgrind)\t-\tabsent\n' >>"$GILGATE_RESULTS"
else
  step "valgrind (memcheck) for the Py_DEBUG 3.14d" env VG_CHECKS=memcheck bash c_tests/valgrind.sh "$vg_dbg"
fi

if [ -n "$side_pid" ]; then join_lane side-lane "$side_pid"; side_pid=; fi
if [ -n "$arm64_pid" ]; then join_lane arm64-lane "$arm64_pid"; arm64_pid=; fi

if [ -n "$case_only" ] && ! awk -F'\t' '$4 == "pass" || $4 == "fail" { n++ } END { exit !n }' "$GILGATE_RESULTS"; then
  echo "FAIL: GILGATE_CASE=$case_only selected no case in any suite (case names: docs/testing.md)" >&2
  failed_steps+=("GILGATE_CASE selected nothing")
fi
if ((${#failed_steps[@]})); then
  printf 'FAILED steps:\n'; printf '  %s\n' "${failed_steps[@]}"
  exit 1
fi
echo "all steps passed"

