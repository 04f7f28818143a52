/* Benchmark host: ns per thread-state pair, raw CPython vs gilgate vs a bare forwarding shim.
 *
 * Built per CPython by benches/run.sh, twice:
 *   pair       linked -lgilgate BEFORE -lpython (gilgate's exports and pthread_exit interposer in
 *              place, as a drop-in host would have them); all variants.
 *   pair-nogg  -DNO_GILGATE, no gilgate in the process at all; raw and shim only (shows what the
 *              mere presence of gilgate's exports costs CPython's own internal PLT calls).
 *
 * Variants, interleaved in blocks inside one process (the order rotates every block):
 *   raw   PyEval_SaveThread/PyEval_RestoreThread (PyGILState_Ensure/Release) resolved with dlsym
 *         on a dlopen(RTLD_NOLOAD) handle of the libpython object: never gilgate's exports.
 *   gg    gilgate_save_thread/gilgate_restore_thread (gilgate_gilstate_ensure/release), linked.
 *   exp   gilgate's exported drop-in PyEval_SaveThread/... (dlsym on libgilgate's own handle).
 *   shim  benches/libggshim.so: forwards through a function pointer to the raw function (floor).
 *
 * Then 2 and 4 threads contending for the GIL doing restore+save pairs (raw vs gg vs shim), rounds
 * interleaved (order rotating), pairs/s total: once with nothing done while holding the GIL
 * (sections contendedN), and once holding it for PAIR_HOLD_NS of busy work per pair
 * (contendedN_hold; default 1000 ns, a small piece of real Python work), where hand-offs follow
 * CPython's switch interval instead of racing the releasing thread's immediate re-lock.
 *
 * Output: one line per result, `R <section> <variant> <median> <p10> <p90>` (ns/pair or pairs/s),
 * parsed by run.sh. Environment: PAIR_BLOCKS (30), PAIR_N (200000), PAIR_ROUNDS (7),
 * PAIR_ROUND_MS (250), PAIR_HOLD_NS (1000).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifndef NO_GILGATE
#include "gilgate.h"
#endif

void shim_init(void *save, void *restore, void *ensure, void *release);
void *shim_save(void);
void shim_restore(void *ts);
int shim_ensure(void);
void shim_release(int st);

typedef PyThreadState *(*save_fn)(void);
typedef void (*restore_fn)(PyThreadState *);
typedef int (*ensure_fn)(void);
typedef void (*release_fn)(int);

#define UNUSED __attribute__((unused)) /* the gilgate-only parts in the -DNO_GILGATE build */
static save_fn r_save;
static restore_fn r_restore;
static ensure_fn r_ensure;
static release_fn r_release;
static UNUSED save_fn e_save;
static UNUSED restore_fn e_restore;
static UNUSED ensure_fn e_ensure;
static UNUSED release_fn e_release;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *m) {
    fprintf(stderr, "pair: %s\n", m);
    exit(2);
}

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "pair: dlsym %s: %s\n", name, dlerror());
        exit(2);
    }
    return p;
}

static const char *object_of(void *p) {
    Dl_info i;
    return dladdr(p, &i) && i.dli_fname ? i.dli_fname : "?";
}

/* ---- single-thread loops: one function per variant, never inlined into each other ---- */

#define NOINL __attribute__((noinline))

static NOINL double st_raw(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) r_restore(r_save());
    return (now_ns() - t0) / n;
}
static NOINL double st_shim(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) shim_restore(shim_save());
    return (now_ns() - t0) / n;
}
static NOINL double gs_raw(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) r_release(r_ensure());
    return (now_ns() - t0) / n;
}
static NOINL double gs_shim(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) shim_release(shim_ensure());
    return (now_ns() - t0) / n;
}
#ifndef NO_GILGATE
/* Each gilgate loop leaves the thread inside the level its last restore opened; after timing,
 * that variant's save ends it and libpython's restore takes the GIL back, so the next variant
 * starts as the thread started (holding the GIL, no gilgate level). Without this, a drop-in save
 * inside the API's level is (rightly) an extension's suspension, not the host's own save. */
static NOINL double st_gg(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (gilgate_restore_thread(gilgate_save_thread()) != GILGATE_OK) die("gilgate_restore_thread failed");
    double t = (now_ns() - t0) / n;
    r_restore(gilgate_save_thread());
    return t;
}
static NOINL double st_exp(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) e_restore(e_save());
    double t = (now_ns() - t0) / n;
    r_restore(e_save());
    return t;
}
static NOINL double gs_gg(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int st;
        if (gilgate_gilstate_ensure(&st) != GILGATE_OK) die("gilgate_gilstate_ensure failed");
        gilgate_gilstate_release(st);
    }
    return (now_ns() - t0) / n;
}
static NOINL double gs_exp(long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) e_release(e_ensure());
    return (now_ns() - t0) / n;
}
#endif

