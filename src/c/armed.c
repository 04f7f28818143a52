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

/* Make CALL with this thread's jump buffer armed. Evaluates to 0 when CALL returned normally,
 * else to the kill kind passed to gg_kill_hook (> 0). A statement expression: each expansion is
 * its own function body below, so the setjmp receiver stays in the function that called it. */
#define GG_ARMED(CALL)                                                                        \
    ({                                                                                        \
        int gg_rc_ = 0;                                                                       \
        if (gg_armed) {                                                                       \
            /* Nested arming would overwrite the outer buffer: call unarmed (never expected). */ \
            CALL;                                                                             \
        } else {                                                                              \
            int gg_saved_errno_ = errno;                                                      \
            if (__builtin_setjmp(gg_buf) != 0) {                                              \
                gg_armed = 0;                                                                 \
                errno = gg_saved_errno_;                                                      \
                gg_rc_ = gg_kill_kind;                                                        \
            } else {                                                                          \
                gg_armed = 1;                                                                 \
                CALL;                                                                         \
                gg_armed = 0;                                                                 \
            }                                                                                 \
        }                                                                                     \
        gg_rc_;                                                                               \
    })

/* PyEval_RestoreThread / PyEval_AcquireThread (a PyThreadState * argument). */
GG_API int gg_armed_call_p(void (*f)(void *), void *arg) { return GG_ARMED(f(arg)); }

/* PyGILState_Ensure (returns an int-sized enum, takes nothing). */
GG_API int gg_armed_call_ri(int (*f)(void), int *out) { return GG_ARMED(*out = f()); }

/* PyEval_AcquireLock (takes and returns nothing). */
GG_API int gg_armed_call_v(void (*f)(void)) { return GG_ARMED(f()); }

/* Called by the pthread_exit/pause interposers. Jumps back to the armed entry, or returns 0. */
GG_API int gg_kill_hook(int kind) {
    if (!gg_armed)
        return 0;
    gg_kill_kind = kind > 0 ? kind : 1;
    __builtin_longjmp(gg_buf, 1);
}


/* What started this thread, decided once by origin.rs: 0 unknown, 1 host, 2 CPython.
 * Initial-exec TLS: readable from interposed functions without allocation or locks. */
static GG_TLS int gg_kind;
GG_API int gg_thread_kind(void) { return gg_kind; }
GG_API void gg_set_thread_kind(int k) { gg_kind = k; }

/* This thread's gate slot (gate.rs), for the entry hot path. */
static GG_TLS void *gg_slot;
GG_API void *gg_slot_get(void) { return gg_slot; }
GG_API void gg_slot_set(void *p) { gg_slot = p; }
