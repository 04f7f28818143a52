/* The fallible API's fast paths (exports/api.rs tail-jumps to them): the outermost entries
 * gg_api_restore_thread/acquire_thread/gilstate_ensure (in C here; on x86-64 and aarch64 the same
 * sequence in x86_64/api_entries.S, aarch64/api_entries.S) and the matching releases. Everything they do not handle goes to the Rust
 * paths in gg_rust (api.rs `*_slow`), which run the same rules in full (gate/entry.rs). */
#include "shared.h"

#if !GG_ASM_ENTRIES
GG_API int gg_api_restore_thread(void *ts) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_RESTORE);
    if (__builtin_expect(!sl || !f || !ts, 0))
        return gg_rust.restore(ts);
    int rc = gg_fast_entry(sl, f, ts, NULL, gg_sp(), 1, GG_KIND_API_TSTATE);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.restore(ts) : gg_rust.killed(sl, rc, GG_W_RESTORE);
    return GG_OK;
}

GG_API int gg_api_acquire_thread(void *ts) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_ACQUIRE);
    if (__builtin_expect(!sl || !f || !ts, 0))
        return gg_rust.acquire(ts);
    int rc = gg_fast_entry(sl, f, ts, NULL, gg_sp(), 1, GG_KIND_API_TSTATE);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.acquire(ts) : gg_rust.killed(sl, rc, GG_W_ACQUIRE);
    return GG_OK;
}

GG_API int gg_api_gilstate_ensure(int *out) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_API_ENSURE);
    if (__builtin_expect(!sl || !f || !out, 0))
        return gg_rust.ensure(out);
    /* *out is written only when PyGILState_Ensure returned. */
    int rc = gg_fast_entry(sl, f, NULL, out, gg_sp(), 0, GG_KIND_API_GILSTATE);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.ensure(out) : gg_rust.killed(sl, rc, GG_W_ENSURE);
    return GG_OK;
}
#endif

GG_API void *gg_api_save_thread(void) {
    struct slot *sl = gg_slot;
    if (__builtin_expect(!gg_release_fast(sl, GG_KIND_API_TSTATE), 0))
        return gg_rust.save();
    void *ts = ((void *(*)(void))gg_py(GG_PY_SAVE))();
    gg_leave_outermost(sl);
    return ts;
}

GG_API void gg_api_release_thread(void *ts) {
    struct slot *sl = gg_slot;
    if (__builtin_expect(!ts || !gg_release_fast(sl, GG_KIND_API_TSTATE), 0)) {
        gg_rust.release_thread(ts);
        return;
    }
    ((void (*)(void *))gg_py(GG_PY_RELEASE_THREAD))(ts);
    gg_leave_outermost(sl);
}

GG_API void gg_api_gilstate_release(int st) {
    struct slot *sl = gg_slot;
    void (*f)(int) = (void (*)(int))gg_py(GG_PY_API_GILSTATE_RELEASE); /* NULL on PEP 788's path */
    if (__builtin_expect(!f || !gg_release_fast(sl, GG_KIND_API_GILSTATE), 0)) {
        gg_rust.gilstate_release(st);
        return;
    }
    f(st);
    gg_leave_outermost(sl);
}
