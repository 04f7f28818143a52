#!/bin/sh
# c_tests/header_compile.sh — every public header compiles standalone, strictly.
#
#   sh c_tests/header_compile.sh [PYTHON_CONFIG [INCLUDE_DIR]]
#
# PYTHON_CONFIG: a python3.X-config whose `--includes` locates Python.h (default: python3-config
#                on PATH). INCLUDE_DIR: the directory holding gilgate.h / gilgate.hpp (default:
#                the repo's include/; packaging_test.sh points it at an installed prefix).
# Compilers: $CC (default gcc) for C, $CXX (default g++) for C++.
#
# Cases, each compiled with -Wall -Wextra -pedantic -Werror (C++ adds -fno-exceptions -fno-rtti):
#   gilgate.h   x {C99, C11, C++11, C++17} x {alone, included twice, before Python.h, after Python.h}
#   gilgate.hpp x {C++11, C++17} x {alone, twice, before Python.h, after Python.h, after gilgate.h}
#   gilgate_pep788.h x {C99, C11, C++11, C++17} x {after Python.h, twice + gilgate.h, without Python.h
#                    (must fail)}: with a CPython < 3.15 its declarations, with 3.15+ CPython's own
#   plus expected compile failures: ignoring allow_threads::reacquire(), copying a guard.
# Python's own headers come in through -isystem: this tests gilgate's headers, not Python's
# (CPython 3.12's headers, for one, are not -pedantic clean in C99).
# Prints one line per case and `N passed, N failed`; exits 1 if any case failed. POSIX sh.

set -u
here=$(cd "$(dirname "$0")" && pwd -P)
PYCONFIG=${1:-python3-config}
INCDIR=${2:-$here/../include}
CC=${CC:-gcc}
CXX=${CXX:-g++}

if ! command -v "$PYCONFIG" >/dev/null 2>&1; then
    echo "header_compile: python config '$PYCONFIG' not found (usage: $0 [python3.X-config [include-dir]])" >&2
    exit 2
fi
for h in gilgate.h gilgate.hpp; do
    if [ ! -f "$INCDIR/$h" ]; then
        echo "header_compile: $INCDIR/$h not found" >&2
        exit 2
    fi
done
INCDIR=$(cd "$INCDIR" && pwd -P)

# -I<dir> -> -isystem <dir> (python3-config repeats the dir; harmless)
PYINC=
for f in $("$PYCONFIG" --includes); do
    case $f in
        -I*) PYINC="$PYINC -isystem ${f#-I}" ;;
        *) PYINC="$PYINC $f" ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/gg_hdr.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM

WARN="-Wall -Wextra -pedantic -Werror"
CXXEXTRA="-fno-exceptions -fno-rtti"
pass=0
fail=0

# run_case NAME LANG(c|c++) STD EXPECT(ok|fail) [REGEX] < translation-unit
# For EXPECT=fail, the compiler output must also match REGEX (the failure is the expected one).
run_case() {
    name=$1 lang=$2 std=$3 expect=$4 why=${5:-}
    if [ "$lang" = c ]; then
        src=$work/tu.c; comp="$CC -std=$std $WARN"
    else
        src=$work/tu.cpp; comp="$CXX -std=$std $WARN $CXXEXTRA"
    fi
    cat > "$src"
    # shellcheck disable=SC2086 # word splitting of the flag lists is intended
    if $comp -I"$INCDIR" $PYINC -c "$src" -o "$work/tu.o" > "$work/log" 2>&1; then rc=0; else rc=1; fi
    if [ "$expect" = fail ] && [ $rc -ne 0 ] && [ -n "$why" ] && ! grep -Eq "$why" "$work/log"; then
        rc=2 # failed for another reason
    fi
    if { [ "$expect" = ok ] && [ $rc -eq 0 ]; } || { [ "$expect" = fail ] && [ $rc -eq 1 ]; }; then
        pass=$((pass + 1)); echo "PASS $name"
    else
        fail=$((fail + 1))
        if [ "$expect" = ok ]; then echo "FAIL $name"
        elif [ $rc -eq 0 ]; then echo "FAIL $name (compiled, but must not)"
        else echo "FAIL $name (failed, but not with /$why/)"; fi
        sed -n '1,12s/^/    /p' "$work/log"
    fi
}

# Code that uses the C API (valid C and C++). With Python.h, a PyThreadState * must pass as is.
C_USE='
static int gg_use(struct _ts *ts) {
    int st;
    struct gilgate_stats stats;
    gilgate_status s = gilgate_gilstate_ensure(&st);
    if (s == GILGATE_OK) gilgate_gilstate_release(st);
    if (gilgate_stats(&stats) != GILGATE_OK) return -1;
    if (gilgate_restore_thread(ts) == GILGATE_OK) gilgate_release_thread(gilgate_save_thread());
    return (int)gilgate_runtime_status() + (int)GILGATE_POLICY_HANG + (gilgate_status_str(s) != 0);
}
#ifdef Py_PYTHON_H
int gg_use_py(PyThreadState *ts) { return gg_use(ts); }
#else
int gg_use_py(void *ts) { return gg_use((struct _ts *)ts); }
#endif
'

