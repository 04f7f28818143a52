/* Drain latency of gilgate_finalize, and memory per registered thread slot.
 *
 *   drain idle N   N host threads each register with gilgate (one gilgate_gilstate_ensure/release),
 *                  then sleep in host code; the main thread times gilgate_finalize.
 *   drain busy N   N host threads loop gilgate_gilstate_ensure / tiny Python / release until the
 *                  gate refuses them; the main thread times gilgate_finalize while they run.
 *   drain rss-gg N / rss-raw N
 *                  N concurrently live threads that did one ensure/release through gilgate (rss-gg)
 *                  or through libpython directly (rss-raw, dlsym'd: not gilgate's exports), then
 *                  wait; prints the RSS growth. The difference between the two is gilgate's
 *                  per-thread cost (slots, TLS), measured.
 *
 * Output (parsed by run.sh):
 *   D <mode> <N> <drain_last_ns> <finalize_wall_ns> <longest_inflight_region_ns>
 *     <last_region_end_after_close_ns> <max_region_ns> <entries>
 *   M <mode> <N> <rss_delta_bytes> <threads_registered>
 * Linked -lgilgate before -lpython, rpath to gilgate's private lib dir.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "gilgate.h"

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *m) {
    fprintf(stderr, "drain: %s\n", m);
    exit(2);
}

enum mode { IDLE, BUSY, RSS_GG, RSS_RAW };
static enum mode mode;
static atomic_int ready, release_idle;
static int (*raw_ensure)(void);
static void (*raw_release)(int);

struct worker {
    pthread_t th;
    uint64_t max_region_ns; /* longest ensure-call..release-return seen by this thread */
    uint64_t entries;
    uint64_t last_start, last_end; /* the thread's last successful region */
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    int st;
    if (mode == RSS_RAW) {
        raw_release(raw_ensure());
    } else if (mode != BUSY) {
        if (gilgate_gilstate_ensure(&st) != GILGATE_OK) die("ensure refused before finalize");
        gilgate_gilstate_release(st);
    }
    if (mode != BUSY) {
        atomic_fetch_add(&ready, 1);
        while (!atomic_load(&release_idle)) usleep(1000); /* idle in host code */
        return NULL;
    }
    for (long i = 0;; i++) {
        uint64_t t0 = now_ns();
        if (gilgate_gilstate_ensure(&st) != GILGATE_OK) break; /* the gate closed */
        PyObject *a = PyLong_FromLong(i), *b = PyLong_FromLong(7);
        PyObject *c = PyNumber_Add(a, b);
        Py_XDECREF(c);
        Py_DECREF(b);
        Py_DECREF(a);
        gilgate_gilstate_release(st);
        uint64_t t1 = now_ns(), d = t1 - t0;
        if (d > w->max_region_ns) w->max_region_ns = d;
        w->last_start = t0;
        w->last_end = t1;
        if (++w->entries == 1) atomic_fetch_add(&ready, 1);
    }
    return NULL;
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size, res;
    if (!f || fscanf(f, "%ld %ld", &size, &res) != 2) die("statm");
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage: drain idle|busy|rss-gg|rss-raw N");
    mode = !strcmp(argv[1], "idle") ? IDLE : !strcmp(argv[1], "busy") ? BUSY
         : !strcmp(argv[1], "rss-gg") ? RSS_GG : !strcmp(argv[1], "rss-raw") ? RSS_RAW : (die("mode"), IDLE);
    int n = atoi(argv[2]);
    if (n < 1 || n > 4096) die("N out of range");

    Py_InitializeEx(0);
    Dl_info di;
    if (!dladdr(dlsym(RTLD_DEFAULT, "Py_IsInitialized"), &di)) die("libpython not found");
    void *py = dlopen(di.dli_fname, RTLD_NOLOAD | RTLD_NOW);
    if (!py) die("dlopen libpython");
    raw_ensure = (int (*)(void))dlsym(py, "PyGILState_Ensure");
    raw_release = (void (*)(int))dlsym(py, "PyGILState_Release");
    if (!raw_ensure || !raw_release) die("dlsym");

    PyThreadState *ts = gilgate_save_thread();
    if (!ts) die("save");

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    struct worker *w = calloc(n, sizeof *w);
    long rss0 = rss_bytes();
    for (int i = 0; i < n; i++)
        if (pthread_create(&w[i].th, &attr, worker_main, &w[i])) die("pthread_create");
    while (atomic_load(&ready) < n) usleep(200);

    if (mode == RSS_GG || mode == RSS_RAW) {
        long rss1 = rss_bytes();
        struct gilgate_stats s;
        if (gilgate_stats(&s) != GILGATE_OK) die("stats");
        printf("M %s %d %ld %llu\n", argv[1], n, rss1 - rss0, (unsigned long long)s.threads_registered);
    } else if (mode == BUSY) {
        usleep(50 * 1000); /* let them run */
    }

    if (gilgate_restore_thread(ts) != GILGATE_OK) die("restore");
    int pyrc = 0;
    uint64_t t0 = now_ns();
    if (gilgate_finalize(&pyrc) != GILGATE_OK) die("gilgate_finalize");
    uint64_t wall = now_ns() - t0;
    atomic_store(&release_idle, 1);
    /* In flight at close: the last region of a thread that began before gilgate_finalize was
     * called and ended after it. Its full length is the "longest in-flight region" of the target. */
    uint64_t maxr = 0, entries = 0, inflight = 0, tail = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].th, NULL);
        if (w[i].max_region_ns > maxr) maxr = w[i].max_region_ns;
        entries += w[i].entries;
        if (w[i].entries && w[i].last_start < t0 && w[i].last_end > t0) {
            if (w[i].last_end - w[i].last_start > inflight) inflight = w[i].last_end - w[i].last_start;
            if (w[i].last_end - t0 > tail) tail = w[i].last_end - t0;
        }
    }
    struct gilgate_stats s;
    if (gilgate_stats(&s) != GILGATE_OK) die("stats");
    if (s.drain_timeouts) die("drain timed out");
    if (mode == IDLE || mode == BUSY)
        printf("D %s %d %llu %llu %llu %llu %llu %llu\n", argv[1], n, (unsigned long long)s.drain_last_ns,
               (unsigned long long)wall, (unsigned long long)inflight, (unsigned long long)tail,
               (unsigned long long)maxr, (unsigned long long)entries);
    free(w);
    return 0;
}
