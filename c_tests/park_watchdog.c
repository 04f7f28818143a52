/* The deadlock watchdog (src/park.rs) against an unmodified host, preloaded: what it must name
 * and what it must leave alone. Three workers call into Python in a loop, each call inside one
 * shared host mutex; the main thread finalizes while they call, so the worker refused (or killed)
 * while holding the mutex is parked with it, and the others block on it forever.
 *
 *   park_watchdog workers-wait  the main thread returns: blocked workers do not keep a process
 *                               alive (raw 3.14 exits over them), so: exit 0, nothing on stderr.
 *   park_watchdog timed         the main thread tries the mutex with pthread_mutex_timedlock for
 *                               1.5 s, then gives up and returns: a timed wait ends by itself,
 *                               so: exit 0, nothing on stderr.
 *   park_watchdog join          the main thread joins every worker: it waits forever (directly
 *                               on the parked one, or on a worker blocked on its mutex), so the
 *                               watchdog must name the wait and abort.
 * Prints "RESULT mode=..." before the final wait. Exit 3 if no worker ever ran Python. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WORKERS 3
static pthread_mutex_t g_shared = PTHREAD_MUTEX_INITIALIZER;
static volatile long g_calls;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_shared);
        PyGILState_STATE st = PyGILState_Ensure();
        PyRun_SimpleString("sum(range(20))");
        __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
        PyGILState_Release(st);
        pthread_mutex_unlock(&g_shared);
    }
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "workers-wait") && strcmp(mode, "timed") && strcmp(mode, "join")) {
        fprintf(stderr, "usage: park_watchdog workers-wait|timed|join\n");
        return 2;
    }
    Py_InitializeEx(0);
    PyThreadState *main_ts = PyEval_SaveThread();
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 2000 && __atomic_load_n(&g_calls, __ATOMIC_RELAXED) < 20; i++)
        sleep_ms(1);
    long calls = __atomic_load_n(&g_calls, __ATOMIC_RELAXED);
    PyEval_RestoreThread(main_ts);
    Py_FinalizeEx();
    printf("RESULT mode=%s calls=%ld\n", mode, calls);
    fflush(stdout);
    if (calls == 0)
        return 3;
    if (!strcmp(mode, "timed")) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        until.tv_nsec += 500000000L;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
        int rc;
        while ((rc = pthread_mutex_timedlock(&g_shared, &until)) == EINTR) {}
        if (rc == 0) pthread_mutex_unlock(&g_shared);
    } else if (!strcmp(mode, "join")) {
        for (int i = 0; i < WORKERS; i++)
            pthread_join(th[i], NULL);
    }
    return 0;
}
