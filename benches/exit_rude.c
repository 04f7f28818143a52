/* benches/exit_rude.c: a library whose own native threads call a Python callback in a loop and
 * are never stopped (benches/exit_rude.py drives it through ctypes; no Python header needed).
 *   start(n, cb): n detached threads, each calling cb(i) forever
 *   calls():      callbacks made so far (all threads)                                        */
#include <pthread.h>
#include <stdint.h>

typedef int (*callback)(int);
static callback g_cb;
static volatile uint64_t g_calls;

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    for (;;) {
        g_cb(i);
        __atomic_fetch_add(&g_calls, 1, __ATOMIC_RELAXED);
    }
    return 0;
}

int start(int n, callback cb) {
    g_cb = cb;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, (void *)(intptr_t)i) != 0) return -1;
        pthread_attr_destroy(&a);
    }
    return 0;
}

uint64_t calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_RELAXED); }
