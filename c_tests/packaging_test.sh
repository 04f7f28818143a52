#!/usr/bin/env bash
# c_tests/packaging_test.sh — install gilgate, move the install, consume it from CMake and pkg-config.
#
#   bash c_tests/packaging_test.sh <python-prefix>
#
# <python-prefix>: a CPython (3.8+, built with --enable-shared) install prefix with
# bin/python3.X, bin/python3.X-config and libpython3.X.so, e.g. /root/.pyenv/versions/3.12.1, or
# /usr for Debian's python3.11 (uses /usr/bin/python3.11-config, needs libpython3.11-dev).
#
# Steps (one line each, then `N passed, N failed`; exit 1 if any failed):
#   tools, python, install (cmake/install.sh into a fresh temp prefix; it runs
#   `cargo build --release` unless GILGATE_SKIP_CARGO=1 is set), reinstall (idempotent),
#   bad prefixes, relocate (the prefix is moved elsewhere; everything below uses the new place),
#   CMake version rules, CMake consumer configure/build/link order/run, pkg-config metadata,
#   pkg-config consumer build/link order/run.
# Missing tools (cmake >= 3.18, pkg-config, cc, c++) are installed with apt-get (after
# apt-get update), or cmake with pip if apt fails. The consumers run without LD_LIBRARY_PATH:
# CMake's build RPATH and -Wl,-rpath find libgilgate and libpython.
# GILGATE_KEEP_TMP=1 keeps the temp dir (its path is printed).
# GILGATE_PACKAGING_PREFIX=<dir>: consume that existing prefix instead of installing one (no
# install, reinstall, bad-prefix or relocate steps): the wheel's package directory
# (`python -m gilgate --prefix`), whose lib/ holds the soname file libgilgate.so.N and a linker
# script libgilgate.so instead of symlinks (harness/tests/wheel.rs).

set -u
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash c_tests/packaging_test.sh <python-prefix>   (e.g. /root/.pyenv/versions/3.12.1 or /usr)" >&2
    exit 2
fi
PYPREFIX=${1%/}
[ -n "$PYPREFIX" ] || PYPREFIX=/
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gilgate_pkgtest.XXXXXX") || exit 2
if [ "${GILGATE_KEEP_TMP:-0}" = 1 ]; then
    echo "temp dir: $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
trap 'exit 130' INT TERM

PASS=0
FAIL=0
N=0
T0=$SECONDS
# step NAME CMD...: run CMD (a shell function or command), log to a file, print one line.
step() {
    local name=$1 log t=$SECONDS
    shift
    N=$((N + 1))
    log=$WORK/step$N.log
    if "$@" >"$log" 2>&1; then
        PASS=$((PASS + 1))
        printf 'PASS %-40s %s\n' "$name" "$(tail -n 1 "$log" | cut -c1-150) [$((SECONDS - t))s]"
    else
        FAIL=$((FAIL + 1))
        printf 'FAIL %-40s [%ss] log: %s\n' "$name" "$((SECONDS - t))" "$log"
        tail -n 25 "$log" | sed 's/^/    /'
    fi
}
finish() {
    echo "$PASS passed, $FAIL failed ($((SECONDS - T0)) s, python prefix $PYPREFIX)"
    [ "$FAIL" -eq 0 ]
    exit $?
}
say() { echo "$*"; }
die() { echo "error: $*" >&2; return 1; }

# --- tools -----------------------------------------------------------------------------------------
SUDO=
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"; }
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ $APT_UPDATED = 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q || return 1
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}
cmake_ok() {
    command -v cmake >/dev/null 2>&1 || return 1
    local v
    v=$(cmake --version | sed -n '1s/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')
    case $v in [0-9]*.[0-9]*) ;; *) return 1 ;; esac
    [ "${v%%.*}" -gt 3 ] || { [ "${v%%.*}" -eq 3 ] && [ "${v#*.}" -ge 18 ]; }
}
pip_cmake() {
    local py
    for py in "$PYPREFIX/bin/python3" python3; do
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -m pip install -q --user cmake 2>/dev/null \
            || "$py" -m pip install -q --user --break-system-packages cmake || continue
        PATH="$("$py" -c 'import site; print(site.USER_BASE)')/bin:$PATH"
        export PATH
        hash -r
        cmake_ok && return 0
    done
    return 1
}
ensure_tools() {
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    command -v readelf >/dev/null 2>&1 || missing+=(binutils)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v make >/dev/null 2>&1 || missing+=(make)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} with apt-get"
        apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed" || return 1
    fi
    if ! cmake_ok; then
        say "cmake >= 3.18 not found: apt-get install cmake"
        apt_install cmake || true
        hash -r
        if ! cmake_ok; then
            say "apt did not provide cmake >= 3.18: pip install cmake"
            pip_cmake || die "could not install cmake" || return 1
        fi
    fi
    say "$(cmake --version | head -n 1); pkg-config $(pkg-config --version); $(cc --version | head -n 1)"
}

