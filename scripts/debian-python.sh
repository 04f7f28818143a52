#!/usr/bin/env bash
# debian-python.sh -- obtain a CPython 3.14 / 3.15 build from Debian unstable
# binary packages and make it usable (headers, libpython, interpreter, stdlib,
# and a matching glibc + runtime libraries) on an older Debian host, without
# installing anything into the system.
#
# Usage:
#   bash scripts/debian-python.sh <3.X|3.Xd> [cache_dir]   (3.Xd: the Py_DEBUG build, 3.13d+)
#       Fetch (or reuse) the tree; last stdout line is
#         OK <version-full> <tree>
#       or, on failure (exit 3),
#         ABSENT <3.X> <reason>
#   bash scripts/debian-python.sh --env <3.X|3.Xd> [cache_dir]
#       Fetch if needed, then print KEY=VALUE lines (no export) for consumers:
#         PY_TREE PY_VERSION PY_INCLUDE PY_CFLAGS PY_LIBDIR PY_LDFLAGS
#         PY_LOADER PY_LIBRARY_PATH PY_HOME PY_EXE PY_PYTHON PY_TESTSUITE PY_RUN
#       (PY_RUN: empty, or for a foreign tree the words that replace PY_LOADER without
#       a shell in between, `qemu-<cpu>-static -L <tree> <tree's ld.so>`: a host shell
#       started with an LD_PRELOAD of the foreign architecture would print ld.so's error)
#       On failure prints the ABSENT line and exits 3: check the exit status
#       before eval'ing the output.
#
# Run an embedding host built with the machine's cc like this:
#   cc $PY_CFLAGS host.c $PY_LDFLAGS -o host
#   PYTHONHOME=$PY_HOME $PY_LOADER --library-path $PY_LIBRARY_PATH ./host
#
# Default cache dir: ${GILGATE_CACHE:-$HOME/.cache/gilgate}/debian-python
# Environment knobs:
#   GILGATE_DEBIAN_MIRROR   override the mirror base URL (default: the one the
#                           system's apt sources use for Debian main)
#   GILGATE_APT_KEYRING     keyring for Signed-By (default: the one the system's
#                           Debian source uses, else debian-archive-keyring)
#   GILGATE_APT_ALLOW_UNSIGNED=1  fall back to [trusted=yes] if the Release
#                           signature cannot be verified with the local
#                           keyrings (default: fail instead)
#   GILGATE_APT_LISTS_MAX_AGE     seconds before the private package lists are
#                           refreshed (default 21600)
#   GILGATE_DEBIAN_ARCH     Debian architecture of the tree (default: this machine's).
#                           A foreign one (arm64 on x86-64) runs under qemu-user:
#                           PY_LOADER is then <tree>/usr/bin/gilgate-qemu-loader, which
#                           starts the tree's own ld.so under qemu-<cpu>-static -L <tree>
#                           (binfmt_misc not needed); the smoke host is built with
#                           <triplet>-gcc (CC overrides). Use a cache dir per architecture.
#   GILGATE_DEBIAN_SUITE    suite(s) to take packages from (default "unstable experimental";
#                           e.g. "bookworm" for Debian 12's python3.11). Use a cache dir
#                           per suite: the private apt lists live in it.
#
# Nothing outside the cache dir is modified: apt runs with a private
# configuration (own sources, lists, cache, status), and packages are only
# downloaded (`apt-get download`) and unpacked with `dpkg -x`.

set -euo pipefail

PROG=debian-python.sh
TREE_FORMAT=2   # bump to invalidate existing caches when the layout changes

log()  { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

exec 8>&1   # the real stdout: result lines go here even while fetch output is diverted

MODE=fetch
if [[ ${1:-} == --env ]]; then MODE='env'; shift; fi
if [[ ${1:-} == -h || ${1:-} == --help ]]; then usage; fi
[[ $# -ge 1 && $# -le 2 ]] || usage
VER=$1
if ! [[ $VER =~ ^3\.[0-9]+d?$ ]]; then
    echo "ABSENT $VER bad-version-argument(expected 3.X or 3.Xd)"
    exit 3
fi
# 3.Xd: the assertion-enabled build (Py_DEBUG; Debian's python3.X-dbg and libpython3.X-dbg),
# unpacked over a copy of the release tree of the same Debian version, which supplies the
# pure-Python standard library. Its names carry the ABI flag: python3.Xd, libpython3.Xd.so,
# include/python3.Xd.
BASE=${VER%d}
DBG=0; [[ $VER == *d ]] && DBG=1
CACHE=${2:-${GILGATE_CACHE:-${HOME:-/root}/.cache/gilgate}/debian-python}

absent() {
    log "FAILED: $*"
    # reason must be one token-ish line; squeeze whitespace
    echo "ABSENT $VER $(printf '%s' "$*" | tr -s '[:space:]' ' ')" >&8
    exit 3
}

need_tool() { command -v "$1" >/dev/null 2>&1 || absent "missing-tool:$1"; }

mkdir -p "$CACHE" 2>/dev/null || absent "cannot-create-cache-dir:$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
VDIR=$CACHE/$VER
TREE=$VDIR/tree
STAMP=$VDIR/complete.stamp
APTDIR=$CACHE/apt

# ---------------------------------------------------------------------------
# Architecture facts
# ---------------------------------------------------------------------------
HOST_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ARCH=${GILGATE_DEBIAN_ARCH:-$HOST_ARCH}
SUITES=${GILGATE_DEBIAN_SUITE:-unstable experimental}
FOREIGN=0; [[ $ARCH != "$HOST_ARCH" ]] && FOREIGN=1
case $ARCH in
    amd64)   TRIPLET=x86_64-linux-gnu;    LDSO=ld-linux-x86-64.so.2 ;;
    arm64)   TRIPLET=aarch64-linux-gnu;   LDSO=ld-linux-aarch64.so.1 ;;
    ppc64el) TRIPLET=powerpc64le-linux-gnu; LDSO=ld64.so.2 ;;
    s390x)   TRIPLET=s390x-linux-gnu;     LDSO=ld64.so.1 ;;
    riscv64) TRIPLET=riscv64-linux-gnu;   LDSO=ld-linux-riscv64-lp64d.so.1 ;;
    i386)    TRIPLET=i386-linux-gnu;      LDSO=ld-linux.so.2 ;;
    *) echo "ABSENT $VER unsupported-architecture:$ARCH"; exit 3 ;;
