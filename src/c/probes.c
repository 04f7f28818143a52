/* Probes for one test: src/exports/fastpath_equivalence.rs drives shared.h's static inline rules
 * (which Rust cannot call) with the same scenario tables as the Rust functions they mirror. Hidden,
 * and referenced by nothing else, so the static archive member stays out of the shipped library. */
#include "shared.h"

GG_API int gg_probe_in_python(const void *ts) { return gg_in_python(ts); }
GG_API int gg_probe_from_cpython(uintptr_t ra) { return gg_from_cpython(ra); }
GG_API int gg_probe_from_self(uintptr_t ra) { return gg_from_self(ra); }