# --- python ----------------------------------------------------------------------------------------
find_python() {
    local c
    PY=
    for c in "$PYPREFIX"/bin/python3 "$PYPREFIX"/bin/python3.[0-9]*; do
        case $c in *-config | *-gdb.py) continue ;; esac
        if [ -x "$c" ]; then PY=$c; break; fi
    done
    [ -n "$PY" ] || die "no bin/python3 under $PYPREFIX" || return 1
    PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || return 1
    # prefer the exact bin/python3.X and bin/python3.X-config (Debian's /usr has several)
    [ -x "$PYPREFIX/bin/python$PYVER" ] && PY=$PYPREFIX/bin/python$PYVER
    PYFULL=$("$PY" -c 'import platform; print(platform.python_version())')
    PYCONFIG=$PYPREFIX/bin/python$PYVER-config
    [ -x "$PYCONFIG" ] || PYCONFIG=$PYPREFIX/bin/python3-config
    [ -x "$PYCONFIG" ] || die "no python$PYVER-config under $PYPREFIX/bin (Debian: apt-get install python$PYVER-dev)" || return 1
    PYLIBDIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
    local ldlib shared
    ldlib=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LDLIBRARY"))')
    shared=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED"))')
    [ "$shared" = 1 ] || die "$PY is not a --enable-shared build (Py_ENABLE_SHARED=$shared)" || return 1
    [ -e "$PYLIBDIR/libpython$PYVER.so" ] || [ -e "$PYLIBDIR/$ldlib" ] \
        || die "libpython$PYVER.so not found in $PYLIBDIR" || return 1
    if PYLDFLAGS=$("$PYCONFIG" --ldflags --embed 2>/dev/null); then :; else
        PYLDFLAGS="$("$PYCONFIG" --ldflags) -lpython$PYVER"
    fi
    PYINCLUDES=$("$PYCONFIG" --includes)
    # FindPython artifacts: a CMake older than the Python does not know its version (CMake 3.25
    # and 3.13 for one) and would pick another Python; naming the files pins it.
    PYLIBRARY=$PYLIBDIR/$ldlib
    [ -e "$PYLIBRARY" ] || PYLIBRARY=$PYLIBDIR/libpython$PYVER.so
    PYINCLUDEDIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -f "$PYINCLUDEDIR/Python.h" ] || die "no Python.h in $PYINCLUDEDIR" || return 1
    say "python $PYFULL: $PY, $PYCONFIG, libdir $PYLIBDIR"
}

