/* Probes for one test: src/exports/fastpath_equivalence.rs drives shared.h's static inline rules
 * (which Rust cannot call) with the same scenario tables as the Rust functions they mirror. Hidden,
 * and referenced by nothing else, so the static archive member stays out of the shipped library. */
#include "shared.h"

GG_API int gg_probe_in_python(const void *ts) { return gg_in_python(ts); }
GG_API int gg_probe_from_cpython(uintptr_t ra) { return gg_from_cpython(ra); }
GG_API int gg_probe_from_self(uintptr_t ra) { return gg_from_self(ra); }

/* PEP 788's ensure below 3.15 (pep788_compat.c, x86_64/pep788_entries.S): this thread's address
 * of CPython's thread-local, and the Rust body the entry defers to (the previous one returned). */
typedef void *(*gg_probe_788_fn)(void *);
extern GG_TLS GG_API void *const *gg788_tss;
extern GG_API gg_probe_788_fn gg788_rs_ensure;
GG_API void gg_probe_788_tss(void *const *tss) { gg788_tss = tss; }
/* aarch64: gg788_tp_off such that tpidr_el0 + it is `p` on this thread (NULL: 0, not proven). */
extern GG_API intptr_t gg788_tp_off;
GG_API void gg_probe_788_tp_at(const void *p) {
#if defined(__aarch64__)
    gg788_tp_off = p ? (intptr_t)((const char *)p - (const char *)__builtin_thread_pointer()) : 0;
#else
    (void)p;
    gg788_tp_off = 0;
#endif
}
GG_API gg_probe_788_fn gg_probe_788_rs(gg_probe_788_fn rs) {
    gg_probe_788_fn old = gg788_rs_ensure;
    gg788_rs_ensure = rs;
    return old;
}
