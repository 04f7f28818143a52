/* The data the C fast paths and Rust share (layouts: gg_layout.h, from src/base/layout.rs): the
 * read-mostly line gg_hot, the table of Rust paths gg_rust with the stubs that answer before the
 * library constructor registers it, and the thread-local words the fast paths read. */
#include "shared.h"

/* Read-mostly words every entry reads, alone in a 128-byte block (two cache lines, which adjacent-
 * line prefetch pairs anyway): the state word (gate/state.rs: state in the low 2 bits, generation
 * above), whether membarrier is in use, CPython's functions (NULL until a CPython is resolved: the
 * fast paths then defer to Rust; API_ENSURE/API_GILSTATE_RELEASE stay NULL where the fallible
 * API's gilstate pair must run its Rust path every time, PEP 788's tokens on 3.15+), CPython's and
 * gilgate's code ranges, the main interpreter, where a thread state keeps its Python frame. */
GG_API _Alignas(128) struct gg_hot gg_hot = { .state = GG_INITIAL_STATE };

/* The stubs: before the constructor registered the Rust side, no CPython is bound yet. The
 * drop-in ones cannot do better than trap (a library constructor calling CPython before
 * gilgate's ran). */
static int stub_entry(void *p) { (void)p; return GG_ERR_NO_PYTHON; }
static int stub_ensure(int *p) { (void)p; return GG_ERR_NO_PYTHON; }
static void *stub_save(void) { return NULL; }
static void stub_release_thread(void *p) { (void)p; }
static void stub_gilstate_release(int st) { (void)st; }
static int stub_killed(struct slot *s, int k, int w) { (void)s; (void)k; (void)w; return GG_ERR_FINALIZING; }
static void stub_drop_p(void *t, uintptr_t a, uintptr_t b) { (void)t; (void)a; (void)b; __builtin_trap(); }
static int stub_drop_ensure(uintptr_t a, uintptr_t b) { (void)a; (void)b; __builtin_trap(); }
static void *stub_drop_save(uintptr_t a, uintptr_t b) { (void)a; (void)b; __builtin_trap(); }
static void stub_drop_gs_release(int st, uintptr_t a, uintptr_t b) { (void)st; (void)a; (void)b; __builtin_trap(); }
static void stub_drop_killed(struct slot *s, int k, int w) { (void)s; (void)k; (void)w; __builtin_trap(); }
GG_API struct gg_rust gg_rust = {
    .restore = stub_entry, .acquire = stub_entry, .ensure = stub_ensure, .save = stub_save,
    .release_thread = stub_release_thread, .gilstate_release = stub_gilstate_release,
    .killed = stub_killed, .drop_restore = stub_drop_p, .drop_acquire = stub_drop_p,
    .drop_ensure = stub_drop_ensure, .drop_save = stub_drop_save, .drop_release_thread = stub_drop_p,
    .drop_gilstate_release = stub_drop_gs_release, .drop_killed = stub_drop_killed,
};
GG_API void gg_set_rust(const struct gg_rust *r) { gg_rust = *r; }

GG_API void gg_publish_py(int i, void *f) { atomic_store_explicit(&gg_hot.py[i], f, memory_order_release); }
GG_API void gg_publish_text(uintptr_t lo, uintptr_t hi) {
    atomic_store_explicit(&gg_hot.text_hi, hi, RLX);
    atomic_store_explicit(&gg_hot.text_lo, lo, memory_order_release);
}
GG_API void gg_publish_self_text(uintptr_t lo, uintptr_t hi) {
    atomic_store_explicit(&gg_hot.self_hi, hi, RLX);
    atomic_store_explicit(&gg_hot.self_lo, lo, memory_order_release);
}

/* This thread's slot. No fast path writes gg_no_slot (each writes only after the depth test). */
GG_API struct slot gg_no_slot = { .depth = UINT32_MAX };
GG_TLS GG_API void *gg_slot __attribute__((used)) = &gg_no_slot;
GG_API void *gg_slot_get(void) { return gg_slot_or_null(); }
GG_API void gg_slot_set(void *p) { gg_slot = p ? p : &gg_no_slot; }

/* Decided once per thread by origin.rs. Initial-exec TLS: readable from interposed functions
 * without allocation or locks. */
GG_TLS GG_API int gg_kind __attribute__((used));
GG_API int gg_thread_kind(void) { return gg_kind; }
GG_API void gg_set_thread_kind(int k) { gg_kind = k; }

/* The armed call's jump buffer (armed_call.c). */
GG_TLS GG_API struct gg_jb gg_jb __attribute__((used));
