#!/usr/bin/env bash
# Instructions executed inside libgilgate.so per save+restore and per ensure+release pair, under
# qemu-user, for the aarch64 and x86-64 builds, each with its assembly entries (the default) and
# with the portable C entries of `--features portable-entries`. No timings: qemu counts guest
# instructions, which do not depend on the machine's load.
#   benches/instructions-qemu.sh [3.13 3.14 ...]     (default: 3.13 3.14, Debian unstable trees)
#   QEMU_BUILDS="aarch64 x86_64" (default: all four below), QEMU_ONLY_PEP788=1 (the second table only)
# How: qemu-<cpu>-static -singlestep -d exec,nochain -dfilter <libgilgate's text> logs one line
# per guest instruction executed in libgilgate (this qemu has no plugin support, so no
# libinsn.so); benches/ir.c runs 200 and 2200 pairs; (b - a) / 2000 cancels start-up. The library
# base comes from the guest ld.so's LD_DEBUG=files (qemu-user maps deterministically).
# "raw" calls libpython directly (GILGATE_DLSYM=0): it must count 0 (a check of the method).
# Then a second table: PEP 788's guard pair (benches/pep788_pair.c `guard`: PyThreadState_Ensure/
# Release on an open guard, include/gilgate_pep788.h's names: gilgate's compat exports below 3.15,
# CPython's own from 3.15 on, where libgilgate counts 0), next to the API's gilstate pair of the
# same binary, and what CPython's "attached thread state" getter (PyThreadState_GetUnchecked, in
# libpython) executes per guard pair: the compat path calls it unless it reads CPython's
# thread-local itself (x86-64's assembly, when pep788_compat.rs `tls_getter` proved where it is).
# Needs: scripts/arm64.sh --build-only (the aarch64 build and arm64 trees), cargo build --release
# and the portable build in target/portable (./test.sh makes it), the x86-64 Debian trees; for
# the aarch64 C row, the portable aarch64 build (with scripts/arm64.sh's environment):
#   cargo build --release --target aarch64-unknown-linux-gnu -p gilgate --features portable-entries \
#     --target-dir target/portable
# A build that is absent gets a row saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
export GILGATE_DLSYM=0
vers=("$@"); [ ${#vers[@]} -gt 0 ] || vers=(3.13 3.14)
cache=${GILGATE_CACHE:-$HOME/.cache/gilgate}
out=target/bench-qemu; mkdir -p "$out"
p788=()
echo "| build | CPython | pair | raw | gilgate_* API | exported drop-in |"
echo "|---|---|---|---|---|---|"
for build in ${QEMU_BUILDS:-aarch64 aarch64-portable x86_64 x86_64-portable}; do
  case $build in
    aarch64|aarch64-portable)
             libsrc=target/aarch64-unknown-linux-gnu/release; cc=aarch64-linux-gnu-gcc; qemu=qemu-aarch64-static
             [ $build = aarch64 ] || libsrc=target/portable/aarch64-unknown-linux-gnu/release
             envs=(GILGATE_DEBIAN_ARCH=arm64); pycache=$cache/debian-python-arm64 ;;
    x86_64) libsrc=target/release; cc=gcc; qemu=qemu-x86_64-static; envs=(); pycache=$cache/debian-python ;;
    x86_64-portable) libsrc=target/portable/release; cc=gcc; qemu=qemu-x86_64-static; envs=(); pycache=$cache/debian-python ;;
  esac
  [ -f "$libsrc/libgilgate.so" ] || { echo "| $build | absent ($libsrc/libgilgate.so not built) | | | | |"; continue; }
  lib=$PWD/$out/lib-$build; mkdir -p "$lib"
  ln -sf "$PWD/$libsrc/libgilgate.so" "$lib/libgilgate.so"; ln -sf "$PWD/$libsrc/libgilgate.so" "$lib/libgilgate.so.0"
  for v in "${vers[@]}"; do
    env_out=$(env "${envs[@]}" bash scripts/debian-python.sh --env "$v" "$pycache" 2>/dev/null) \
      || { echo "| $build | $v absent | | | | |"; continue; }
    eval "$env_out"
    exe=$out/ir-$build-$v
    # shellcheck disable=SC2086
    $cc -O2 -Iinclude $PY_CFLAGS benches/ir.c -o "$exe" -L"$lib" -lgilgate -Wl,-rpath,"$lib" $PY_LDFLAGS -ldl
    ldso=${PY_RUN:+${PY_RUN##* }}; ldso=${ldso:-$PY_LOADER}
    run=("$qemu" -L "$PY_TREE" "$ldso" --library-path "$PY_LIBRARY_PATH")
    base_size=$(PYTHONHOME=$PY_HOME LD_DEBUG=files "${run[@]}" "$exe" raw 1 2>&1 >/dev/null \
      | awk '/file=libgilgate.so.0 .*generating link map/ { getline; print $5 "+" $7 }' || true)
    [ -n "$base_size" ] || { echo "| $build | $v: libgilgate's base not found | | | | |"; continue; }
    count() { PYTHONHOME=$PY_HOME QEMU_LOG=exec,nochain QEMU_SINGLESTEP=1 QEMU_DFILTER=$base_size \
      QEMU_LOG_FILENAME=/dev/stderr "${run[@]}" "$exe" "$1" "$2" 2>&1 >/dev/null | grep -c '^Trace' || true; }
    for pair in "save+restore:" "ensure+release:_gs"; do
      [ "${QEMU_ONLY_PEP788:-0}" = 0 ] || break
      row="| $build | $PY_VERSION | ${pair%%:*}"; sfx=${pair#*:}
      for m in raw api exported; do
        a=$(count "$m$sfx" 200); b=$(count "$m$sfx" 2200)
        row="$row | $(( (b - a) / 2000 ))"
      done
      echo "$row |"
    done
    # PEP 788's guard pair (and the API pair and raw of the same binary, as checks).
    exe788=$out/pep788-$build-$v
    # shellcheck disable=SC2086
    $cc -O2 -Iinclude $PY_CFLAGS benches/pep788_pair.c -o "$exe788" -L"$lib" -lgilgate -Wl,-rpath,"$lib" $PY_LDFLAGS -ldl
    count788() { PYTHONHOME=$PY_HOME QEMU_LOG=exec,nochain QEMU_SINGLESTEP=1 QEMU_DFILTER=$1 \
      QEMU_LOG_FILENAME=/dev/stderr "${run[@]}" "$exe788" "$2" "$3" 2>&1 >/dev/null | grep -c '^Trace' || true; }
    base788=$(PYTHONHOME=$PY_HOME LD_DEBUG=files "${run[@]}" "$exe788" raw 1 2>&1 >/dev/null \
      | awk '/file=libgilgate.so.0 .*generating link map/ { getline; print $5 "+" $7 }' || true)
    # The getter's range: libpython's base (the loader's) + the symbol's value and size.
    pybase=$(PYTHONHOME=$PY_HOME LD_DEBUG=files "${run[@]}" "$exe788" raw 1 2>&1 >/dev/null \
      | awk '/file=libpython.*generating link map/ { getline; print $5 }' | head -1 || true)
    nm=nm; [ "$cc" = gcc ] || nm=${cc%gcc}nm
    pylib=$(ls "$PY_LIBDIR"/libpython"${PY_VERSION%.*}".so.1.0 2>/dev/null | head -1)
    getter=$($nm -D -S --defined-only "$pylib" 2>/dev/null | awk '$4 == "PyThreadState_GetUnchecked" { print $1 " " $2 }')
    grange=; [ -n "$pybase" ] && [ -n "$getter" ] && grange=$(printf '0x%x+0x%x' $((pybase + 0x${getter% *})) $((0x${getter#* })))
    row="| $build | $PY_VERSION"
    for m in raw api guard; do
      a=$(count788 "$base788" $m 200); b=$(count788 "$base788" $m 2200); row="$row | $(( (b - a) / 2000 ))"
    done
    if [ -n "$grange" ]; then
      a=$(count788 "$grange" guard 200); b=$(count788 "$grange" guard 2200); row="$row | $(( (b - a) / 2000 ))"
    else row="$row | (getter not found)"; fi
    p788+=("$row |")
  done
done
echo
echo "| build | CPython | raw PyGILState pair | gilgate_* API pair | PEP 788 guard pair | + CPython's getter per guard pair |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${p788[@]}"
