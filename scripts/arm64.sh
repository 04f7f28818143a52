#!/usr/bin/env bash
# arm64.sh: gilgate on Linux/aarch64 (glibc), prepared, built and tested from this x86-64 machine.
#   bash scripts/arm64.sh [--quick | --build-only | --ci]
# 1. installs what is missing: qemu-user-static, gcc/g++-aarch64-linux-gnu,
#    libc6-dev-arm64-cross (apt-get), the Rust target aarch64-unknown-linux-gnu (rustup);
# 2. cross-builds gilgate: target/aarch64-unknown-linux-gnu/release/{libgilgate.so, its soname
#    link libgilgate.so.0, gilgate-check}; include/gilgate.h is the same file (checked: it must
#    not change); tools/gilgate-run is a POSIX sh script (the same file on every architecture).
#    The linker and C compiler come from the environment (CARGO_TARGET_..._LINKER, CC_...), not a
#    checked-in .cargo/config: x86-64 builds are untouched;
# 3. fetches and caches Debian's arm64 CPythons (scripts/debian-python.sh with
#    GILGATE_DEBIAN_ARCH=arm64): bookworm's 3.11 in $GILGATE_CACHE/debian-python-arm64-bookworm,
#    unstable's 3.13/3.14/3.15 and the Py_DEBUG builds of GILGATE_ARM64_DEBUG (default "3.14")
#    in $GILGATE_CACHE/debian-python-arm64 (default cache ~/.cache/gilgate);
# 4. runs the arm64 suites: the harness in its arm64 mode (GILGATE_ARCH=aarch64: hosts built
#    with aarch64-linux-gnu-gcc, run under qemu-aarch64-static with each tree as sysroot,
#    watchdogs scaled by GILGATE_TIME_SCALE, default 6): c_hosts (seed host through the fallible
#    API, C, C++ -fno-exceptions, C++ -fexceptions, linked ahead of libpython; raw controls;
#    api_edges; the kill/park inside an entry; late load; struct offsets), dropin (the seed host
#    and the ctypes host preloaded, per policy), idioms (extension-module threads, fork,
#    PyThreadState_Swap), pep788 + pep788_compat (PEP 788 natively and below 3.15), arm64_extra (gilgate-run, --check on arm64 ELF files, the dlopen host),
#    clients (real clients cross-built with aarch64-linux-gnu-gcc/g++: a pybind11 module and
#    embedding host, Cython modules (C written by the pip python's Cython), the C API extension,
#    ctypes; raw and LD_PRELOAD, polite/rude/daemon; GILGATE_CLIENT_RUNS, default 1).
#    --quick: c_hosts only with GILGATE_TEST_RUNS=6 (the seed host and api_edges).
#    --ci: ./test.sh's arm64 lane: c_hosts' seed runs (fallible API in C, C++ -fno-exceptions,
#    C++ -fexceptions; GILGATE_TEST_RUNS 9), the raw host's harm and api_edges on one arm64
#    CPython (ARM64_CI_PYTHON, default 3.13: the kill path), with ./test.sh's test binary
#    (profile ci-test) and result file. What cannot be installed or fetched here (no apt, no
#    network) is recorded as absent, never as passed, and does not fail the run.
# Ends with the summary of ./test.sh (scripts/test-summary.sh) over target/test-results-arm64.tsv.
# Knobs: the harness's (GILGATE_ONLY_PYTHONS, GILGATE_TEST_RUNS, GILGATE_DEBUG_PYTHONS=0, ...),
#   ARM64_SUITES="c_hosts idioms" to choose suites.
# Nothing here can show a weak-memory bug: qemu-user on x86-64 runs the guest with x86's
# ordering (docs/design.md, "arm64: memory ordering").
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
case $mode in all|--quick|--build-only|--ci) ;; *) sed -n '2,33p' "$0"; exit 2 ;; esac
t_start=$SECONDS
absent() { # --ci: WHAT WHY: one absent result line, and stop without failing
  echo "arm64 lane: $1: ABSENT ($2), not counted"
  printf 'c_hosts\tarm64 lane: %s (%s)\t-\tabsent\n' "$1" "$2" >>"${GILGATE_RESULTS:-/dev/null}"
  exit 0
}

