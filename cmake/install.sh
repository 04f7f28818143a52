#!/bin/sh
# cmake/install.sh — build gilgate and install it under a prefix, with CMake and pkg-config files.
#
#   sh cmake/install.sh <prefix>
#
# POSIX sh (tested with dash and bash); needs cargo (unless GILGATE_SKIP_CARGO=1), cp, mv, ln,
# sed, od. Callable from any directory: the repo root is found from this script's location.
#
# Installs:
#   <prefix>/lib/libgilgate.so.<version>           the library (soname libgilgate.so.<major>)
#   <prefix>/lib/libgilgate.so.<major>  -> libgilgate.so.<version>
#   <prefix>/lib/libgilgate.so          -> libgilgate.so.<major>
#   <prefix>/include/gilgate.h, gilgate.hpp, gilgate.pxd (Cython declarations),
#                    gilgate_pep788.h, gilgate_pep788.pxd (PEP 788 under CPython's names, < 3.15)
#   <prefix>/lib/cmake/gilgate/gilgateConfig.cmake, gilgateConfigVersion.cmake
#   <prefix>/lib/pkgconfig/gilgate.pc
#   <prefix>/bin/gilgate-run                       the launcher (tools/gilgate-run)
#   <prefix>/libexec/gilgate/gilgate-check         its --check (tools/check), if built
# The CMake and pkg-config files locate the prefix relative to themselves, so the installed tree
# can be moved or copied as a whole. The version is read from Cargo.toml.
#
# Environment:
#   GILGATE_SKIP_CARGO=1  do not run `cargo build --release` (the caller already built it);
#                         the existing target/release/libgilgate.so is installed.
#   CARGO_TARGET_DIR      honoured like cargo does (relative paths are relative to the repo root).
#
# Re-running is safe: files are replaced atomically (copy to a temporary name, then rename), so a
# process still running from the old library keeps its mapping. Exit status 0 on success; 1 on
# any error, with a message on stderr; 2 on bad usage.

set -eu

me=install.sh
die() { echo "$me: error: $*" >&2; exit 1; }
usage() { echo "usage: sh cmake/install.sh <prefix>" >&2; exit 2; }

[ $# -eq 1 ] || usage
prefix=$1
case $prefix in
    -h | --help) echo "usage: sh cmake/install.sh <prefix>"; exit 0 ;;
    "") die "the prefix is empty (usage: sh cmake/install.sh <prefix>)" ;;
    -*) die "prefix '$prefix' looks like an option; use ./$prefix for a directory of that name" ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd -P) || die "cannot find the repository root"
[ -f "$root/Cargo.toml" ] || die "$root/Cargo.toml not found (is this script inside the gilgate repo?)"

# --- the prefix: validated before anything is built -------------------------------------------
if [ -e "$prefix" ] && [ ! -d "$prefix" ]; then
    die "prefix '$prefix' exists and is not a directory"
fi
if ! err=$(mkdir -p -- "$prefix" 2>&1); then
    die "cannot create prefix '$prefix': $err"
fi
prefix=$(cd -- "$prefix" && pwd -P) || die "cannot enter prefix '$1'"
[ -w "$prefix" ] || die "prefix '$prefix' is not writable"
subdirs="bin include lib lib/cmake lib/cmake/gilgate lib/pkgconfig libexec libexec/gilgate"
for d in $subdirs; do
    if [ -e "$prefix/$d" ] && [ ! -d "$prefix/$d" ]; then
        die "'$prefix/$d' exists and is not a directory"
    fi
done
for d in $subdirs; do
    if ! err=$(mkdir -p -- "$prefix/$d" 2>&1); then
        die "cannot create '$prefix/$d': $err"
    fi
done

# --- version and description from Cargo.toml's [package] section -------------------------------
pkg_field() {
    sed -n '/^\[package\][[:space:]]*$/,/^\[/{
        s/^'"$1"'[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p
    }' "$root/Cargo.toml" | head -n 1
}
version=$(pkg_field version)
description=$(pkg_field description)
case $version in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) die "cannot read a MAJOR.MINOR.PATCH version from $root/Cargo.toml (got '$version')" ;;
esac
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
patch=${rest#*.}
patch=${patch%%[!0-9]*}
case $major$minor$patch in *[!0-9]*|"") die "bad version '$version' in Cargo.toml" ;; esac
[ -n "$description" ] || description="gilgate"
soname=libgilgate.so.$major

# --- build ---------------------------------------------------------------------------------------
if [ "${GILGATE_SKIP_CARGO:-0}" = 1 ]; then
    echo "$me: GILGATE_SKIP_CARGO=1: not running cargo"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or build first and set GILGATE_SKIP_CARGO=1)"
    echo "$me: cargo build --release (in $root)"
    (cd "$root" && cargo build --release -p gilgate -p gilgate-check) || die "cargo build --release failed"
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
lib=$target_dir/release/libgilgate.so
[ -f "$lib" ] || die "$lib not found (run 'cargo build --release' first, or unset GILGATE_SKIP_CARGO)"
check=$target_dir/release/gilgate-check
[ -f "$root/tools/gilgate-run" ] || die "$root/tools/gilgate-run not found"
for h in gilgate.h gilgate.hpp gilgate.pxd gilgate_pep788.h gilgate_pep788.pxd; do
    [ -f "$root/include/$h" ] || die "$root/include/$h not found"
