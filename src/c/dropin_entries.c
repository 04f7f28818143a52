/* The drop-in exports' fast paths (exports/dropin.rs: each export's trampoline passes the caller's
 * return address and stack pointer and jumps here). Calls from CPython's own code go straight to
 * CPython; a host thread's outermost entry (in C here; on x86-64 and aarch64 the same sequence in
 * x86_64/dropin_entries.S, aarch64/dropin_entries.S) and its matching save take the fast path; everything else (first call
 * on a thread, nesting, extension saves inside a region, refusals, policy) is Rust's
 * (dropin.rs `*_impl`). */
#include "shared.h"

#if !GG_ASM_ENTRIES
/* A host thread's outermost entry; returns 1 if done (GIL held), 0 for Rust's path. */
static inline __attribute__((always_inline)) int gg_drop_entry(void *f, void *arg, int *value_out,
                                                                uintptr_t sp, int which, int kind) {
    struct slot *sl = gg_slot_or_null();
    if (__builtin_expect(!sl || gg_kind != GG_HOST, 0))
        return 0;
    int rc = gg_fast_entry(sl, f, arg, value_out, sp, 0, kind);
    if (__builtin_expect(rc > 0, 0))
        gg_rust.drop_killed(sl, rc, which); /* the policy: does not come back */
    return rc == GG_OK;
}

GG_API void gg_drop_restore_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_RESTORE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_restore(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra) || !ts || gg_kind == GG_CPYTHON) {
        f(ts);
        return;
    }
    if (gg_in_python(ts) || !gg_drop_entry((void *)f, ts, NULL, sp, GG_W_RESTORE, GG_KIND_TSTATE))
        gg_rust.drop_restore(ts, ra, sp);
}

GG_API void gg_drop_acquire_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_ACQUIRE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_acquire(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra) || !ts || gg_kind == GG_CPYTHON) {
        f(ts);
        return;
    }
    if (gg_in_python(ts) || !gg_drop_entry((void *)f, ts, NULL, sp, GG_W_ACQUIRE, GG_KIND_TSTATE))
        gg_rust.drop_acquire(ts, ra, sp);
}

GG_API int gg_drop_gilstate_ensure(uintptr_t ra, uintptr_t sp) {
    int (*f)(void) = (int (*)(void))gg_py(GG_PY_ENSURE);
    if (__builtin_expect(!f, 0))
        return gg_rust.drop_ensure(ra, sp);
    if (gg_from_cpython(ra) || gg_kind == GG_CPYTHON)
        return f();
    int v = 0;
    if (gg_drop_entry((void *)f, NULL, &v, sp, GG_W_ENSURE, GG_KIND_GILSTATE))
        return v;
    return gg_rust.drop_ensure(ra, sp);
}
#endif

/* Save side: the region rule of gate/region.rs and dropin.rs `save_impl`. 0: no region, forward.
 * 1: the outermost level is the host's own level of `kind`: forward, then close it (a thread-state
 * level only if its thread state is back at the host's level, no Python frame executing: frames[0]
 * is always 0; else the save is an extension's inside Python code, and suspends it). 2: Rust. */
static inline int gg_drop_leave_kind(struct slot *sl, int kind) {
    if (sl == &gg_no_slot)
        return 0;
    uint64_t dk = gg_depth_kind(sl);
    if (dk == GG_OUTERMOST(kind))
        return 1;
    return (uint32_t)dk == 0 ? 0 : 2;
}
static inline void gg_drop_saved(struct slot *sl, void *ts) {
    if (!gg_in_python(ts)) {
        gg_leave_outermost_any(sl);
        return;
    }
    atomic_store_explicit(&sl->kinds[1], GG_KIND_SUSPEND, RLX);
    atomic_store_explicit(&sl->frames[1], 0, RLX);
    atomic_store_explicit(&sl->depth, 2, memory_order_release);
}

GG_API void *gg_drop_save_thread(uintptr_t ra, uintptr_t sp) {
    void *(*f)(void) = (void *(*)(void))gg_py(GG_PY_SAVE);
    if (__builtin_expect(!f, 0))
        return gg_rust.drop_save(ra, sp);
    if (gg_from_cpython(ra))
        return f();
    struct slot *sl = gg_slot;
    int k = gg_drop_leave_kind(sl, GG_KIND_TSTATE);
    if (k == 2)
        return gg_from_self(ra) ? f() : gg_rust.drop_save(ra, sp);
    void *ts = f();
    if (k == 1)
        gg_drop_saved(sl, ts);
    return ts;
}

GG_API void gg_drop_release_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_RELEASE_THREAD);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_release_thread(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra)) {
        f(ts);
        return;
    }
    struct slot *sl = gg_slot;
    int k = gg_drop_leave_kind(sl, GG_KIND_TSTATE);
    if (k == 2) {
        if (gg_from_self(ra))
            f(ts);
        else
            gg_rust.drop_release_thread(ts, ra, sp);
        return;
    }
    f(ts);
    if (k == 1)
        gg_drop_saved(sl, ts);
}

GG_API void gg_drop_gilstate_release(int st, uintptr_t ra, uintptr_t sp) {
    void (*f)(int) = (void (*)(int))gg_py(GG_PY_GILSTATE_RELEASE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_gilstate_release(st, ra, sp);
        return;
    }
    if (gg_from_cpython(ra)) {
        f(st);
        return;
    }
    struct slot *sl = gg_slot;
    int k = gg_drop_leave_kind(sl, GG_KIND_GILSTATE);
    if (k == 2) {
        if (gg_from_self(ra))
            f(st);
        else
            gg_rust.drop_gilstate_release(st, ra, sp);
        return;
    }
    f(st);
    if (k == 1)
        gg_leave_outermost_any(sl);
}