typedef double (*loop_fn)(long);
struct variant { const char *name; loop_fn f; double *v; };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    double *c = malloc(sizeof(double) * n);
    memcpy(c, v, sizeof(double) * n);
    qsort(c, n, sizeof(double), cmp_d);
    double pos = p * (n - 1);
    int lo = (int)pos;
    double r = lo + 1 < n ? c[lo] + (c[lo + 1] - c[lo]) * (pos - lo) : c[lo];
    free(c);
    return r;
}

static void report(const char *section, const char *name, double *v, int n) {
    printf("R %s %s %.2f %.2f %.2f\n", section, name, pct(v, n, 0.5), pct(v, n, 0.1), pct(v, n, 0.9));
}

static void run_blocks(const char *section, struct variant *vs, int nv, int blocks, long n) {
    for (int k = 0; k < nv; k++) vs[k].f(n / 4); /* warm-up, discarded */
    for (int b = 0; b < blocks; b++)
        for (int j = 0; j < nv; j++) {
            struct variant *x = &vs[(b + j) % nv];
            x->v[b] = x->f(n);
        }
    for (int k = 0; k < nv; k++) report(section, vs[k].name, vs[k].v, blocks);
    /* Paired differences against raw (vs[0]) within each block: this machine drifts between a
     * fast and a slow regime (a shared host), often within one run; a block's variants run
     * back to back (~10 ms each), so per-block differences cancel most of the drift that a
     * difference of medians over all blocks keeps. */
    double *d = malloc(sizeof(double) * blocks);
    for (int k = 1; k < nv; k++) {
        for (int b = 0; b < blocks; b++) d[b] = vs[k].v[b] - vs[0].v[b];
        printf("D %s %s %.2f %.2f %.2f\n", section, vs[k].name, pct(d, blocks, 0.5), pct(d, blocks, 0.1), pct(d, blocks, 0.9));
    }
    /* The same over the blocks whose raw run was in the fast regime (raw within 15% of the
     * fastest raw block of this run): what the path costs when the host leaves this core alone. */
    double lo = vs[0].v[0];
    for (int b = 1; b < blocks; b++) if (vs[0].v[b] < lo) lo = vs[0].v[b];
    for (int k = 1; k < nv; k++) {
        int m = 0;
        for (int b = 0; b < blocks; b++)
            if (vs[0].v[b] <= 1.15 * lo) d[m++] = vs[k].v[b] - vs[0].v[b];
        printf("F %s %s %.2f %.2f %.2f %d\n", section, vs[k].name, pct(d, m, 0.5), pct(d, m, 0.1), pct(d, m, 0.9), m);
    }
    free(d);
}

/* ---- contended: N threads doing restore+save pairs ---- */

static atomic_int go, stop_flag, ready;

struct worker { pthread_t th; int gg; long pairs; }; /* gg: 0 raw, 1 gilgate_*, 2 shim */
static long hold_ns; /* busy work per pair while holding the GIL (contendedN_hold) */

static inline void hold(void) {
    if (hold_ns > 0) {
        double end = now_ns() + (double)hold_ns;
        while (now_ns() < end) {}
    }
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    int st = r_ensure();
    PyThreadState *ts = r_save();
    atomic_fetch_add(&ready, 1);
    while (!atomic_load_explicit(&go, memory_order_acquire)) sched_yield();
    long n = 0;
#ifndef NO_GILGATE
    if (w->gg) {
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
            if (gilgate_restore_thread(ts) != GILGATE_OK) die("gilgate_restore_thread failed (contended)");
            hold();
            ts = gilgate_save_thread();
            n++;
        }
    } else
#endif
    if (w->gg == 2) {
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
            shim_restore(ts);
            hold();
            ts = shim_save();
            n++;
        }
    } else {
        while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
            r_restore(ts);
            hold();
            ts = r_save();
            n++;
        }
    }
    r_restore(ts);
    r_release(st);
    w->pairs = n;
    return NULL;
}

/* Caller does not hold the GIL. Returns pairs/s over all threads. */
static UNUSED double contended(int nthreads, int gg, int ms) {
    struct worker w[16];
    atomic_store(&go, 0);
    atomic_store(&stop_flag, 0);
    atomic_store(&ready, 0);
    for (int i = 0; i < nthreads; i++) {
        w[i].gg = gg;
        w[i].pairs = 0;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i])) die("pthread_create");
    }
    while (atomic_load(&ready) < nthreads) usleep(100);
    double t0 = now_ns();
    atomic_store_explicit(&go, 1, memory_order_release);
    usleep(ms * 1000);
    atomic_store(&stop_flag, 1);
    double t1 = now_ns();
    long total = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        total += w[i].pairs;
    }
    return total / ((t1 - t0) / 1e9);
}

static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