echo "== arm64: tools"
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
install_tools() {
  if ((${#need[@]})); then
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing ${need[*]}"
    $sudo apt-get update -q >/dev/null &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" || return 1
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu || return 1
  fi
}
if [ "$mode" = --ci ]; then
  install_tools || absent "tools" "could not install ${need[*]:-} / the Rust target aarch64-unknown-linux-gnu"
else
  install_tools
fi
qemu-aarch64-static --version | head -1

echo "== arm64: cross build (cargo build --release --target aarch64-unknown-linux-gnu)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
if [ "$mode" = --ci ]; then
  cargo build --release --target aarch64-unknown-linux-gnu -p gilgate
else
  cargo build --release --target aarch64-unknown-linux-gnu -p gilgate -p gilgate-check
  # this machine's gilgate-check too: `gilgate-run --check` here reads the arm64 files with it
  cargo build --release -p gilgate-check
fi
out=target/aarch64-unknown-linux-gnu/release
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- include/gilgate.h; then
  echo "FAIL: the aarch64 build changed include/gilgate.h (the header must not depend on the target)" >&2
  exit 1
fi
[ "$(readlink "$out/libgilgate.so.0")" = libgilgate.so ] || { echo "FAIL: $out/libgilgate.so.0 is not the soname link" >&2; exit 1; }
[ "$mode" = --ci ] || file "$out/libgilgate.so" "$out/gilgate-check" 2>/dev/null || ls -l "$out/libgilgate.so" "$out/gilgate-check"
[ "$mode" = --build-only ] && exit 0

echo "== arm64: CPythons (Debian arm64 packages, cached)"
cache=${GILGATE_CACHE:-$HOME/.cache/gilgate}
fetch() { # VERSION CACHE SUITE
  GILGATE_DEBIAN_ARCH=arm64 GILGATE_DEBIAN_SUITE=$3 bash scripts/debian-python.sh "$1" "$2" | tail -1 || true
}
if [ "$mode" = --ci ]; then
  v=${ARM64_CI_PYTHON:-3.13}
  if [ "${GILGATE_DEBIAN_PYTHONS:-1}" = 0 ]; then absent "CPython $v" "GILGATE_DEBIAN_PYTHONS=0"; fi
  if [ "$v" = 3.11 ]; then dir=debian-python-arm64-bookworm suite=bookworm prefix=arm64-debian
  else dir=debian-python-arm64 suite="unstable experimental" prefix=arm64-debian-unstable; fi
  fetch "$v" "$cache/$dir" "$suite"
  [ -f "$cache/$dir/$v/complete.stamp" ] || absent "CPython $v" "Debian's arm64 packages could not be fetched"
  py="$prefix-$v"
  # The test binary ./test.sh built (ci-test profile); results into ./test.sh's file.
  GILGATE_ARCH=aarch64 GILGATE_ONLY_PYTHONS="$py" GILGATE_DEBUG_PYTHONS=0 \
    GILGATE_TEST_RUNS=${ARM64_CI_RUNS:-9} GILGATE_RAW_TRIES=${ARM64_CI_RAW_TRIES:-4} GILGATE_TEST_JOBS=${GILGATE_TEST_JOBS:-3} \
    GILGATE_CASE="c_hosts/$py* seed *|c_hosts/$py* raw CPython shows the harm|c_hosts/$py* api-edges *" \
    cargo test --profile ci-test -p gilgate-harness --test c_hosts
  exit
fi
if [ "${GILGATE_DEBIAN_PYTHONS:-1}" != 0 ]; then
  fetch 3.11 "$cache/debian-python-arm64-bookworm" bookworm
  for v in 3.13 3.14 3.15; do fetch $v "$cache/debian-python-arm64" "unstable experimental"; done
  if [ "${GILGATE_DEBUG_PYTHONS:-1}" != 0 ]; then
    for v in ${GILGATE_ARM64_DEBUG:-3.14}; do fetch "${v}d" "$cache/debian-python-arm64" "unstable experimental"; done
  fi
fi

export GILGATE_ARCH=aarch64
export GILGATE_RESULTS="$PWD/target/test-results-arm64.tsv"
: >"$GILGATE_RESULTS"
summary() { bash scripts/test-summary.sh "$GILGATE_RESULTS"; echo "arm64.sh: $((SECONDS - t_start)) s"; }
trap summary EXIT
if [ "$mode" = --quick ]; then
  export GILGATE_TEST_RUNS=${GILGATE_TEST_RUNS:-6} GILGATE_DEBUG_TEST_RUNS=${GILGATE_DEBUG_TEST_RUNS:-3}
  suites=${ARM64_SUITES:-c_hosts}
else
  suites=${ARM64_SUITES:-c_hosts dropin idioms pep788 pep788_compat arm64_extra clients}
fi
# Fewer runs than on x86-64 by default: each emulated run costs 5-20x more CPU.
export GILGATE_TEST_RUNS=${GILGATE_TEST_RUNS:-18} GILGATE_DEBUG_TEST_RUNS=${GILGATE_DEBUG_TEST_RUNS:-6}
export GILGATE_TEST_JOBS=${GILGATE_TEST_JOBS:-3}
export GILGATE_IDIOM_RUNS=${GILGATE_IDIOM_RUNS:-1} GILGATE_LAUNCHER_RUNS=${GILGATE_LAUNCHER_RUNS:-1}
export GILGATE_CLIENT_RUNS=${GILGATE_CLIENT_RUNS:-1}
# CPython's regression tests under the preload (dropin.rs) are not run under emulation: they
# start subprocesses, which cannot exec an arm64 program without binfmt_misc (reported, not counted).
export GILGATE_TRANSPARENCY=0
failed=()
for s in $suites; do
  echo "== arm64: $s"
  cargo test --release -p gilgate-harness --test "$s" || failed+=("$s")
done
if ((${#failed[@]})); then
  echo "FAILED arm64 suites: ${failed[*]}"
  exit 1
fi
echo "all arm64 suites passed"