# --- install / relocate ----------------------------------------------------------------------------
VERSION=$(sed -n '/^\[package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' "$ROOT/Cargo.toml" | head -n 1)
MAJOR=${VERSION%%.*}
STAGE=$WORK/stage/gilgate-prefix
MOVED=$WORK/moved/elsewhere/gilgate
# expect_tree PREFIX: every installed file is there, symlinks right, soname right
expect_tree() {
    local p=$1 f
    for f in include/gilgate.h include/gilgate.hpp include/gilgate.pxd include/gilgate_pep788.h \
        include/gilgate_pep788.pxd lib/libgilgate.so.$VERSION \
        lib/cmake/gilgate/gilgateConfig.cmake lib/cmake/gilgate/gilgateConfigVersion.cmake \
        lib/pkgconfig/gilgate.pc; do
        [ -f "$p/$f" ] && [ ! -L "$p/$f" ] || die "missing or not a regular file: $p/$f" || return 1
    done
    [ "$(readlink "$p/lib/libgilgate.so.$MAJOR")" = "libgilgate.so.$VERSION" ] || die "bad symlink libgilgate.so.$MAJOR" || return 1
    [ "$(readlink "$p/lib/libgilgate.so")" = "libgilgate.so.$MAJOR" ] || die "bad symlink libgilgate.so" || return 1
    readelf -d "$p/lib/libgilgate.so.$VERSION" | grep -q "Library soname: \[libgilgate.so.$MAJOR\]" \
        || die "soname is not libgilgate.so.$MAJOR" || return 1
    cmp -s "$p/include/gilgate.h" "$ROOT/include/gilgate.h" || die "installed gilgate.h differs from include/" || return 1
    cmp -s "$p/include/gilgate.hpp" "$ROOT/include/gilgate.hpp" || die "installed gilgate.hpp differs" || return 1
    cmp -s "$p/include/gilgate.pxd" "$ROOT/include/gilgate.pxd" || die "installed gilgate.pxd differs" || return 1
    for f in gilgate_pep788.h gilgate_pep788.pxd; do
        cmp -s "$p/include/$f" "$ROOT/include/$f" || die "installed $f differs" || return 1
    done
    ! grep -rq "$p\|@GILGATE_" "$p/lib/cmake" "$p/lib/pkgconfig" \
        || die "an absolute path or placeholder in the CMake/pkg-config files" || return 1
}
# expect_existing: an existing prefix (the wheel's): files there, soname right, headers current
expect_existing() {
    local p=$MOVED f
    for f in include/gilgate.h include/gilgate.hpp include/gilgate.pxd include/gilgate_pep788.h \
        include/gilgate_pep788.pxd lib/libgilgate.so.$MAJOR \
        lib/libgilgate.so lib/cmake/gilgate/gilgateConfig.cmake \
        lib/cmake/gilgate/gilgateConfigVersion.cmake lib/pkgconfig/gilgate.pc; do
        [ -f "$p/$f" ] || die "missing: $p/$f" || return 1
    done
    readelf -d "$p/lib/libgilgate.so.$MAJOR" | grep -q "Library soname: \[libgilgate.so.$MAJOR\]" \
        || die "soname is not libgilgate.so.$MAJOR" || return 1
    for f in gilgate.h gilgate.hpp gilgate.pxd gilgate_pep788.h gilgate_pep788.pxd; do
        cmp -s "$p/include/$f" "$ROOT/include/$f" || die "$f differs from include/" || return 1
    done
    ! grep -rq "$p\|@GILGATE_" "$p/lib/cmake" "$p/lib/pkgconfig" \
        || die "an absolute path or placeholder in the CMake/pkg-config files" || return 1
    say "existing prefix $p: gilgate $VERSION, no install"
}
do_install() {
    [ ! -e "$STAGE" ] || die "$STAGE already exists" || return 1
    sh "$ROOT/cmake/install.sh" "$STAGE" || return 1
    expect_tree "$STAGE" || return 1
    say "installed gilgate $VERSION into a fresh prefix (GILGATE_SKIP_CARGO=${GILGATE_SKIP_CARGO:-unset})"
}
do_reinstall() {
    local before after
    before=$(cd "$STAGE" && find . -print | sort && cat lib/cmake/gilgate/* lib/pkgconfig/* | cksum)
    GILGATE_SKIP_CARGO=1 sh "$ROOT/cmake/install.sh" "$STAGE" || return 1
    GILGATE_SKIP_CARGO=1 sh "$ROOT/cmake/install.sh" "$STAGE" || return 1
    after=$(cd "$STAGE" && find . -print | sort && cat lib/cmake/gilgate/* lib/pkgconfig/* | cksum)
    [ "$before" = "$after" ] || die "the tree changed on re-install" || return 1
    expect_tree "$STAGE" || return 1
    say "re-ran install.sh twice: same tree"
}
# rejects NAME PREFIX: install.sh must fail with a clear message
rejects() {
    local out rc
    out=$(GILGATE_SKIP_CARGO=1 sh "$ROOT/cmake/install.sh" "$2" 2>&1)
    rc=$?
    [ $rc -ne 0 ] || die "$1: install.sh accepted '$2'" || return 1
    echo "$out" | grep -q "error:" || die "$1: no error message (rc $rc): $out" || return 1
    say "$1: rc $rc: $(echo "$out" | grep error: | head -n 1)"
}
do_bad_prefixes() {
    : >"$WORK/a_file"
    rejects "empty prefix" "" || return 1
    rejects "prefix is a file" "$WORK/a_file" || return 1
    rejects "prefix not creatable" "$WORK/a_file/sub" || return 1
    rejects "prefix under /proc" "/proc/gilgate-no-such-dir" || return 1
    mkdir -p "$WORK/half/lib" && : >"$WORK/half/lib/pkgconfig"
    rejects "lib/pkgconfig is a file" "$WORK/half" || return 1
    [ ! -e "$WORK/half/include" ] || die "a rejected prefix was half-populated" || return 1
    say "5 bad prefixes rejected"
}
do_relocate() {
    mkdir -p "$(dirname "$MOVED")" && mv "$STAGE" "$MOVED" && rm -rf "$WORK/stage" || return 1
    [ ! -e "$STAGE" ] || return 1
    expect_tree "$MOVED" || return 1
    say "moved the prefix to $MOVED"
}

# --- CMake -----------------------------------------------------------------------------------------
do_version_rules() {
    local d=$WORK/vcheck
    mkdir -p "$d"
    cat >"$d/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.19)
project(gilgate_version_rules LANGUAGES C)
set(bad 0)
function(expect want)
  set(CMAKE_SIZEOF_VOID_P "${PTR_SIZE}")
  find_package(gilgate ${ARGN} CONFIG QUIET)
  if(gilgate_FOUND)
    set(got FOUND)
  else()
    set(got REJECTED)
  endif()
  if(NOT got STREQUAL want)
    message("MISMATCH find_package(gilgate ${ARGN}) ptr=${CMAKE_SIZEOF_VOID_P}: ${got}, want ${want} (considered: ${gilgate_CONSIDERED_VERSIONS})")
    math(EXPR b "${bad} + 1")
    set(bad ${b} PARENT_SCOPE)
  else()
    message("ok find_package(gilgate ${ARGN}) ptr=${CMAKE_SIZEOF_VOID_P}: ${got}")
  endif()
endfunction()
set(PTR_SIZE ${CMAKE_SIZEOF_VOID_P})
expect(FOUND)
expect(FOUND 0.1)
expect(FOUND 0.1.0)
expect(FOUND 0.1.0 EXACT)
expect(FOUND 0.1...<0.2)
expect(FOUND 0.1.0...0.1.9)
expect(FOUND 0.1...1.0)
expect(REJECTED 0)
expect(REJECTED 0.0)
expect(REJECTED 0.0.9)
expect(REJECTED 0.1.1)
expect(REJECTED 0.2)
expect(REJECTED 1)
expect(REJECTED 1.0)
expect(REJECTED 0.0...0.9)
expect(REJECTED 0.1.1...0.2)
expect(REJECTED 0.0.1...<0.1.0)
set(PTR_SIZE 4)
expect(REJECTED)
expect(REJECTED 0.1)
if(TARGET gilgate::gilgate)
  get_target_property(t gilgate::gilgate TYPE)
  get_target_property(loc gilgate::gilgate IMPORTED_LOCATION)
  get_target_property(so gilgate::gilgate IMPORTED_SONAME)
  get_target_property(inc gilgate::gilgate INTERFACE_INCLUDE_DIRECTORIES)
  foreach(p INTERFACE_COMPILE_OPTIONS INTERFACE_COMPILE_DEFINITIONS INTERFACE_LINK_OPTIONS INTERFACE_LINK_LIBRARIES)
    get_target_property(v gilgate::gilgate ${p})
    if(v)
      message("MISMATCH gilgate::gilgate forces ${p}=${v} on consumers")
      math(EXPR bad "${bad} + 1")
    endif()
  endforeach()
  message("target: ${t} ${loc} soname ${so} include ${inc}")
  if(NOT t STREQUAL "SHARED_LIBRARY" OR NOT so STREQUAL "libgilgate.so.0" OR NOT EXISTS "${loc}" OR NOT EXISTS "${inc}/gilgate.hpp")
    math(EXPR bad "${bad} + 1")
  endif()
else()
  math(EXPR bad "${bad} + 1")
endif()
if(bad)
  message(FATAL_ERROR "${bad} version-rule mismatches")
endif()
message("all version rules hold (0.x: same minor required; 32-bit consumer rejected)")
EOF
    cmake -S "$d" -B "$d/build" -DCMAKE_PREFIX_PATH="$MOVED" >"$d/out" 2>&1
    local rc=$?
    cat "$d/out"
    [ $rc -eq 0 ] || return 1
    say "$(grep -c '^ok ' "$d/out") find_package checks as expected; gilgate::gilgate is a plain SHARED IMPORTED target"
}
CM_BUILD=$WORK/consumer_cmake_build
do_cmake_configure() {
    local out=$WORK/cmake_configure.out rc dir
    cmake -S "$ROOT/c_tests/consumer_cmake" -B "$CM_BUILD" --no-warn-unused-cli \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_PREFIX_PATH="$MOVED" \
        -DPython3_ROOT_DIR="$PYPREFIX" -DPython3_EXECUTABLE="$PY" -DPython3_FIND_STRATEGY=LOCATION \
        -DPython3_LIBRARY="$PYLIBRARY" -DPython3_INCLUDE_DIR="$PYINCLUDEDIR" >"$out" 2>&1
    rc=$?
    cat "$out"
    [ $rc -eq 0 ] || return 1
    dir=$(sed -n 's/^gilgate_DIR:[A-Z]*=//p' "$CM_BUILD/CMakeCache.txt")
    [ "$dir" = "$MOVED/lib/cmake/gilgate" ] || die "gilgate_DIR is '$dir', not under the moved prefix" || return 1
    # CMakeLists.txt reports what FindPython chose: "Python <version>: <libraries>"
    grep -q "; Python $PYFULL: .*libpython$PYVER" "$out" || die "FindPython did not pick Python $PYFULL" || return 1
    say "gilgate_DIR=$dir; FindPython: $(sed -n 's/.*; Python //p' "$out")"
}
do_cmake_build() {
    cmake --build "$CM_BUILD" -- VERBOSE=1 || return 1
    [ -x "$CM_BUILD/consumer_cmake" ] || return 1
    say "built $CM_BUILD/consumer_cmake"
}
# link_order BINARY: libgilgate.so.N is NEEDED before libpython; RUNPATH has the moved lib dir
link_order() {
    local needed gi pi
    needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    gi=$(echo "$needed" | grep -n "^libgilgate\.so\.$MAJOR\$" | cut -d: -f1)
    pi=$(echo "$needed" | grep -n "^libpython" | head -n 1 | cut -d: -f1)
    [ -n "$gi" ] && [ -n "$pi" ] && [ "$gi" -lt "$pi" ] \
        || die "NEEDED order: $(echo $needed) (libgilgate must come before libpython)" || return 1
    readelf -d "$1" | grep -E 'R(UN)?PATH' | grep -q "$MOVED/lib" || die "no rpath to $MOVED/lib" || return 1
    say "NEEDED: $(echo $needed | tr ' ' ',')"
}
# run_consumer BINARY TAG: runs it without LD_LIBRARY_PATH; PASS line and exit 0 required
run_consumer() {
    local out rc
    out=$(cd "$WORK" && env -u LD_LIBRARY_PATH -u PYTHONHOME -u PYTHONPATH timeout 60 "$1" 2>&1)
    rc=$?
    echo "$out"
    [ $rc -eq 0 ] || die "$2 exited with $rc" || return 1
    echo "$out" | grep -q "^$2: PASS" || die "no PASS line" || return 1
    if [ "$2" = consumer_cmake ]; then
        echo "$out" | grep -q "python=$PYFULL " || die "the consumer ran Python $(echo "$out" | sed -n 's/.*python=\([^ ]*\).*/\1/p'), not $PYFULL" || return 1
    fi
    echo "$out" | grep "^$2: PASS"
}

# The destructor of an allow_threads scope left after finalization must apply the policy (abort).
run_death() {
    local out rc
    out=$(cd "$WORK" && ulimit -c 0 && env -u LD_LIBRARY_PATH GILGATE_ON_FINALIZE=abort \
        timeout 60 "$CM_BUILD/consumer_cmake" --allow-threads-death 2>&1)
    rc=$?
    echo "$out"
    [ $rc -eq 134 ] || die "expected SIGABRT (exit 134), got $rc" || return 1
    echo "$out" | grep -q "gilgate::allow_threads::~allow_threads" || die "no policy diagnostic naming the destructor" || return 1
    say "SIGABRT, diagnostic: $(echo "$out" | grep -o 'gilgate::allow_threads::~allow_threads.*policy abort' | head -n 1)"
}

# --- pkg-config ------------------------------------------------------------------------------------
PC_BIN=$WORK/consumer_pkgconfig
do_pc_metadata() {
    local v cflags libs
    v=$(PKG_CONFIG_PATH="$MOVED/lib/pkgconfig" pkg-config --modversion gilgate) || return 1
    [ "$v" = "$VERSION" ] || die "pkg-config --modversion: $v, Cargo.toml: $VERSION" || return 1
    cflags=$(PKG_CONFIG_PATH="$MOVED/lib/pkgconfig" pkg-config --cflags gilgate) || return 1
    libs=$(PKG_CONFIG_PATH="$MOVED/lib/pkgconfig" pkg-config --libs gilgate) || return 1
    case $cflags in *"$MOVED"*) ;; *) die "--cflags not under the moved prefix: $cflags" || return 1 ;; esac
    case $libs in *"$MOVED"*-lgilgate*) ;; *) die "--libs not under the moved prefix: $libs" || return 1 ;; esac
    PKG_CONFIG_PATH="$MOVED/lib/pkgconfig" pkg-config --validate gilgate 2>/dev/null || true
    say "gilgate $v: $cflags $libs"
}
do_pc_build() {
    local cmd
    # C99, strict warnings; gilgate's flags first, then Python's embedding flags.
    # shellcheck disable=SC2046,SC2086
    set -- cc -std=c99 -Wall -Wextra -pedantic -Werror \
        "$ROOT/c_tests/consumer_pkgconfig/main.c" -o "$PC_BIN" \
        $(PKG_CONFIG_PATH="$MOVED/lib/pkgconfig" pkg-config --cflags --libs gilgate) \
        $PYINCLUDES $PYLDFLAGS -lpthread \
        -Wl,-rpath,"$MOVED/lib" -Wl,-rpath,"$PYLIBDIR"
    echo "$*"
    "$@" || return 1
    say "built $PC_BIN"
}

