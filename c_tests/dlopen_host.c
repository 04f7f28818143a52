/* A host that loads libpython at run time, as plugin hosts, R's reticulate and Julia's PyCall do:
 * dlopen(libpython) and every C API function resolved with dlsym on that handle. No Python.h, no
 * link to libpython or gilgate: one binary for every CPython. Under LD_PRELOAD=libgilgate.so
 * (gilgate-run), gilgate's dlsym hands out its own exports for the thread-state functions.
 *
 * usage: dlopen_host LIBPYTHON global|local polite|rude [WORKERS] [RUN_MS]
 *   global|local  RTLD_GLOBAL (plugin hosts) or RTLD_LOCAL
 *   polite  the workers are stopped and joined, then main finalizes
 *   rude    main finalizes while the workers keep calling in, then exits
 * Even workers: PyGILState_Ensure / work / PyGILState_Release. Odd workers: their own thread
 * state (PyThreadState_New), PyEval_RestoreThread / work / PyEval_SaveThread. Each holds a host
 * mutex around its calls, like the seed's host.
 * Prints: RESULT entries=N gated=N|n/a resolved=gilgate|libpython|other open=N|n/a vanished=N
 *   entries: the host's restore/acquire/ensure calls that returned (main thread included);
 *   gated: gilgate_stats().gated_entries if gilgate is in the process (found with RTLD_DEFAULT);
 *   resolved: whose PyGILState_Ensure dlsym(handle) returned;
 *   vanished: worker threads that ended inside a call into Python (a TSD destructor sees them).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 32

static void (*p_init)(int);
static void *(*p_save)(void);
static void (*p_restore)(void *);
static int (*p_ensure)(void);
static void (*p_release)(int);
static void *(*p_tstate_new)(void *);
static void (*p_tstate_clear)(void *);
static void (*p_delete_current)(void);
static void *(*p_interp_main)(void);
static int (*p_finalize_ex)(void);
static void *(*p_long)(long);
static void (*p_decref)(void *);
static int (*p_run)(const char *);

static atomic_int g_stop;
static atomic_long g_entries;
static atomic_int g_vanished;
static pthread_key_t g_inside_key;
static pthread_mutex_t g_mu[MAX_WORKERS];

static void *need(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "dlopen_host: dlsym(%s): %s\n", name, dlerror());
        exit(66);
    }
    return p;
}

/* Runs when a thread ends (pthread_exit included) with its "inside" value set. */
static void inside_destructor(void *v) {
    (void)v;
    atomic_fetch_add(&g_vanished, 1);
}

static void work(void) {
    void *o = p_long(123456789);
    if (o) p_decref(o);
}

static void pause_us(unsigned us) {
    struct timespec d = {0, (long)us * 1000};
    nanosleep(&d, NULL);
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    void *ts = NULL;
    if (id % 2) {
        ts = p_tstate_new(p_interp_main());
        if (!ts) { fprintf(stderr, "dlopen_host: PyThreadState_New failed\n"); exit(67); }
    }
    while (!atomic_load(&g_stop)) {
        pthread_mutex_lock(&g_mu[id]);
        pthread_setspecific(g_inside_key, (void *)1);
        if (ts) {
            p_restore(ts);
            atomic_fetch_add(&g_entries, 1);
            work();
            p_save();
        } else {
            int st = p_ensure();
            atomic_fetch_add(&g_entries, 1);
            work();
            p_release(st);
        }
        pthread_setspecific(g_inside_key, NULL);
        pthread_mutex_unlock(&g_mu[id]);
        pause_us(50 + (unsigned)(id * 37 % 200));
    }
    if (ts) { /* a polite end: drop the thread state under the GIL */
        p_restore(ts);
        atomic_fetch_add(&g_entries, 1);
        p_tstate_clear(ts);
        p_delete_current();
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s LIBPYTHON global|local polite|rude [WORKERS] [RUN_MS]\n", argv[0]);
        return 64;
    }
    int global = strcmp(argv[2], "global") == 0;
    int polite = strcmp(argv[3], "polite") == 0;
    int workers = argc > 4 ? atoi(argv[4]) : 4;
    int run_ms = argc > 5 ? atoi(argv[5]) : 100;
    if (workers < 1 || workers > MAX_WORKERS) workers = 4;

    void *h = dlopen(argv[1], RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
    if (!h) { fprintf(stderr, "dlopen_host: dlopen: %s\n", dlerror()); return 65; }
    *(void **)&p_init = need(h, "Py_InitializeEx");
    *(void **)&p_save = need(h, "PyEval_SaveThread");
    *(void **)&p_restore = need(h, "PyEval_RestoreThread");
    *(void **)&p_ensure = need(h, "PyGILState_Ensure");
    *(void **)&p_release = need(h, "PyGILState_Release");
    *(void **)&p_tstate_new = need(h, "PyThreadState_New");
    *(void **)&p_tstate_clear = need(h, "PyThreadState_Clear");
    *(void **)&p_delete_current = need(h, "PyThreadState_DeleteCurrent");
    *(void **)&p_interp_main = need(h, "PyInterpreterState_Main");
    *(void **)&p_finalize_ex = need(h, "Py_FinalizeEx");
    *(void **)&p_long = need(h, "PyLong_FromLong");
    *(void **)&p_decref = need(h, "Py_DecRef");
    *(void **)&p_run = need(h, "PyRun_SimpleString");

    const char *resolved = "other";
    Dl_info info;
    if (dladdr((void *)p_ensure, &info) && info.dli_fname) {
        if (strstr(info.dli_fname, "libgilgate")) resolved = "gilgate";
        else if (strstr(info.dli_fname, "libpython")) resolved = "libpython";
    }

    pthread_key_create(&g_inside_key, inside_destructor);
    p_init(0);
    if (p_run("x = sum(range(1000))\n") != 0) { fprintf(stderr, "dlopen_host: PyRun failed\n"); return 68; }
    void *main_ts = p_save();

    pthread_t t[MAX_WORKERS];
    for (int i = 0; i < workers; i++) {
        pthread_mutex_init(&g_mu[i], NULL);
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    }
    pause_us((unsigned)run_ms * 1000u);
    if (polite) {
        atomic_store(&g_stop, 1);
        for (int i = 0; i < workers; i++) pthread_join(t[i], NULL);
    }
    p_restore(main_ts);
    atomic_fetch_add(&g_entries, 1);
    int fin = p_finalize_ex();

    char gated[32] = "n/a", open[32] = "n/a";
    uint64_t stats[13];
    int (*p_stats)(uint64_t *) = NULL;
    *(void **)&p_stats = dlsym(RTLD_DEFAULT, "gilgate_stats");
    if (!polite) pause_us(50 * 1000); /* let a killed worker's destructor run */
    if (p_stats && p_stats(stats) == 0) {
        snprintf(gated, sizeof gated, "%llu", (unsigned long long)stats[0]);
        snprintf(open, sizeof open, "%llu", (unsigned long long)stats[12]);
    }
    printf("RESULT entries=%ld gated=%s resolved=%s open=%s finalize=%d vanished=%d \n",
           atomic_load(&g_entries), gated, resolved, open, fin, atomic_load(&g_vanished));
    fflush(stdout);
    return fin == 0 ? 0 : 1;
}