esac
case $ARCH in  # qemu-user for a foreign tree
    amd64) QEMU_CPU=x86_64 ;; arm64) QEMU_CPU=aarch64 ;; ppc64el) QEMU_CPU=ppc64le ;;
    i386) QEMU_CPU=i386 ;; *) QEMU_CPU=$ARCH ;;
esac
QEMU=${GILGATE_QEMU:-qemu-$QEMU_CPU-static}

# ---------------------------------------------------------------------------
# Layout of an unpacked tree -> variables (used by both modes)
# ---------------------------------------------------------------------------
# shellcheck disable=SC2034  # variables are read indirectly by print_env
compute_layout() {
    local t=$1
    PY_TREE=$t
    PY_HOME=$t/usr
    PY_INCLUDE=$t/usr/include/python$VER
    # Debian's <python>/pyconfig.h is a dispatcher doing
    #   #include <TRIPLET/python3.X/pyconfig.h>
    # so $t/usr/include must be on the include path as well.
    PY_CFLAGS="-I$PY_INCLUDE -I$t/usr/include/$TRIPLET/python$VER -I$t/usr/include"
    PY_LIBDIR=$t/usr/lib/$TRIPLET
    # The host's libc.so.6 (older glibc) is what the linker sees; libpython
    # references newer GLIBC_2.xx symbol versions that only the tree's libc
    # provides at run time, hence --allow-shlib-undefined.
    PY_LDFLAGS="-L$PY_LIBDIR -lpython$VER -Wl,--allow-shlib-undefined"
    PY_LOADER=
    local c
    for c in "$t/usr/lib/$TRIPLET/$LDSO" "$t/lib/$TRIPLET/$LDSO" \
             "$t/usr/lib64/$LDSO" "$t/lib64/$LDSO" "$t/usr/lib/$LDSO" "$t/lib/$LDSO"; do
        # absolute symlinks inside the tree point into the HOST: skip them
        if [[ -f $c && ! -L $c ]] || { [[ -L $c ]] && [[ $(readlink "$c") != /* ]] && [[ -f $c ]]; }; then
            PY_LOADER=$c; break
        fi
    done
    # A foreign tree: its ld.so runs under qemu-user (write_qemu_loader makes the script).
    PY_LDSO=$PY_LOADER PY_RUN=
    if (( FOREIGN )) && [[ -n $PY_LOADER ]]; then
        PY_LOADER=$t/usr/bin/gilgate-qemu-loader
        PY_RUN="$QEMU -L $t $PY_LDSO"
    fi
    local dirs=() d
    for d in "$t/usr/lib/$TRIPLET" "$t/lib/$TRIPLET" "$t/usr/lib64" "$t/lib64"; do
        [[ -d $d ]] && dirs+=("$d")
    done
    PY_LIBRARY_PATH=$(IFS=:; echo "${dirs[*]}")
    PY_EXE=$t/usr/bin/python$VER
    PY_PYTHON=$t/usr/bin/python$VER-run
    if [[ -d $t/usr/lib/python$BASE/test/libregrtest ]]; then PY_TESTSUITE=1; else PY_TESTSUITE=0; fi
}

# A foreign tree: <tree>/usr/bin/gilgate-qemu-loader runs the tree's ld.so under qemu-user with
# the tree as qemu's sysroot (-L: the guest's absolute paths are looked up there first), so
# `gilgate-qemu-loader --library-path DIRS PROGRAM ARGS` works like the native loader.
write_qemu_loader() {
    local t=$1 rel
    compute_layout "$t"
    rel=${PY_LDSO#"$t"/}
    cat > "$t/usr/bin/gilgate-qemu-loader" <<EOF
#!/bin/sh
# Generated by gilgate scripts/debian-python.sh: the tree's $ARCH ld.so under qemu-user.
here=\$(cd "\$(dirname "\$0")" && pwd -P)
tree=\${here%/usr/bin}
exec "\${GILGATE_QEMU:-$QEMU}" -L "\$tree" "\$tree/$rel" "\$@"
EOF
    chmod +x "$t/usr/bin/gilgate-qemu-loader"
}

# Run the tree's interpreter through the tree's loader.
tree_python() {
    PYTHONHOME=$PY_HOME "$PY_LOADER" --library-path "$PY_LIBRARY_PATH" "$PY_EXE" "$@"
}

print_env() {
    local k
    for k in PY_TREE PY_VERSION PY_INCLUDE PY_CFLAGS PY_LIBDIR PY_LDFLAGS \
             PY_LOADER PY_LIBRARY_PATH PY_HOME PY_EXE PY_PYTHON PY_TESTSUITE PY_RUN; do
        # single-quote values so the output is safe to eval
        printf "%s='%s'\n" "$k" "${!k//\'/\'\\\'\'}"
    done
}

cached_ok() {
    [[ -f $STAMP ]] || return 1
    local fmt ver
    fmt=$(sed -n 's/^format=//p' "$STAMP")
    ver=$(sed -n 's/^version=//p' "$STAMP")
    [[ $fmt == "$TREE_FORMAT" && -n $ver && -d $TREE ]] || return 1
    compute_layout "$TREE"
    [[ -n $PY_LOADER && -x $PY_LOADER && -x $PY_EXE ]] || return 1
    PY_VERSION=$ver
}

# ---------------------------------------------------------------------------
# Private apt configuration
# ---------------------------------------------------------------------------
detect_mirror() {
    if [[ -n ${GILGATE_DEBIAN_MIRROR:-} ]]; then
        MIRROR=${GILGATE_DEBIAN_MIRROR%/}; KEYRING=; return
    fi
    MIRROR=; KEYRING=
    local f
    # deb822 .sources files
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        local out
        out=$(awk '
            function flush() {
                if (uris != "" && suites != "" && suites !~ /security/ && uris ~ /\/debian\/?( |$)/ && types ~ /(^| )deb( |$)/ && comps ~ /main/) {
                    split(uris, u, " "); print u[1] "\t" sb; found = 1; exit
                }
                uris = suites = types = comps = sb = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { line = $0; key = tolower($1); sub(/^[^:]*:[ \t]*/, "", line) }
            key == "uris:"      { uris = line }
            key == "suites:"    { suites = line }
            key == "types:"     { types = line }
            key == "components:" { comps = line }
            key == "signed-by:" { sb = line }
            END { if (!found) flush() }
        ' "$f")
        if [[ -n $out ]]; then
            MIRROR=${out%%$'\t'*}; KEYRING=${out#*$'\t'}; break
        fi
    done
    # one-line sources.list format
    if [[ -z $MIRROR ]]; then
        local l
        l=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed 's/#.*//' \
            | awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                                 if ($i ~ /\/debian\/?$/ && $(i+1) !~ /security/) { print $i; exit } }')
        MIRROR=$l
    fi
    [[ -n $MIRROR ]] || MIRROR=http://deb.debian.org/debian
    MIRROR=${MIRROR%/}
    # Signed-By may be an inline key block (starts on next line) -> ignore
    [[ -n $KEYRING && -f $KEYRING ]] || KEYRING=
}

setup_apt() {
    detect_mirror
    local kr=${GILGATE_APT_KEYRING:-${KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}}
    [[ -f $kr ]] || kr=
    mkdir -p "$APTDIR"/{etc/sources.list.d,etc/preferences.d,etc/apt.conf.d,etc/trusted.gpg.d,state/lists/partial,cache/archives/partial,log}
    : > "$APTDIR/state/status"
    local signed
    if [[ ${APT_UNSIGNED:-0} == 1 || -z $kr ]]; then
        signed="Trusted: yes"
    else
        signed="Signed-By: $kr"
    fi
    # experimental is NotAutomatic (priority 1): it only provides candidates for
    # packages unstable does not carry at all.
    cat > "$APTDIR/etc/sources.list.d/gilgate-sid.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITES
Components: main
Architectures: $ARCH
$signed
EOF
    cat > "$APTDIR/apt.conf" <<EOF
Dir::Etc "$APTDIR/etc";
Dir::Etc::sourcelist "$APTDIR/etc/sources.list.d/gilgate-sid.sources";
Dir::Etc::sourceparts "$APTDIR/etc/sources.list.d";
Dir::Etc::preferences "$APTDIR/etc/preferences";
Dir::Etc::preferencesparts "$APTDIR/etc/preferences.d";
Dir::Etc::parts "$APTDIR/etc/apt.conf.d";
Dir::Etc::main "$APTDIR/etc/apt.conf";
Dir::Etc::trusted "$APTDIR/etc/trusted.gpg";
Dir::Etc::trustedparts "$APTDIR/etc/trusted.gpg.d";
Dir::State "$APTDIR/state";
Dir::State::lists "$APTDIR/state/lists";
Dir::State::status "$APTDIR/state/status";
Dir::Cache "$APTDIR/cache";
Dir::Cache::archives "$APTDIR/cache/archives";
Dir::Cache::pkgcache "$APTDIR/cache/pkgcache.bin";
Dir::Cache::srcpkgcache "$APTDIR/cache/srcpkgcache.bin";
Dir::Log "$APTDIR/log";
APT::Architecture "$ARCH";
APT::Architectures { "$ARCH"; };
APT::Get::List-Cleanup "true";
APT::Sandbox::User "$(id -un)";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::Retries "3";
// The mirror may serve a frozen snapshot whose Valid-Until lies in the past;
// signatures are still verified.
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
EOF
    export APT_CONFIG=$APTDIR/apt.conf
}

# the default (native, unstable) keeps the stamp line of earlier caches
stamp_extra() { [[ $ARCH == "$HOST_ARCH" && $SUITES == "unstable experimental" ]] || printf ' %s %s' "$ARCH" "$SUITES"; }

apt_update() {
    local max=${GILGATE_APT_LISTS_MAX_AGE:-21600} stampf=$APTDIR/state/updated.stamp
    if [[ -f $stampf ]] && [[ $(sed -n 1p "$stampf") == "$MIRROR ${APT_UNSIGNED:-0} ${GILGATE_APT_KEYRING:-}$(stamp_extra)" ]] \
       && (( $(date +%s) - $(stat -c %Y "$stampf") < max )); then
        log "private package lists are fresh (< ${max}s), skipping apt-get update"
        return 0
    fi
    log "apt-get update (private config, $MIRROR $SUITES, $ARCH)"
    local out rc=0
    out=$(apt-get -q update 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/  apt: /' >&2
    # apt-get update exits 0 even when a source is rejected; look for errors
    local errpat='^(E:|W: GPG error|Err:)'
    [[ ${APT_UNSIGNED:-0} == 1 ]] && errpat='^(E:|Err:)'
    if (( rc != 0 )) || grep -qE "$errpat" <<<"$out"; then
        if grep -qE 'NO_PUBKEY|GPG error|not signed|EXPKEYSIG|is not signed' <<<"$out" \
           && [[ ${APT_UNSIGNED:-0} != 1 && ${GILGATE_APT_ALLOW_UNSIGNED:-0} == 1 ]]; then
            log "WARNING: signature verification failed; retrying with [trusted=yes] (GILGATE_APT_ALLOW_UNSIGNED=1)"
            APT_UNSIGNED=1 setup_apt_unsigned
            return $?
        fi
        return 1
    fi
    printf '%s %s %s%s\n' "$MIRROR" "${APT_UNSIGNED:-0}" "${GILGATE_APT_KEYRING:-}" "$(stamp_extra)" > "$stampf"
}

setup_apt_unsigned() {
    APT_UNSIGNED=1
    setup_apt
    rm -f "$APTDIR/state/updated.stamp"
    apt_update
}

candidate() {  # print candidate version of $1 (empty if none)
    apt-cache policy "$1" 2>/dev/null | awk '/^  Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# Depends/Pre-Depends closure of the runtime set. Data/config packages that
# are irrelevant for loading libpython (and that pull in debconf, perl...) are
# cut off; the host's copies of those files are used instead.
STOP_RE='^(tzdata|netbase|media-types|mime-support|debconf|cdebconf|debconf-2.0|perl-base|dpkg|install-info|python3\.[0-9]+|python3|net-tools|.*-dev|.*-doc|libc-dev-bin|linux-libc-dev|rpcsvc-proto|libcrypt-dev|libnsl-dev|libtirpc-dev)$'
closure() {
    declare -A seen=()
    local queue=("$@") next p n
    for p in "$@"; do seen[$p]=1; done
    while (( ${#queue[@]} )); do
        next=()
        while read -r n; do
            n=${n%%:*}
            [[ -z $n || -n ${seen[$n]:-} ]] && continue
            seen[$n]=1
            [[ $n =~ $STOP_RE ]] && continue
            next+=("$n")
        done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
                    --no-breaks --no-replaces --no-enhances "${queue[@]}" 2>/dev/null \
                 | sed -nE 's/^ +\|?(Pre)?Depends: ([^< ][^ ]*)$/\2/p' | sort -u)
        queue=("${next[@]}")
    done
    declare -A seed=()
    for p in "$@"; do seed[$p]=1; done
    for p in "${!seen[@]}"; do
        [[ -z ${seed[$p]:-} && $p =~ $STOP_RE ]] && continue
        echo "$p"
    done | sort
}

# ---------------------------------------------------------------------------
# Smoke test of a freshly unpacked tree: interpreter, stdlib extension modules,
# and a C embedding host compiled with the machine's cc.
# ---------------------------------------------------------------------------
verify_tree() {
    local t=$1 out
    compute_layout "$t"
    [[ -n $PY_LOADER ]] || { log "no $LDSO in tree"; return 1; }
    [[ -f $PY_INCLUDE/Python.h ]] || { log "no Python.h in $PY_INCLUDE"; return 1; }
    [[ -f $t/usr/include/$TRIPLET/python$VER/pyconfig.h ]] || { log "no multiarch pyconfig.h"; return 1; }
    [[ -e $PY_LIBDIR/libpython$VER.so ]] || { log "no libpython$VER.so symlink (from -dev)"; return 1; }
    out=$(tree_python -c 'import platform; print(platform.python_version())' 2>&1) \
        || { log "interpreter does not run: $out"; return 1; }
    PY_VERSION=$(tail -n1 <<<"$out")
    [[ $PY_VERSION == "$BASE".* ]] || { log "unexpected version '$PY_VERSION'"; return 1; }
    log "interpreter runs: $PY_VERSION"
    if (( DBG )); then
        # Py_DEBUG builds have sys.gettotalrefcount and the "d" ABI flag; a release build has neither.
        out=$(tree_python -c 'import sys; print(sys.abiflags, hasattr(sys, "gettotalrefcount"))' 2>&1) \
            || { log "debug interpreter: $out"; return 1; }
        [[ $(tail -n1 <<<"$out") == "d True" ]] || { log "not a Py_DEBUG build: $out"; return 1; }
        log "Py_DEBUG build: abiflags=d, sys.gettotalrefcount present"
    fi
    # core modules must import; optional ones only warn
    tree_python -c 'import sys, time, threading, hashlib, os, ssl, ctypes, zlib, _decimal, pyexpat, json, sqlite3, lzma, bz2' >&2 \
        || { log "core stdlib modules fail to import"; return 1; }
    tree_python - >&2 <<'PYEOF' || true
import importlib, sys
bad = []
for m in ("readline", "curses", "uuid", "_uuid", "ssl", "_ctypes", "zoneinfo", "multiprocessing", "_hashlib", "_blake2", "dbm"):
    try:
        importlib.import_module(m)
    except Exception as e:
        bad.append(f"{m}: {e}")
if bad:
    print("debian-python.sh: note: optional modules failing:", *bad, sep="\n  ", file=sys.stderr)
PYEOF
    # Unresolvable DT_NEEDED entries of libpython and lib-dynload modules
    if command -v readelf >/dev/null 2>&1; then
        local missing=() f lib
        declare -A have=()
        for f in ${PY_LIBRARY_PATH//:/ }; do
            for lib in "$f"/*.so*; do have[${lib##*/}]=1; done
        done
        for f in "$PY_LIBDIR/libpython$VER.so.1"* "$t/usr/lib/python$BASE/lib-dynload/"*.so; do
            [[ -f $f ]] || continue
            while read -r lib; do
                [[ -z ${have[$lib]:-} ]] && missing+=("${f##*/}->$lib")
            done < <(readelf -d "$f" 2>/dev/null | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
        done
        if (( ${#missing[@]} )); then
            log "note: NEEDED libraries not in tree (resolved from host, if at all): ${missing[*]}"
        fi
    fi
    # Embedding host
    local cc=${CC:-cc}
    if (( FOREIGN )); then cc=${CC:-$TRIPLET-gcc}; fi
    if command -v "$cc" >/dev/null 2>&1; then
        local w
        w=$(mktemp -d)
        cat > "$w/host.c" <<'CEOF'
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int main(void) {
    Py_Initialize();
    if (PyRun_SimpleString("import sys, time, threading, hashlib, os; print(sys.version)") != 0) return 2;
    return Py_FinalizeEx() < 0 ? 3 : 0;
}
CEOF
        # shellcheck disable=SC2086
        if ! out=$("$cc" $PY_CFLAGS "$w/host.c" $PY_LDFLAGS -o "$w/host" 2>&1); then
            log "embedding host does not compile/link: $out"; rm -rf "$w"; return 1
        fi
        if ! out=$(PYTHONHOME=$PY_HOME "$PY_LOADER" --library-path "$PY_LIBRARY_PATH" "$w/host" 2>&1); then
            log "embedding host fails to run: $out"; rm -rf "$w"; return 1
        fi
        rm -rf "$w"
        log "embedding host OK: $(head -n1 <<<"$out")"
    else
        log "note: no C compiler ($cc); embedding smoke test skipped"
    fi
}

# Absolute symlinks in the packages (e.g. usr/lib/python3.X/sitecustomize.py ->
# /etc/python3.X/sitecustomize.py) would point into the HOST; re-point them
# inside the tree when the target was unpacked too.
relativize_symlinks() {
    local t=$1 l target dir
    while IFS= read -r -d '' l; do
        target=$(readlink "$l")
        [[ -e $t$target || -L $t$target ]] || continue
        dir=$(dirname "$l")
        ln -sfn "$(realpath -m -s --relative-to="$dir" "$t$target")" "$l"
    done < <(find "$t" -type l -lname '/*' -print0)
}

# Wrapper so that the interpreter can be exec'd directly (subprocesses,
# sys.executable, the regression test suite). It lives in <tree>/usr/bin so
# CPython finds its prefix from argv[0] even under -I / -E.
write_wrapper() {
    local t=$1 lrel lp_rel=() d
    if (( FOREIGN )); then write_qemu_loader "$t"; fi
    lrel=${PY_LOADER#"$1"/}
    for d in ${PY_LIBRARY_PATH//:/ }; do lp_rel+=("\$tree/${d#"$t"/}"); done
    cat > "$t/usr/bin/python$VER-run" <<EOF
#!/bin/sh
# Generated by gilgate scripts/debian-python.sh: run the tree's python$VER
# through the tree's dynamic loader and glibc.
here=\$(cd "\$(dirname "\$0")" && pwd -P)
tree=\${here%/usr/bin}
exec "\$tree/$lrel" --library-path "$(IFS=:; echo "${lp_rel[*]}")" --argv0 "\$here/python$VER-run" "\$here/python$VER" "\$@"
EOF
    chmod +x "$t/usr/bin/python$VER-run"
}

# ---------------------------------------------------------------------------
# Fetch
# ---------------------------------------------------------------------------
do_fetch() {
    need_tool apt-get; need_tool apt-cache; need_tool dpkg-deb; need_tool dpkg; need_tool flock
    if (( FOREIGN )); then need_tool "$QEMU"; fi
    local t0=$SECONDS
    setup_apt
    apt_update || absent "apt-get-update-failed(private config, mirror $MIRROR)"

    local pyver src
    pyver=$(candidate "libpython$VER") 
    [[ -n $pyver ]] || absent "no-libpython$VER-in-debian-${SUITES// /-or-}-$ARCH"
    src=$(apt-cache policy "libpython$VER" | awk -v v="$pyver" '$1=="***" && $2==v {getline; print $3; exit} $1==v {getline; print $3; exit}')
    log "libpython$VER candidate: $pyver (${src:-?})"

    local pypkgs=("libpython$VER" "libpython$VER-minimal" "libpython$VER-stdlib" "libpython$VER-dev" "python$VER-minimal")
    local p
    for p in "${pypkgs[@]}"; do
        [[ -n $(candidate "$p") ]] || absent "package-$p-not-available"
    done
    local deps
    deps=$(closure libc6 "${pypkgs[@]}") || absent "dependency-resolution-failed"
    local pinned=() d
    for d in $deps; do
        case " ${pypkgs[*]} " in
            *" $d "*) pinned+=("$d=$pyver") ;;
            *) pinned+=("$d") ;;
        esac
    done
    log "packages: ${pinned[*]}"

    mkdir -p "$VDIR"
    local dl=$VDIR/debs
    rm -rf "$dl"; mkdir -p "$dl"
    (cd "$dl" && apt-get -q download "${pinned[@]}" >&2) \
        || absent "apt-get-download-failed"
    # optional: regression test suite (+ python3.X which it depends on)
    local extra
    for extra in "libpython$VER-testsuite" "python$VER"; do
        if [[ $(candidate "$extra") == "$pyver" ]]; then
            (cd "$dl" && apt-get -q download "$extra=$pyver" >&2) \
                || log "note: optional $extra could not be downloaded"
        else
            log "note: optional $extra=$pyver not available"
        fi
    done

    local tmp=$VDIR/tree.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    local deb
    for deb in "$dl"/*.deb; do
        dpkg -x "$deb" "$tmp" || { rm -rf "$tmp"; absent "dpkg-x-failed:${deb##*/}"; }
    done
    # Manifest of what went in
    (cd "$dl" && for deb in *.deb; do dpkg-deb -f "$deb" Package Version | sed 's/^[^:]*: //' | paste -sd' '; done) > "$tmp/.gilgate-packages"

    relativize_symlinks "$tmp"
    compute_layout "$tmp"
    [[ -n $PY_LOADER ]] && write_wrapper "$tmp"
    if ! verify_tree "$tmp"; then
        rm -rf "$tmp"
        absent "verification-failed(see stderr)"
    fi
    rm -rf "$TREE" "$STAMP"
    mv "$tmp" "$TREE"
    rm -rf "$dl"
    compute_layout "$TREE"
    {
        echo "format=$TREE_FORMAT"
        echo "version=$PY_VERSION"
        echo "debian_version=$pyver"
        echo "suite=${src:-unknown}"
        echo "mirror=$MIRROR"
        echo "testsuite=$PY_TESTSUITE"
        echo "fetched=$(date -u +%FT%TZ)"
    } > "$STAMP"
    log "tree ready in $((SECONDS - t0))s: $TREE (debian $pyver, testsuite=$PY_TESTSUITE)"
}

# 3.Xd: a hard-linked copy of the release tree 3.X (fetched first, same cache) with Debian's
# libpython3.X-dbg and python3.X-dbg of the SAME Debian version unpacked over it. A -dbg of
# another version than the cached release tree is not mixed in: ABSENT (refetch the release tree,
# e.g. by removing <cache>/3.X/complete.stamp, to move both to the current version).
do_fetch_dbg() {
    need_tool apt-get; need_tool apt-cache; need_tool dpkg-deb; need_tool dpkg
    if (( FOREIGN )); then need_tool "$QEMU"; fi
    local t0=$SECONDS rel_tree=$CACHE/$BASE/tree rel_stamp=$CACHE/$BASE/complete.stamp
    [[ -f $rel_stamp && -d $rel_tree ]] || absent "release-tree-$BASE-missing(fetch of $BASE failed)"
    local pyver
    pyver=$(sed -n 's/^debian_version=//p' "$rel_stamp")
    [[ -n $pyver ]] || absent "release-tree-$BASE-has-no-debian_version"
    setup_apt
    apt_update || absent "apt-get-update-failed(private config, mirror $MIRROR)"
    local dbgpkgs=("libpython$BASE-dbg" "python$BASE-dbg") p
    for p in "${dbgpkgs[@]}"; do
        [[ -n $(candidate "$p") ]] || absent "package-$p-not-available"
    done
    mkdir -p "$VDIR"
    local dl=$VDIR/debs
    rm -rf "$dl"; mkdir -p "$dl"
    (cd "$dl" && apt-get -q download "${dbgpkgs[@]/%/=$pyver}" >&2) \
        || absent "apt-get-download-failed(${dbgpkgs[*]} at the release tree's $pyver; candidate $(candidate "libpython$BASE-dbg"))"
    local tmp=$VDIR/tree.tmp.$$
    rm -rf "$tmp"
    cp -al "$rel_tree" "$tmp" 2>/dev/null || cp -a "$rel_tree" "$tmp" || { rm -rf "$tmp"; absent "cannot-copy-release-tree"; }
    rm -f "$tmp/usr/bin/python$BASE-run" "$tmp/usr/bin/gilgate-qemu-loader"
    local deb
    for deb in "$dl"/*.deb; do
        # dpkg -x replaces files (new inodes), so the release tree's hard links stay intact
        dpkg -x "$deb" "$tmp" || { rm -rf "$tmp"; absent "dpkg-x-failed:${deb##*/}"; }
    done
    (cd "$dl" && for deb in *.deb; do dpkg-deb -f "$deb" Package Version | sed 's/^[^:]*: //' | paste -sd' '; done) >> "$tmp/.gilgate-packages"
    relativize_symlinks "$tmp"
    compute_layout "$tmp"
    [[ -n $PY_LOADER ]] && write_wrapper "$tmp"
    if ! verify_tree "$tmp"; then
        rm -rf "$tmp"
        absent "verification-failed(see stderr)"
    fi
    rm -rf "$TREE" "$STAMP"
    mv "$tmp" "$TREE"
    rm -rf "$dl"
    ensure_ldso_debug "$TREE"
    compute_layout "$TREE"
    {
        echo "format=$TREE_FORMAT"
        echo "version=$PY_VERSION"
        echo "debian_version=$pyver"
        echo "debug=1"
        echo "suite=$(sed -n 's/^suite=//p' "$rel_stamp")"
        echo "mirror=$MIRROR"
        echo "testsuite=$PY_TESTSUITE"
        echo "fetched=$(date -u +%FT%TZ)"
    } > "$STAMP"
    log "debug tree ready in $((SECONDS - t0))s: $TREE (debian $pyver, Py_DEBUG)"
}

# valgrind refuses to start a program whose dynamic loader has no symbol table (it must redirect
# the loader's strlen/memcmp), and Debian's ld.so is stripped: put the loader's debug file from
# libc6-dbg (same version as the tree's libc6) where valgrind looks for it, <libdir>/.debug/<the
# loader's .gnu_debuglink name>. Only the debug trees get it (c_tests/valgrind.sh runs one);
# a failure here is a note, not ABSENT: only valgrind needs it.
ensure_ldso_debug() {
    local t=$1 ld libc link have dl tmp f
    (( FOREIGN )) && return 0   # valgrind does not run a foreign tree
    compute_layout "$t"
    ld=$PY_LOADER
    [[ -n $ld ]] || return 0
    link=$(readelf -p .gnu_debuglink "$ld" 2>/dev/null | sed -nE 's/^ *\[ *0\] *([^ ]+\.debug).*/\1/p')
    [[ -n $link ]] || { log "note: $ld has no .gnu_debuglink; valgrind will not start"; return 0; }
    [[ -f $(dirname "$ld")/.debug/$link ]] && return 0
    libc=$(awk '$1 == "libc6" { print $2 }' "$t/.gilgate-packages" 2>/dev/null)
    [[ -n $libc ]] || { log "note: libc6 version of the tree unknown; no ld.so debug file"; return 0; }
    setup_apt
    dl=$(mktemp -d)
    if ! (cd "$dl" && apt-get -q download "libc6-dbg=$libc" >&2); then
        log "note: libc6-dbg=$libc not downloadable; valgrind will not start on this tree"; rm -rf "$dl"; return 0
    fi
    tmp=$dl/x; mkdir -p "$tmp"
    dpkg -x "$dl"/libc6-dbg_*.deb "$tmp"
    f=$(find "$tmp/usr/lib/debug" -name "$link" -print -quit)
    if [[ -n $f ]]; then
        mkdir -p "$(dirname "$ld")/.debug" && cp "$f" "$(dirname "$ld")/.debug/$link"
        log "ld.so debug file for valgrind: $(dirname "$ld")/.debug/$link (libc6-dbg $libc)"
    else
        log "note: libc6-dbg=$libc has no $link"
    fi
    rm -rf "$dl"
}

# A foreign tree also gets the C++ runtime (libstdc++6: the C++ hosts built with the cross g++
# need it; libpython does not pull it in), topped up into trees fetched without it.
ensure_foreign_extras() {
    (( FOREIGN )) || return 0
    compute_layout "$TREE"
    [[ -e $PY_LIBDIR/libstdc++.so.6 ]] && return 0
    setup_apt
    apt_update || { log "note: apt-get update failed; no libstdc++6 in $TREE"; return 0; }
    local dl
    dl=$(mktemp -d)
    if (cd "$dl" && apt-get -q download libstdc++6 >&2); then
        dpkg -x "$dl"/libstdc++6_*.deb "$TREE" && log "libstdc++6 unpacked into $TREE"
    else
        log "note: libstdc++6 not downloadable; C++ hosts will not start on this tree"
    fi
    rm -rf "$dl"
}

# A foreign tree also gets its standard library's bytecode (__pycache__/*.pyc), as Debian's
# postinst (py3compile) gives an installed CPython. Without it every interpreter start compiles
# the modules it imports from source, and under emulation that dominates: a Py_DEBUG build has
# no frozen stdlib modules (-X frozen_modules defaults to off there) and is built unoptimised,
# so `python3.14d -c pass` under qemu-aarch64 took 148 s (34 s of CPU) without .pyc files and
# 12 s (8 s of CPU) with them (2026-12-06, load ~7). The runs themselves cannot write them:
# PYTHONDONTWRITEBYTECODE is often set. Compiled once with the tree's release interpreter
# (a debug tree, a hard-linked copy of the release tree, inherits the release tree's .pyc
# files; the cache tag is the same), or by a native CPython of the same magic number (below);
# the tests, idlelib, tkinter, lib2to3 are left out.
ensure_foreign_pycs() {
    (( FOREIGN )) || return 0
    [[ ${GILGATE_DEBIAN_PYC:-1} == 0 ]] && return 0
    local stamp=$VDIR/pyc.stamp t0=$SECONDS
    [[ -f $stamp ]] && return 0
    compute_layout "$TREE"
    local rc=0 native= py tree_magic magic='import importlib.util as u, sys; sys.stdout.write(u.MAGIC_NUMBER.hex())'
    local -a run=(env -u PYTHONDONTWRITEBYTECODE PYTHONHOME="$PY_HOME" $PY_RUN --library-path "$PY_LIBRARY_PATH" "$TREE/usr/bin/python$BASE")
    # Bytecode does not depend on the architecture: a native CPython of the same minor version
    # and the same magic number writes the same files at native speed (seconds instead of
    # minutes of emulation: 167 s for 3.13 at load ~6, most of a cold arm64 tree's cost).
    tree_magic=$("${run[@]}" -c "$magic" 2>/dev/null) || tree_magic=
    for py in "$(command -v "python$BASE" 2>/dev/null)" "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$BASE".*/bin/"python$BASE"; do
        if [[ -n $tree_magic && -x $py && $("$py" -c "$magic" 2>/dev/null) == "$tree_magic" ]]; then native=$py; break; fi
    done
    if [[ -n $native ]]; then
        log "compiling $TREE/usr/lib/python$BASE/**/*.py to .pyc with $native (same magic number $tree_magic; once per tree)"
        run=(env -u PYTHONDONTWRITEBYTECODE "$native")
    else
        log "compiling $TREE/usr/lib/python$BASE/**/*.py to .pyc under $QEMU (once per tree)"
    fi
    "${run[@]}" -m compileall -q -x '/(tests?|idlelib|tkinter|turtledemo|lib2to3)/' \
        "$TREE/usr/lib/python$BASE" >/dev/null 2>&1 || rc=$?
    # compileall's status is 1 when any one file did not compile (e.g. deliberately broken test
    # data); the others are compiled all the same.
    echo "compiled=$(date -u +%FT%TZ) seconds=$((SECONDS - t0)) compileall_status=$rc by=${native:-$QEMU}" > "$stamp"
    log "stdlib bytecode compiled in $((SECONDS - t0))s (compileall status $rc)"
}

main() {
    if (( DBG )); then
        # the release tree first (its own lock; its OK/ABSENT line is not ours)
        bash "$0" "$BASE" "$CACHE" >/dev/null \
            || absent "release-tree-$BASE-absent(needed under the debug build)"
    fi
    mkdir -p "$VDIR" || absent "cannot-create:$VDIR"
    # serialise concurrent runs for the same cache (they share the apt dir)
    exec 9>"$CACHE/.lock"
    flock 9 || absent "cannot-lock:$CACHE/.lock"
    if cached_ok; then
        log "using cached tree $TREE"
        (( DBG )) && ensure_ldso_debug "$TREE" >&2
    else
        local f=do_fetch
        (( DBG )) && f=do_fetch_dbg
        if [[ $MODE == env ]]; then
            $f >&2
        else
            $f
        fi
    fi
    ensure_foreign_extras >&2
    ensure_foreign_pycs >&2
    if [[ $MODE == env ]]; then
        print_env
    else
        echo "OK $PY_VERSION $TREE"
    fi
}

main
