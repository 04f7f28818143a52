/* What gilgate's dlsym/dlvsym must leave alone, and what it must rewrite. Built three ways:
 *   -DPROBE_LIB_A -shared: defines probe_fn (returns 1) and asks dlsym(RTLD_NEXT, "probe_fn"),
 *                          which must be lib B's: RTLD_NEXT is relative to the CALLER (lib A),
 *                          not to gilgate (preloaded ahead of both, where "next" is lib A);
 *   -DPROBE_LIB_B -shared: defines probe_fn (returns 2);
 *   the program, linked against A then B (--no-as-needed); both libraries with a version script
 *   `PROBE_1 { global: *; };`, so that dlvsym(RTLD_NEXT, "probe_fn", "PROBE_1") has an answer.
 * usage: dlsym_probe LIBPYTHON   (no Python is initialized)
 * Prints one line per check, "RESULT checks=N failures=N", exit 0 iff every check held. With
 * gilgate preloaded, a lookup of a thread-state function on the libpython handle is gilgate's;
 * without it, libpython's (the program is run both ways: argv[2] "gilgate" or "raw"). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#if defined(PROBE_LIB_A)
int probe_fn(void) { return 1; }
void *probe_a_next(void) { return dlsym(RTLD_NEXT, "probe_fn"); }
void *probe_a_vnext(void) { return dlvsym(RTLD_NEXT, "probe_fn", "PROBE_1"); }
#elif defined(PROBE_LIB_B)
int probe_fn(void) { return 2; }
#else
void *probe_a_next(void);
void *probe_a_vnext(void);

static int checks, failures;
static void check(int ok, const char *what) {
    checks++;
    if (!ok) failures++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}
static const char *owner(void *p) {
    Dl_info i;
    if (!p || !dladdr(p, &i) || !i.dli_fname) return "?";
    const char *s = strrchr(i.dli_fname, '/');
    return s ? s + 1 : i.dli_fname;
}
static int from(void *p, const char *lib) { return p && strstr(owner(p), lib) != NULL; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s LIBPYTHON gilgate|nodlsym|raw\n", argv[0]); return 64; }
    /* nodlsym: gilgate loaded with GILGATE_DLSYM=0: handle lookups are libpython's, the rest as
     * with gilgate. */
    int loaded = strcmp(argv[2], "raw") != 0;
    int gated = strcmp(argv[2], "gilgate") == 0;
    const char *mine = gated ? "libgilgate" : "libpython";

    int (*next)(void) = (int (*)(void))probe_a_next();
    check(next && next() == 2, "dlsym(RTLD_NEXT) from lib A finds lib B's probe_fn");
    next = (int (*)(void))probe_a_vnext();
    check(next && next() == 2, "dlvsym(RTLD_NEXT, probe_fn, PROBE_1) from lib A finds lib B's probe_fn");
    check(from(dlsym(RTLD_NEXT, "puts"), "libc"), "dlsym(RTLD_NEXT, puts) from the program is libc's");
    check(from(dlvsym(RTLD_DEFAULT, "puts", "GLIBC_2.2.5"), "libc"), "dlvsym(RTLD_DEFAULT, puts, GLIBC_2.2.5) is libc's");
    check(dlsym(RTLD_DEFAULT, "no_such_symbol_anywhere") == NULL && dlerror() != NULL,
          "a missing symbol: NULL and a dlerror message");

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    check(h != NULL, "dlopen(libpython, RTLD_LOCAL)");
    if (!h) { printf("RESULT checks=%d failures=%d\n", checks, failures); return 1; }
    void *ens = dlsym(h, "PyGILState_Ensure");
    printf("     PyGILState_Ensure on the handle: %s\n", owner(ens));
    check(from(ens, mine), gated ? "dlsym(libpython, PyGILState_Ensure) is gilgate's"
                                 : "dlsym(libpython, PyGILState_Ensure) is libpython's");
    check(from(dlsym(h, "PyEval_RestoreThread"), mine), "dlsym(libpython, PyEval_RestoreThread) likewise");
    check(from(dlsym(h, "Py_FinalizeEx"), mine), "dlsym(libpython, Py_FinalizeEx) likewise");
    /* CPython's symbols are unversioned: glibc's dlvsym rejects them for any version (as without
     * gilgate), so gilgate's dlvsym has nothing to rewrite there. */
    dlerror();
    check(dlvsym(h, "PyGILState_Ensure", "ANY_VERSION") == NULL && dlerror() != NULL,
          "dlvsym(libpython, PyGILState_Ensure, ANY_VERSION): NULL, dlerror (as glibc answers)");
    check(from(dlsym(h, "Py_IsInitialized"), "libpython"), "dlsym(libpython, Py_IsInitialized) is libpython's (not replaced)");
    check(from(dlsym(h, "PyEval_GetBuiltins"), "libpython"), "dlsym(libpython, PyEval_GetBuiltins) is libpython's");
    dlerror();
    check(dlsym(h, "PyGILState_Ensurex") == NULL && dlerror() != NULL, "dlsym(libpython, PyGILState_Ensurex): NULL, dlerror");
    check(dlsym(h, "PyGILState_Ensur") == NULL && dlerror() != NULL, "dlsym(libpython, PyGILState_Ensur): NULL, dlerror");
    check(from(dlsym(h, "malloc"), "libc"), "dlsym(libpython, malloc) is libc's (its dependency)");
    /* RTLD_DEFAULT cannot see an RTLD_LOCAL libpython; the preloaded gilgate's exports, yes. */
    void *def = dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    check(loaded ? from(def, "libgilgate") : def == NULL, loaded ? "dlsym(RTLD_DEFAULT, PyGILState_Ensure) is gilgate's"
                                                                  : "dlsym(RTLD_DEFAULT, PyGILState_Ensure) is NULL");
    check(loaded ? from(dlsym(RTLD_DEFAULT, "dlsym"), "libgilgate") : from(dlsym(RTLD_DEFAULT, "dlsym"), "libc"),
          loaded ? "dlsym resolves to gilgate's interposer" : "dlsym resolves to libc's");
    printf("RESULT checks=%d failures=%d\n", checks, failures);
    return failures ? 1 : 0;
}
#endif
