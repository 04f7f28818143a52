/* The watchdog of parked threads (src/park.rs) against an unmodified host, preloaded. Three
 * workers call into Python in a loop, each call inside a host mutex; the main thread finalizes
 * while they call, so a worker refused (or killed) while holding its mutex is parked with it.
 *
 *   park_watchdog workers-wait  one mutex shared by all workers: the others block on it forever.
 *                               The main thread returns: blocked workers do not keep a process
 *                               alive (raw 3.14 exits over them): exit 0, nothing on stderr.
 *   park_watchdog timed         the main thread tries the shared mutex with
 *                               pthread_mutex_timedlock for 1.5 s, then returns: a timed wait
 *                               ends by itself: exit 0, nothing on stderr.
 *   park_watchdog join          a mutex per worker (every worker is parked); the main thread
 *                               joins them. Where CPython would have ended them (pthread_exit,
 *                               3.8-3.13) the watchdog releases them to it: exit 0, quietly, as
 *                               raw; where CPython parks (3.14+) the wait is named, SIGABRT.
 *   park_watchdog mutex         a mutex per worker; the main thread takes worker 0's: named on
 *                               every version (released to pthread_exit, the worker still never
 *                               unlocks), SIGABRT.
 * Prints "RESULT mode=..." before the final wait. Exit 3 if no worker ever ran Python. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WORKERS 3
static pthread_mutex_t g_mu[WORKERS] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                                        PTHREAD_MUTEX_INITIALIZER};
static int g_shared; /* every worker uses g_mu[0] */
static volatile long g_calls;

static void *worker(void *arg) {
    pthread_mutex_t *mu = &g_mu[g_shared ? 0 : (long)arg];
    for (;;) {
        pthread_mutex_lock(mu);
        PyGILState_STATE st = PyGILState_Ensure();
        PyRun_SimpleString("sum(range(20))");
        __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
        PyGILState_Release(st);
        pthread_mutex_unlock(mu);
    }
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "workers-wait") && strcmp(mode, "timed") && strcmp(mode, "join") && strcmp(mode, "mutex")) {
        fprintf(stderr, "usage: park_watchdog workers-wait|timed|join|mutex\n");
        return 2;
    }
    g_shared = !strcmp(mode, "workers-wait") || !strcmp(mode, "timed");
    Py_InitializeEx(0);
    PyThreadState *main_ts = PyEval_SaveThread();
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(long)i);
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
        while ((rc = pthread_mutex_timedlock(&g_mu[0], &until)) == EINTR) {}
        if (rc == 0) pthread_mutex_unlock(&g_mu[0]);
    } else if (!strcmp(mode, "join")) {
        for (int i = 0; i < WORKERS; i++)
            pthread_join(th[i], NULL);
    } else if (!strcmp(mode, "mutex")) {
        /* Wait until worker 0 holds its mutex again (its next call after finalization began is
         * refused inside it, so from then on it is parked holding it), so that the lock below
         * always meets that case, however the threads were scheduled. */
        for (int i = 0; i < 5000; i++) {
            if (pthread_mutex_trylock(&g_mu[0]) == EBUSY)
                break;
            pthread_mutex_unlock(&g_mu[0]);
            sleep_ms(1);
        }
        pthread_mutex_lock(&g_mu[0]);
        pthread_mutex_unlock(&g_mu[0]);
    }
    return 0;
}