done
for t in gilgateConfig.cmake.in gilgateConfigVersion.cmake.in gilgate.pc.in; do
    [ -f "$root/cmake/$t" ] || die "template $root/cmake/$t not found"
done

# ELF class of the library -> pointer size recorded in gilgateConfigVersion.cmake.
magic=$(od -An -N4 -c "$lib" | tr -d ' ')
[ "$magic" = '177ELF' ] || die "$lib is not an ELF file"
case $(od -An -j4 -N1 -tu1 "$lib" | tr -d ' ') in
    1) sizeof_void_p=4 ;;
    2) sizeof_void_p=8 ;;
    *) die "$lib: unknown ELF class" ;;
esac
if command -v readelf >/dev/null 2>&1; then
    if ! readelf -d "$lib" | grep -q "Library soname: \[$soname\]"; then
        die "$lib does not carry the soname $soname (see build.rs)"
    fi
fi

# --- install -------------------------------------------------------------------------------------
tmp_suffix=.gilgate-install.$$
cleanup() { rm -f "$prefix"/lib/*"$tmp_suffix" "$prefix"/include/*"$tmp_suffix" \
    "$prefix"/bin/*"$tmp_suffix" "$prefix"/libexec/gilgate/*"$tmp_suffix" \
    "$prefix"/lib/cmake/gilgate/*"$tmp_suffix" "$prefix"/lib/pkgconfig/*"$tmp_suffix"; }
trap cleanup EXIT
trap 'cleanup; exit 1' INT TERM HUP

# put SRC DEST MODE: atomic replace of DEST
put() {
    if [ -d "$2" ] && [ ! -L "$2" ]; then die "'$2' is a directory"; fi
    cp -- "$1" "$2$tmp_suffix" || die "cannot write '$2$tmp_suffix'"
    chmod "$3" "$2$tmp_suffix" || die "cannot chmod '$2$tmp_suffix'"
    mv -f -- "$2$tmp_suffix" "$2" || die "cannot replace '$2'"
    echo "  $2"
}
# link TARGET NAME: NAME -> TARGET (relative)
link() {
    if [ -d "$2" ] && [ ! -L "$2" ]; then die "'$2' is a directory"; fi
    rm -f -- "$2" || die "cannot remove '$2'"
    ln -s -- "$1" "$2" || die "cannot create symlink '$2'"
    echo "  $2 -> $1"
}
# escape a value for the replacement side of a sed s|||
sed_escape() { printf '%s\n' "$1" | sed -e 's/[\\|&]/\\&/g'; }
# fill TEMPLATE DEST MODE
fill() {
    sed -e "s|@GILGATE_VERSION@|$version|g" \
        -e "s|@GILGATE_VERSION_MAJOR@|$major|g" \
        -e "s|@GILGATE_VERSION_MINOR@|$minor|g" \
        -e "s|@GILGATE_VERSION_PATCH@|$patch|g" \
        -e "s|@GILGATE_SONAME@|$soname|g" \
        -e "s|@GILGATE_SIZEOF_VOID_P@|$sizeof_void_p|g" \
        -e "s|@GILGATE_DESCRIPTION@|$(sed_escape "$description")|g" \
        "$1" > "$2$tmp_suffix" || die "cannot write '$2$tmp_suffix'"
    if grep -q '@GILGATE_[A-Z_]*@' "$2$tmp_suffix"; then
        die "unfilled placeholder in $1: $(grep -o '@GILGATE_[A-Z_]*@' "$2$tmp_suffix" | head -n 1)"
    fi
    chmod "$3" "$2$tmp_suffix" && mv -f -- "$2$tmp_suffix" "$2" || die "cannot replace '$2'"
    echo "  $2"
}

echo "$me: installing gilgate $version into $prefix"
put "$lib" "$prefix/lib/libgilgate.so.$version" 0755
link "libgilgate.so.$version" "$prefix/lib/$soname"
link "$soname" "$prefix/lib/libgilgate.so"
put "$root/include/gilgate.h" "$prefix/include/gilgate.h" 0644
put "$root/include/gilgate.hpp" "$prefix/include/gilgate.hpp" 0644
put "$root/include/gilgate.pxd" "$prefix/include/gilgate.pxd" 0644
put "$root/include/gilgate_pep788.h" "$prefix/include/gilgate_pep788.h" 0644
put "$root/include/gilgate_pep788.pxd" "$prefix/include/gilgate_pep788.pxd" 0644
fill "$root/cmake/gilgateConfig.cmake.in" "$prefix/lib/cmake/gilgate/gilgateConfig.cmake" 0644
fill "$root/cmake/gilgateConfigVersion.cmake.in" "$prefix/lib/cmake/gilgate/gilgateConfigVersion.cmake" 0644
fill "$root/cmake/gilgate.pc.in" "$prefix/lib/pkgconfig/gilgate.pc" 0644
put "$root/tools/gilgate-run" "$prefix/bin/gilgate-run" 0755
if [ -f "$check" ]; then
    put "$check" "$prefix/libexec/gilgate/gilgate-check" 0755
else
    echo "$me: warning: $check not built: 'gilgate-run --check' will not work (cargo build --release -p gilgate-check)" >&2
fi
echo "$me: done: gilgate $version in $prefix"
