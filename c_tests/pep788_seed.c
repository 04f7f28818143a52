/* PEP 788 host 3: the seed's scenario (bpo-42969) the PEP 788 way. Worker threads hold a host
 * mutex around every call into Python while the main thread finalizes; with PyGILState_Ensure
 * a worker killed (3.8-3.13) or parked (3.14+) inside it keeps its mutex and the main thread
 * deadlocks on it. Here every call goes through PyThreadState_EnsureFromView on a view of the
 * main interpreter taken once, before the first Py_Initialize (PyInterpreterView_FromMain: the
 * seed's threads have no data argument), reused across CYCLES init/finalize cycles.
 *
 *   pep788_seed WORKERS DELAY_US CYCLES SEED
 *
 * Per cycle: Py_Initialize, WORKERS threads loop { lock mutex; EnsureFromView; NULL -> unlock and
 * stop; work(i), checked; Release; unlock; wait 0.2-1.2 ms for the next piece of work }, the main thread sleeps up to DELAY_US, calls
 * Py_FinalizeEx, then takes every worker's mutex (a worker gone while holding it hangs here) and
 * joins them. Every worker must end through a NULL.
 * Prints: RESULT ok=N refused=N errors=N vanished=N cycles=N (exit 0 iff errors=0, vanished=0,
 * refused=WORKERS*CYCLES). */
#include "pep788_common.h"
#include <pthread.h>

#define MAXW 64
static PyInterpreterView *view;
static PyObject *work_fn;
static pthread_mutex_t mu[MAXW];
static long ok_calls, refused, errors; /* __atomic builtins: the file is also built as C++ */
#define ADD1(x) __atomic_fetch_add(&(x), 1, __ATOMIC_SEQ_CST)
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
static int ended[MAXW];

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg;
    uint64_t rng = 0x2545F4914F6CDD1DULL ^ (uint64_t)(w + 1);
    for (long i = 0;; i++) {
        pthread_mutex_lock(&mu[w]);
        PyThreadStateToken *t = PyThreadState_EnsureFromView(view);
        if (!t) {
            pthread_mutex_unlock(&mu[w]);
            ADD1(refused);
            break;
        }
        if (!call_work(work_fn, i + w)) ADD1(errors);
        PyThreadState_Release(t);
        pthread_mutex_unlock(&mu[w]);
        ADD1(ok_calls);
        /* Waiting for the next piece of work, holding no guard: CPython 3.15's Py_FinalizeEx
         * waits (without a bound) until no guard is open, so a loop re-taking its guard back to
         * back would hold finalization forever (seen here: 3 of 4 runs on 3.15.2 hung). */
        sleep_us(200 + (long)(rng_next(&rng) % 1000));
    }
    ended[w] = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s WORKERS DELAY_US CYCLES SEED\n", argv[0]); return 2; }
    int nw = atoi(argv[1]), cycles = atoi(argv[3]);
    long delay = atol(argv[2]);
    uint64_t rng = (uint64_t)atoll(argv[4]) * 2654435761ULL + 1;
    if (nw < 1 || nw > MAXW || cycles < 1) return 2;
    view = PyInterpreterView_FromMain();
    if (!view) { fprintf(stderr, "PyInterpreterView_FromMain failed\n"); return 3; }
    int vanished = 0;
    for (int c = 0; c < cycles; c++) {
        Py_Initialize();
        work_fn = load_work();
        if (!work_fn) { fprintf(stderr, "setup failed\n"); return 3; }
        pthread_t th[MAXW];
        for (int w = 0; w < nw; w++) {
            pthread_mutex_init(&mu[w], NULL);
            ended[w] = 0;
            pthread_create(&th[w], NULL, worker, (void *)(intptr_t)w);
        }
        long d = delay > 0 ? (long)(rng_next(&rng) % (uint64_t)delay) : 0;
        Py_BEGIN_ALLOW_THREADS
        sleep_us(d);
        Py_END_ALLOW_THREADS
        if (Py_FinalizeEx() != 0) fprintf(stderr, "Py_FinalizeEx reported an error\n");
        for (int w = 0; w < nw; w++) { pthread_mutex_lock(&mu[w]); pthread_mutex_unlock(&mu[w]); }
        for (int w = 0; w < nw; w++) pthread_join(th[w], NULL);
        for (int w = 0; w < nw; w++) { vanished += !ended[w]; pthread_mutex_destroy(&mu[w]); }
    }
    PyInterpreterView_Close(view);
    printf("RESULT ok=%ld refused=%ld errors=%ld vanished=%d cycles=%d\n", LOAD(ok_calls), LOAD(refused),
           LOAD(errors), vanished, cycles);
    return (LOAD(errors) == 0 && vanished == 0 && LOAD(refused) == (long)nw * cycles) ? 0 : 1;
}
