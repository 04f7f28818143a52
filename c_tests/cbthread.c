/* A C library that an unmodified Python program uses through ctypes: it starts its own threads
 * (host threads, not CPython's) that call a Python callback in a loop while holding the library's
 * lock, and its destructor takes that lock at exit. ctypes' callback trampoline calls
 * PyGILState_Ensure: during finalization raw CPython kills (3.8-3.13) or parks (3.14+) the thread
 * while it holds the lock, and exit() then deadlocks in the destructor. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

typedef int (*cb_t)(int);
static cb_t g_cb;
static volatile int g_stop;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void *loop(void *arg) {
    (void)arg;
    int i = 0;
    while (!__atomic_load_n(&g_stop, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&g_lock);
        g_cb(i++);
        pthread_mutex_unlock(&g_lock);
        usleep(50);
    }
    return NULL;
}

/* One more thread that makes its first callback only once the file `go` exists (created by a
 * debugger that holds the main thread at a chosen point of finalization: harness/tests/dropin.rs),
 * then loops like the others. */
static char g_go[4096];

static void *loop_on_go(void *arg) {
    while (access(g_go, F_OK) != 0)
        usleep(1000);
    return loop(arg);
}

int cbthread_start_on_go(cb_t cb, const char *go) {
    g_cb = cb;
    snprintf(g_go, sizeof g_go, "%s", go);
    pthread_t t;
    if (pthread_create(&t, NULL, loop_on_go, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}

int cbthread_start(cb_t cb, int n) {
    g_cb = cb;
    for (int k = 0; k < n; k++) {
        pthread_t t;
        if (pthread_create(&t, NULL, loop, NULL) != 0) return -1;
        pthread_detach(t);
    }
    return 0;
}

__attribute__((destructor)) static void cbthread_fini(void) {
    __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&g_lock);
    pthread_mutex_unlock(&g_lock);
    fprintf(stderr, "cbthread: clean shutdown\n");
}