step "tools (cc, c++, cmake, pkg-config)" ensure_tools || true
step "python at $PYPREFIX" find_python
if [ $FAIL -gt 0 ]; then finish; fi
if [ -n "${GILGATE_PACKAGING_PREFIX:-}" ]; then
    MOVED=$(cd "$GILGATE_PACKAGING_PREFIX" && pwd -P) || { echo "error: no $GILGATE_PACKAGING_PREFIX" >&2; exit 2; }
    step "existing prefix (GILGATE_PACKAGING_PREFIX)" expect_existing
else
    step "install.sh into a fresh prefix" do_install
    if [ $FAIL -gt 0 ]; then finish; fi
    step "install.sh again (idempotent)" do_reinstall
    step "install.sh rejects bad prefixes" do_bad_prefixes
    step "relocate the installed prefix" do_relocate
fi
if [ $FAIL -gt 0 ]; then finish; fi
step "cmake: version rules, target" do_version_rules
step "cmake consumer: configure" do_cmake_configure && {
    step "cmake consumer: build" do_cmake_build && {
        step "cmake consumer: link order, rpath" link_order "$CM_BUILD/consumer_cmake"
        step "cmake consumer: run" run_consumer "$CM_BUILD/consumer_cmake" consumer_cmake
        step "cmake consumer: ~allow_threads policy" run_death
    }
}
step "pkg-config: metadata" do_pc_metadata
step "pkg-config consumer: build" do_pc_build && {
    step "pkg-config consumer: link order, rpath" link_order "$PC_BIN"
    step "pkg-config consumer: run" run_consumer "$PC_BIN" consumer_pkgconfig
}
finish
