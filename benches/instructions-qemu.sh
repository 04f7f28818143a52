#!/usr/bin/env bash
# Instructions executed inside libgilgate.so per save+restore and per ensure+release pair, under
# qemu-user, for the aarch64 and x86-64 builds, each with its assembly entries (the default) and
# with the portable C entries of `--features portable-entries`. No timings: qemu counts guest
# instructions, which do not depend on the machine's load.
#   benches/instructions-qemu.sh [3.13 3.14 ...]     (default: 3.13 3.14, Debian unstable trees)
# How: qemu-<cpu>-static -singlestep -d exec,nochain -dfilter <libgilgate's text> logs one line
# per guest instruction executed in libgilgate (this qemu has no plugin support, so no
# libinsn.so); benches/ir.c runs 200 and 2200 pairs; (b - a) / 2000 cancels start-up. The library
# base comes from the guest ld.so's LD_DEBUG=files (qemu-user maps deterministically).
# "raw" calls libpython directly (GILGATE_DLSYM=0): it must count 0 (a check of the method).
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
echo "| build | CPython | pair | raw | gilgate_* API | exported drop-in |"
echo "|---|---|---|---|---|---|"
for build in aarch64 aarch64-portable x86_64 x86_64-portable; do
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
      row="| $build | $PY_VERSION | ${pair%%:*}"; sfx=${pair#*:}
      for m in raw api exported; do
        a=$(count "$m$sfx" 200); b=$(count "$m$sfx" 2200)
        row="$row | $(( (b - a) / 2000 ))"
      done
      echo "$row |"
    done
  done
done