int main(void) {
    int blocks = env_int("PAIR_BLOCKS", 30);
    long n = env_int("PAIR_N", 200000);
    int rounds = env_int("PAIR_ROUNDS", 7);
    int round_ms = env_int("PAIR_ROUND_MS", 250);
    (void)round_ms;
    if (blocks < 1 || blocks > 1000 || n < 1 || rounds < 1 || rounds > 1000) die("bad parameters");

    Py_InitializeEx(0);

    /* The libpython object, without going through gilgate's exports. */
    void *pyinit = dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (!pyinit) die("Py_IsInitialized not found");
    const char *pyobj = object_of(pyinit);
    void *py = dlopen(pyobj, RTLD_NOLOAD | RTLD_NOW);
    if (!py) die("dlopen(RTLD_NOLOAD) of the libpython object failed");
    r_save = (save_fn)sym(py, "PyEval_SaveThread");
    r_restore = (restore_fn)sym(py, "PyEval_RestoreThread");
    r_ensure = (ensure_fn)sym(py, "PyGILState_Ensure");
    r_release = (release_fn)sym(py, "PyGILState_Release");
    if (strcmp(object_of((void *)r_save), pyobj) || strcmp(object_of((void *)r_ensure), pyobj))
        die("raw symbols did not resolve to the libpython object");
    shim_init((void *)r_save, (void *)r_restore, (void *)r_ensure, (void *)r_release);
    printf("I python %s\nI libpython %s\n", Py_GetVersion(), pyobj);
#ifndef NO_GILGATE
    void *gg = dlopen("libgilgate.so.0", RTLD_NOLOAD | RTLD_NOW);
    if (!gg) die("libgilgate.so.0 is not loaded");
    e_save = (save_fn)sym(gg, "PyEval_SaveThread");
    e_restore = (restore_fn)sym(gg, "PyEval_RestoreThread");
    e_ensure = (ensure_fn)sym(gg, "PyGILState_Ensure");
    e_release = (release_fn)sym(gg, "PyGILState_Release");
    if (!strcmp(object_of((void *)e_save), pyobj)) die("exported symbols resolved to libpython");
    printf("I gilgate %s %s\n", gilgate_version(), object_of((void *)e_save));
#endif

    /* Single thread, pinned to one CPU for this phase. */
    cpu_set_t all, one;
    sched_getaffinity(0, sizeof all, &all);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);

    double *buf = calloc((size_t)blocks * 8, sizeof(double));
    struct variant sr[] = {
        {"raw", st_raw, buf + 0 * blocks},
        {"shim", st_shim, buf + 1 * blocks},
#ifndef NO_GILGATE
        {"gg", st_gg, buf + 2 * blocks},
        {"exp", st_exp, buf + 3 * blocks},
#endif
    };
    run_blocks("save_restore", sr, sizeof sr / sizeof sr[0], blocks, n);

    /* The GIL is free from here: gilstate pairs acquire it. gilgate's save, so that the region
     * the save/restore phase left open (its last gilgate restore) is closed too; otherwise every
     * gilgate gilstate pair below would be a nested entry (the Rust path), not the common case. */
#ifndef NO_GILGATE
    PyThreadState *main_ts = gilgate_save_thread();
    if (!main_ts) die("gilgate_save_thread returned NULL");
#else
    PyThreadState *main_ts = r_save();
#endif
    struct variant gs[] = {
        {"raw", gs_raw, buf + 4 * blocks},
        {"shim", gs_shim, buf + 5 * blocks},
#ifndef NO_GILGATE
        {"gg", gs_gg, buf + 6 * blocks},
        {"exp", gs_exp, buf + 7 * blocks},
#endif
    };
    run_blocks("gilstate", gs, sizeof gs / sizeof gs[0], blocks, n);
    sched_setaffinity(0, sizeof all, &all);

#ifndef NO_GILGATE
    /* Contended: main thread holds no GIL while the workers run. */
    int counts[] = {2, 4, 2, 4};
    long hold_cfg = env_int("PAIR_HOLD_NS", 1000);
    for (int c = 0; c < 4; c++) {
        hold_ns = c < 2 ? 0 : hold_cfg;
        double res[3][1000], ratio[1000], sratio[1000];
        for (int r = 0; r < rounds; r++) {
            for (int j = 0; j < 3; j++) { /* order rotates every round */
                int v = (r + j) % 3;
                res[v][r] = contended(counts[c], v, round_ms);
            }
            ratio[r] = res[1][r] / res[0][r];
            sratio[r] = res[2][r] / res[0][r];
        }
        double *raw = res[0], *ggv = res[1];
        char sec[32];
        snprintf(sec, sizeof sec, "contended%d%s", counts[c], c < 2 ? "" : "_hold");
        report(sec, "raw", raw, rounds);
        report(sec, "gg", ggv, rounds);
        report(sec, "ratio", ratio, rounds);
        report(sec, "shim", res[2], rounds);
        report(sec, "shim_ratio", sratio, rounds);
    }
#endif

    r_restore(main_ts);
#ifndef NO_GILGATE
    int pyrc = 0;
    if (gilgate_finalize(&pyrc) != GILGATE_OK || pyrc != 0) die("gilgate_finalize failed");
#else
    if (Py_FinalizeEx() != 0) die("Py_FinalizeEx failed");
#endif
    free(buf);
    return 0;
}
