/* PEP 788 on CPython < 3.15 (src/exports/pep788_compat.rs): the hot path of gilgate_thread_state_ensure /
 * gilgate_thread_state_release, entered by a tail jump from the naked Rust exports. It handles
 * the common case only: an open guard of the main interpreter of the current runtime generation,
 * on a thread with no attached thread state (3.12+, where that test is one thread-local read):
 * the level is gg_api_gilstate_ensure's (the gilgate_gilstate_ensure fast path), and its token
 * says so; its release is gg_api_gilstate_release. Everything else goes to the Rust bodies.
 *
 * gg788_compat_ensure is the entry the export jumps to: on x86-64 and aarch64 (not
 * portable-entries) assembly, gg788c_ensure and gg_api_gilstate_ensure in one frame:
 * x86_64/pep788_entries.S falls back to gg788c_ensure while this thread's thread-local address is
 * not known; aarch64/pep788_entries.S reads it at tpidr_el0 + gg788_tp_off when pep788_compat.rs
 * `tls_getter` proved a static-TLS descriptor getter, else calls CPython's getter itself (this C
 * path always calls the getter on aarch64). Elsewhere gg788c_ensure itself. */
#include "shared.h"

/* The head of the Rust `Guard` (#[repr(C)], asserted there). `key`: the state word of its
 * generation while RUNNING (gate/protocol.rs `pack(RUNNING, gen)`) for a guard of the main
 * interpreter, UINT64_MAX otherwise: "main interpreter, this generation, running" is one compare
 * with the state word. */
struct gg788c_guard {
    uint64_t magic;
    void *interp;
    uint64_t gen;
    unsigned char main;
    uint64_t key;
};
_Static_assert(offsetof(struct gg788c_guard, key) == GG788_GUARD_KEY, "pep788_compat.rs Guard");
#define GG788C_T_MASK 7u
#define GG788C_T_GILSTATE 4u

GG_API int gg_api_gilstate_ensure(int *out); /* api_entries.c / <arch>/api_entries.S */
GG_API void gg_api_gilstate_release(int st);  /* api_entries.c */

/* Published by Rust once it knows the layer is gilgate's (CPython < 3.15): CPython's
 * "attached thread state" getter (3.12+: the calling thread's own; NULL on 3.8-3.11, whose
 * getter is runtime-wide: those take the Rust path) and the gate's state word; and, when Rust
 * could prove what that getter reads (pep788_compat.rs `tls_getter`), CPython's thread-local:
 * `tss_ti` (the getter's tls_index, an argument for __tls_get_addr) + `tss_disp`. */
GG_API void *(*gg788_cur_fn)(void); /* read by aarch64/pep788_entries.S */
static const uint64_t *state_word;
static void *tss_ti;
static intptr_t tss_disp;
/* aarch64: the thread-pointer offset of CPython's thread-local when Rust proved the getter a
 * static-TLS descriptor access (published as ti = NULL, disp = the offset); 0: not proven. Read
 * by aarch64/pep788_entries.S only (the C path calls the getter there). */
GG_API intptr_t gg788_tp_off;
/* This thread's address of that thread-local (NULL: not known yet, or not provable): stable for
 * the thread's lifetime (a TLS block never moves; libpython is never unloaded under gilgate, whose
 * resolved CPython functions would dangle too). Read by x86_64/pep788_entries.S. */
GG_TLS GG_API void *const *gg788_tss;
/* The Rust bodies, set at load (an .init_array entry in pep788_compat.rs). */
GG_API void *(*gg788_rs_ensure)(void *);
static void (*rs_release)(void *);

extern void *__tls_get_addr(void *ti);

GG_API void gg788c_set_paths(void *(*ensure)(void *), void (*release)(void *)) {
    gg788_rs_ensure = ensure;
    rs_release = release;
}

GG_API void gg788c_publish(void *(*cur)(void), const uint64_t *state, void *ti, intptr_t disp) {
    __atomic_store_n(&state_word, state, __ATOMIC_RELAXED);
    __atomic_store_n(&tss_disp, disp, __ATOMIC_RELAXED);
    __atomic_store_n(&tss_ti, ti, __ATOMIC_RELAXED);
    __atomic_store_n(&gg788_tp_off, ti ? 0 : disp, __ATOMIC_RELAXED); /* ordered by the release below */
    __atomic_store_n(&gg788_cur_fn, cur, __ATOMIC_RELEASE);
}

/* The calling thread's address of CPython's thread-local for tls_index `ti` + `disp` (Rust's
 * check of its proof, and the per-thread fill below). */
GG_API void *const *gg788c_tls_addr(void *ti, intptr_t disp) {
    return (void *const *)((char *)__tls_get_addr(ti) + disp);
}

/* Whether a thread state is attached to the calling thread (gg788_cur_fn published): this thread's
 * address of CPython's thread-local, found once per thread, or where Rust could not prove where
 * that is, CPython's getter. */
static __attribute__((noinline, cold)) int attached_first(void *(*cur)(void)) {
    void *ti = __atomic_load_n(&tss_ti, __ATOMIC_RELAXED); /* ordered by gg788_cur_fn's acquire */
    if (!ti)
        return cur() != 0;
    void *const *p = gg788c_tls_addr(ti, __atomic_load_n(&tss_disp, __ATOMIC_RELAXED));
    gg788_tss = p;
    return *(void *volatile const *)p != 0;
}
static inline int attached(void *(*cur)(void)) {
    void *const *p = gg788_tss;
    if (__builtin_expect(!p, 0))
        return attached_first(cur);
    return *(void *volatile const *)p != 0;
}

GG_API void *gg788c_ensure(struct gg788c_guard *g) {
    void *(*cur)(void) = __atomic_load_n(&gg788_cur_fn, __ATOMIC_ACQUIRE);
    if (__builtin_expect(cur != 0 && g != 0, 1) && g->magic == GG788_GUARD_MAGIC
        && g->key == __atomic_load_n(state_word, __ATOMIC_ACQUIRE) && !attached(cur)) {
        int st = 0;
        if (gg_api_gilstate_ensure(&st) != 0) return 0;
        return (void *)(uintptr_t)(GG788C_T_GILSTATE | ((unsigned)(st & 1) << 3));
    }
    return gg788_rs_ensure(g);
}

#if !GG_ASM_ENTRIES
GG_API void *gg788_compat_ensure(struct gg788c_guard *g) __attribute__((alias("gg788c_ensure")));
#endif

GG_API void gg788c_release(void *token) {
    if (__builtin_expect(__atomic_load_n(&gg788_cur_fn, __ATOMIC_RELAXED) != 0, 1)
        && ((uintptr_t)token & GG788C_T_MASK) == GG788C_T_GILSTATE) {
        gg_api_gilstate_release((int)((uintptr_t)token >> 3));
        return;
    }
    rs_release(token);
}
