/* gilgate_pep788.h: CPython 3.15's PEP 788 thread-state API on every CPython (3.8+).
 *
 * Include it after Python.h. Below 3.15 (PY_VERSION_HEX < 0x030F0000) it declares
 * PyInterpreterGuard, PyInterpreterView, PyThreadStateToken and the nine PEP 788 functions under
 * CPython's names, as static inline functions over gilgate's exports (libgilgate, linked ahead of
 * libpython); from 3.15 on it adds nothing and CPython's own functions are used, so moving to
 * 3.15-only code later is deleting this include. No gilgate symbol takes a CPython name.
 *
 *   PyInterpreterGuard *PyInterpreterGuard_FromCurrent(void);      attached; NULL + exception
 *   PyInterpreterGuard *PyInterpreterGuard_FromView(PyInterpreterView *);          NULL, none
 *   void                PyInterpreterGuard_Close(PyInterpreterGuard *);
 *   PyInterpreterView  *PyInterpreterView_FromCurrent(void);       attached
 *   PyInterpreterView  *PyInterpreterView_FromMain(void);          no thread state needed
 *   void                PyInterpreterView_Close(PyInterpreterView *);
 *   PyThreadStateToken *PyThreadState_Ensure(PyInterpreterGuard *);        NULL: thread intact
 *   PyThreadStateToken *PyThreadState_EnsureFromView(PyInterpreterView *); NULL: thread intact
 *   void                PyThreadState_Release(PyThreadStateToken *);
 *
 * Semantics are 3.15's; where gilgate's differ on 3.8-3.14 (the drain's bound on the wait for
 * open guards, subinterpreters, nesting across interpreters): docs/versions.md, "PEP 788 on
 * every CPython". C99/C11, C++11/17 (also -fno-exceptions -fno-rtti). */
#ifndef GILGATE_PEP788_H
#define GILGATE_PEP788_H

#ifndef PY_VERSION_HEX
#error "gilgate_pep788.h: include Python.h first"
#endif

#if PY_VERSION_HEX < 0x030F0000

#include "gilgate.h"

#if defined(__GNUC__) || defined(__clang__)
#define GILGATE_PEP788_INLINE static inline __attribute__((unused))
#else
#define GILGATE_PEP788_INLINE static inline
#endif

typedef struct gilgate_interpreter_guard PyInterpreterGuard;
typedef struct gilgate_interpreter_view PyInterpreterView;
typedef void PyThreadStateToken;

GILGATE_PEP788_INLINE PyInterpreterGuard *PyInterpreterGuard_FromCurrent(void) {
    return gilgate_interpreter_guard_from_current();
}
GILGATE_PEP788_INLINE void PyInterpreterGuard_Close(PyInterpreterGuard *guard) {
    gilgate_interpreter_guard_close(guard);
}
GILGATE_PEP788_INLINE PyInterpreterGuard *PyInterpreterGuard_FromView(PyInterpreterView *view) {
    return gilgate_interpreter_guard_from_view(view);
}
GILGATE_PEP788_INLINE PyInterpreterView *PyInterpreterView_FromCurrent(void) {
    return gilgate_interpreter_view_from_current();
}
GILGATE_PEP788_INLINE void PyInterpreterView_Close(PyInterpreterView *view) {
    gilgate_interpreter_view_close(view);
}
GILGATE_PEP788_INLINE PyInterpreterView *PyInterpreterView_FromMain(void) {
    return gilgate_interpreter_view_from_main();
}
GILGATE_PEP788_INLINE PyThreadStateToken *PyThreadState_Ensure(PyInterpreterGuard *guard) {
    return gilgate_thread_state_ensure(guard);
}
GILGATE_PEP788_INLINE PyThreadStateToken *PyThreadState_EnsureFromView(PyInterpreterView *view) {
    return gilgate_thread_state_ensure_from_view(view);
}
GILGATE_PEP788_INLINE void PyThreadState_Release(PyThreadStateToken *token) {
    gilgate_thread_state_release(token);
}

#endif /* PY_VERSION_HEX < 0x030F0000 */

#endif /* GILGATE_PEP788_H */