CXX_USE='
#include <type_traits>
static_assert(!std::is_copy_constructible<gilgate::gil>::value, "gil: no copy");
static_assert(std::is_nothrow_move_constructible<gilgate::gil>::value, "gil: nothrow move");
static_assert(std::is_nothrow_default_constructible<gilgate::gil>::value, "gil: noexcept ctor");
static_assert(std::is_nothrow_destructible<gilgate::gil>::value, "gil: noexcept dtor");
static_assert(!std::is_convertible<gilgate::gil, bool>::value, "gil: explicit bool");
static_assert(!std::is_copy_constructible<gilgate::thread_state>::value, "thread_state: no copy");
static_assert(std::is_nothrow_move_constructible<gilgate::thread_state>::value, "thread_state: move");
static_assert(std::is_nothrow_constructible<gilgate::thread_state, struct _ts *>::value, "ts ctor");
static_assert(!std::is_convertible<struct _ts *, gilgate::thread_state>::value, "ts: explicit");
static_assert(!std::is_copy_constructible<gilgate::allow_threads>::value, "allow_threads: no copy");
static_assert(std::is_nothrow_default_constructible<gilgate::allow_threads>::value, "at: ctor");
static gilgate::gil gg_make() { return gilgate::gil(); }
int gg_use_cxx(struct _ts *ts) {
    gilgate::gil g;
    if (!g) return (int)g.status();
    {
        gilgate::thread_state t(ts);
        if (!t) return (int)t.status();
        if (t.get() != ts) return -1;
    }
    {
        gilgate::allow_threads nogil;
        gilgate_status st = nogil.reacquire();
        if (st != GILGATE_OK) return (int)st;
        if (!nogil.released()) return -2;
    }
    gilgate::gil moved(static_cast<gilgate::gil &&>(g));
    gilgate::gil made = gg_make();
    made.release();
    return (bool(g) ? 1 : 0) + (moved ? 0 : 1) + (made ? 1 : 0);
}
'

# tu TEXT...: write the translation unit for the next run_case (printf format, then arguments)
tu() { fmt=$1; shift; printf "$fmt" "$@" > "$work/in"; }

for std in c99 c11 c++11 c++17; do
    case $std in c++*) lang=c++ ;; *) lang=c ;; esac
    tu '#include "gilgate.h"\n%s' "$C_USE"
    run_case "gilgate.h $std alone" $lang $std ok < "$work/in"
    tu '#include "gilgate.h"\n#include "gilgate.h"\n%s' "$C_USE"
    run_case "gilgate.h $std included twice" $lang $std ok < "$work/in"
    tu '#include "gilgate.h"\n#include <Python.h>\n%s' "$C_USE"
    run_case "gilgate.h $std before Python.h" $lang $std ok < "$work/in"
    tu '#include <Python.h>\n#include "gilgate.h"\n%s' "$C_USE"
    run_case "gilgate.h $std after Python.h" $lang $std ok < "$work/in"
done

for std in c++11 c++17; do
    tu '#include "gilgate.hpp"\n%s%s' "$C_USE" "$CXX_USE"
    run_case "gilgate.hpp $std alone" c++ $std ok < "$work/in"
    tu '#include "gilgate.hpp"\n#include "gilgate.hpp"\n%s' "$CXX_USE"
    run_case "gilgate.hpp $std included twice" c++ $std ok < "$work/in"
    tu '#include "gilgate.hpp"\n#include <Python.h>\n%s' "$CXX_USE"
    run_case "gilgate.hpp $std before Python.h" c++ $std ok < "$work/in"
    tu '#include <Python.h>\n#include "gilgate.hpp"\n%s' "$CXX_USE"
    run_case "gilgate.hpp $std after Python.h" c++ $std ok < "$work/in"
    tu '#include "gilgate.h"\n#include "gilgate.hpp"\n%s' "$CXX_USE"
    run_case "gilgate.hpp $std after gilgate.h" c++ $std ok < "$work/in"
    tu '#include "gilgate.hpp"\nint f(void) { gilgate::allow_threads a; a.reacquire(); return 0; }\n'
    run_case "gilgate.hpp $std ignoring reacquire() is an error" c++ $std fail \
        'unused|nodiscard|warn_unused_result' < "$work/in"
    tu '#include "gilgate.hpp"\nint f(void) { gilgate::gil a; gilgate::gil b(a); return bool(b); }\n'
    run_case "gilgate.hpp $std copying a guard is an error" c++ $std fail 'deleted' < "$work/in"
done

# gilgate_pep788.h: CPython 3.15's PEP 788 names (its own below 3.15, CPython's from 3.15 on).
P788_USE='
static int gg_p788(void) {
    PyInterpreterView *v = PyInterpreterView_FromMain();
    PyInterpreterGuard *g = PyInterpreterGuard_FromView(v);
    PyThreadStateToken *t;
    int r = 0;
    if (g) {
        t = PyThreadState_Ensure(g);
        if (t) PyThreadState_Release(t);
        PyInterpreterGuard_Close(g);
        r = 1;
    }
    t = PyThreadState_EnsureFromView(v);
    if (t) PyThreadState_Release(t);
    PyInterpreterView_Close(v);
    g = PyInterpreterGuard_FromCurrent();
    if (g) PyInterpreterGuard_Close(g);
    v = PyInterpreterView_FromCurrent();
    if (v) PyInterpreterView_Close(v);
    return r;
}
int gg_p788_use(void) { return gg_p788(); }
'
for std in c99 c11 c++11 c++17; do
    case $std in c++*) lang=c++ ;; *) lang=c ;; esac
    tu '#include <Python.h>\n#include "gilgate_pep788.h"\n%s' "$P788_USE"
    run_case "gilgate_pep788.h $std after Python.h" $lang $std ok < "$work/in"
    tu '#include <Python.h>\n#include "gilgate_pep788.h"\n#include "gilgate_pep788.h"\n#include "gilgate.h"\n%s' "$P788_USE"
    run_case "gilgate_pep788.h $std included twice, then gilgate.h" $lang $std ok < "$work/in"
    tu '#include "gilgate_pep788.h"\nint x;\n'
    run_case "gilgate_pep788.h $std without Python.h first is an error" $lang $std fail 'include Python.h first' < "$work/in"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
