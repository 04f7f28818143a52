/* PEP 788 host 1: a native thread pool that runs Python callbacks through an interpreter view.
 *
 *   pep788_pool WORKERS DELAY_US SEED
 *
 * The main thread takes a view of its interpreter (PyInterpreterView_FromCurrent), starts
 * WORKERS native threads that loop: PyThreadState_EnsureFromView(view); on NULL the worker stops
 * (that is the interpreter going away), else it calls work(i), checks the result and
 * PyThreadState_Release()s. After DELAY_US the main thread calls Py_FinalizeEx while they run.
 * Afterwards: PyThreadState_EnsureFromView and PyInterpreterGuard_FromView on the view must be
 * NULL, every worker must have ended through a NULL (not vanished: each sets its flag and is
 * joined; a parked one would hang the join), and no callback result may be wrong.
 * Prints: RESULT ran=N refused=N errors=N vanished=N after_finalize=ok|BAD
 * (exit 0 only if errors=0, vanished=0, refused=WORKERS, after_finalize=ok). */
#include "pep788_common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MAXW 64
static PyInterpreterView *view;
static PyObject *work_fn;
static atomic_long next_job, ran, refused, errors;
static int ended[MAXW];

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(w + 1);
    for (;;) {
        long i = atomic_fetch_add(&next_job, 1);
        PyThreadStateToken *t = PyThreadState_EnsureFromView(view);
        if (!t) { atomic_fetch_add(&refused, 1); break; }
        if (!call_work(work_fn, i)) atomic_fetch_add(&errors, 1);
        PyThreadState_Release(t);
        atomic_fetch_add(&ran, 1);
        /* Between jobs the pool thread waits for work, attached to nothing and holding no guard (a
         * loop re-taking guards back to back would keep 3.15's Py_FinalizeEx waiting forever). */
        sleep_us(200 + (long)(rng_next(&rng) % 500));
    }
    ended[w] = 1;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s WORKERS DELAY_US SEED\n", argv[0]); return 2; }
    int nw = atoi(argv[1]);
    long delay = atol(argv[2]);
    if (nw < 1 || nw > MAXW) return 2;
    Py_Initialize();
    work_fn = load_work();
    view = PyInterpreterView_FromCurrent();
    if (!work_fn || !view) { fprintf(stderr, "setup failed\n"); return 3; }
    pthread_t th[MAXW];
    for (int w = 0; w < nw; w++) pthread_create(&th[w], NULL, worker, (void *)(intptr_t)w);
    Py_BEGIN_ALLOW_THREADS
    sleep_us(delay);
    Py_END_ALLOW_THREADS
    /* work_fn's reference goes with the runtime (workers use it only while attached). */
    if (Py_FinalizeEx() != 0) fprintf(stderr, "Py_FinalizeEx reported an error\n");
    int after_ok = 1;
    PyThreadStateToken *late = PyThreadState_EnsureFromView(view);
    if (late) { after_ok = 0; PyThreadState_Release(late); }
    PyInterpreterGuard *g = PyInterpreterGuard_FromView(view);
    if (g) { after_ok = 0; PyInterpreterGuard_Close(g); }
    for (int w = 0; w < nw; w++) pthread_join(th[w], NULL);
    int vanished = 0;
    for (int w = 0; w < nw; w++) vanished += !ended[w];
    PyInterpreterView_Close(view);
    printf("RESULT ran=%ld refused=%ld errors=%ld vanished=%d after_finalize=%s\n", atomic_load(&ran),
           atomic_load(&refused), atomic_load(&errors), vanished, after_ok ? "ok" : "BAD");
    return (atomic_load(&errors) == 0 && vanished == 0 && after_ok && atomic_load(&refused) == nw) ? 0 : 1;
}
