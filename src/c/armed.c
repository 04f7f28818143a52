/* The only C in gilgate: a setjmp cannot be called soundly from Rust (it returns twice), and Rust
 * in a cdylib only gets general-dynamic TLS (a __tls_get_addr call per access), while the entry
 * hot path needs initial-exec TLS.
 *
 * A gated entry calls into CPython through gg_armed_call_*: the thread's jump buffer is armed for
 * exactly the duration of that call. If CPython decides to kill the thread inside it
 * (pthread_exit on 3.8-3.13, pause() forever on 3.14+), gilgate's interposed pthread_exit/pause
 * call gg_kill_hook(), which jumps back here and the entry returns an error instead.
 * Frames skipped by the jump are CPython's own (take_gil, PyEval_RestoreThread, ...) and the
 * interposer's Rust frame, none of which own anything that needs unwinding at that point.
 */
#include <errno.h>
#include <stddef.h>

#define GG_TLS __thread __attribute__((tls_model("initial-exec")))
#define GG_API __attribute__((visibility("hidden")))

/* __builtin_setjmp saves only the frame pointer, stack pointer and resume address (3 words, no
 * libc call, no signal mask); the compiler makes the calling function save every callee-saved
 * register, so the jump back restores the caller's state. The longjmp comes from a deeper
 * frame (gg_kill_hook), as GCC requires. */
static GG_TLS void *gg_buf[5];
static GG_TLS volatile int gg_armed;
static GG_TLS volatile int gg_kill_kind;

/* Returns 0 when f returned normally, else the kill kind passed to gg_kill_hook (> 0). */
GG_API int gg_armed_call_p(void (*f)(void *), void *arg) {
    if (gg_armed) {
        /* Nested arming would overwrite the outer buffer: call unarmed (never expected). */
        f(arg);
        return 0;
    }
    int saved_errno = errno;
    if (__builtin_setjmp(gg_buf) != 0) {
        gg_armed = 0;
        errno = saved_errno;
        return gg_kill_kind;
    }
    gg_armed = 1;
    f(arg);
    gg_armed = 0;
    return 0;
}

/* Same for functions returning int and taking nothing (PyGILState_Ensure). */
GG_API int gg_armed_call_ri(int (*f)(void), int *out) {
    if (gg_armed) {
        *out = f();
        return 0;
    }
    int saved_errno = errno;
    if (__builtin_setjmp(gg_buf) != 0) {
        gg_armed = 0;
        errno = saved_errno;
        return gg_kill_kind;
    }
    gg_armed = 1;
    *out = f();
    gg_armed = 0;
    return 0;
}

/* Same for functions taking nothing and returning nothing (PyEval_AcquireLock). */
GG_API int gg_armed_call_v(void (*f)(void)) {
    if (gg_armed) {
        f();
        return 0;
    }
    int saved_errno = errno;
    if (__builtin_setjmp(gg_buf) != 0) {
        gg_armed = 0;
        errno = saved_errno;
        return gg_kill_kind;
    }
    gg_armed = 1;
    f();
    gg_armed = 0;
    return 0;
}

/* Called by the pthread_exit/pause interposers. Jumps back to the armed entry, or returns 0. */
GG_API int gg_kill_hook(int kind) {
    if (!gg_armed)
        return 0;
    gg_kill_kind = kind > 0 ? kind : 1;
    __builtin_longjmp(gg_buf, 1);
}

GG_API int gg_is_armed(void) { return gg_armed; }

/* What started this thread, decided once by origin.rs: 0 unknown, 1 host, 2 CPython.
 * Initial-exec TLS: readable from interposed functions without allocation or locks. */
static GG_TLS int gg_kind;
GG_API int gg_thread_kind(void) { return gg_kind; }
GG_API void gg_set_thread_kind(int k) { gg_kind = k; }

/* This thread's gate slot (gate.rs), for the entry hot path. */
static GG_TLS void *gg_slot;
GG_API void *gg_slot_get(void) { return gg_slot; }
GG_API void gg_slot_set(void *p) { gg_slot = p; }
