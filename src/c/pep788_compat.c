/* PEP 788 on CPython < 3.15 (src/exports/pep788_compat.rs): the hot path of gilgate_thread_state_ensure /
 * gilgate_thread_state_release in C, entered by a tail jump from the naked Rust exports. It
 * handles the common case only: an open guard of the main interpreter of the current runtime
 * generation, on a thread with no attached thread state (3.12+, where that test is one call):
 * the level is gg_api_gilstate_ensure's (the gilgate_gilstate_ensure fast path), and its token
 * says so; its release is gg_api_gilstate_release. Everything else goes to the Rust bodies. */
#include <stdint.h>
#define GG_API __attribute__((visibility("hidden")))

/* The head of the Rust `gilgate_interpreter_guard` (#[repr(C)], asserted there). */
struct gg788c_guard {
    uint64_t magic;
    void *interp;
    uint64_t gen;
    unsigned char main;
};
#define GG788C_GUARD_MAGIC 0x6767677561726431ULL
#define GG788C_T_MASK 7u
#define GG788C_T_GILSTATE 4u

GG_API int gg_api_gilstate_ensure(int *out); /* api_entries.c */
GG_API void gg_api_gilstate_release(int st);  /* api_entries.c */

/* Published by Rust once it knows the layer is gilgate's (CPython < 3.15): CPython's
 * "attached thread state" getter (3.12+: the calling thread's own; NULL on 3.8-3.11, whose
 * getter is runtime-wide: those take the Rust path) and the gate's state word. */
static void *(*cur_fn)(void);
static const uint64_t *state_word;
/* The Rust bodies, set at load (an .init_array entry in pep788_compat.rs). */
static void *(*rs_ensure)(void *);
static void (*rs_release)(void *);

GG_API void gg788c_set_paths(void *(*ensure)(void *), void (*release)(void *)) {
    rs_ensure = ensure;
    rs_release = release;
}

GG_API void gg788c_publish(void *(*cur)(void), const uint64_t *state) {
    __atomic_store_n(&state_word, state, __ATOMIC_RELAXED);
    __atomic_store_n(&cur_fn, cur, __ATOMIC_RELEASE);
}

GG_API void *gg788c_ensure(struct gg788c_guard *g) {
    void *(*cur)(void) = __atomic_load_n(&cur_fn, __ATOMIC_ACQUIRE);
    if (__builtin_expect(cur != 0 && g != 0, 1) && g->magic == GG788C_GUARD_MAGIC && g->main
        && (__atomic_load_n(state_word, __ATOMIC_ACQUIRE) >> 2) == g->gen && cur() == 0) {
        int st = 0;
        if (gg_api_gilstate_ensure(&st) != 0) return 0;
        return (void *)(uintptr_t)(GG788C_T_GILSTATE | ((unsigned)(st & 1) << 3));
    }
    return rs_ensure(g);
}

GG_API void gg788c_release(void *token) {
    if (__builtin_expect(__atomic_load_n(&cur_fn, __ATOMIC_RELAXED) != 0, 1)
        && ((uintptr_t)token & GG788C_T_MASK) == GG788C_T_GILSTATE) {
        gg_api_gilstate_release((int)((uintptr_t)token >> 3));
        return;
    }
    rs_release(token);
}
