# gilgate.pxd: Cython declarations of gilgate's C API (include/gilgate.h), installed beside it.
#
#   from gilgate cimport gilgate_gilstate_ensure, gilgate_gilstate_release, GILGATE_OK
#
# Put the directory holding gilgate.pxd and gilgate.h on Cython's include path (`cython -I`,
# `include_path=` in cythonize) and on the C compiler's (`-I`), and link the module with
# `-lgilgate` (or load libgilgate.so another way: LD_PRELOAD). Every function is nogil and
# noexcept: call them from C threads without the GIL, e.g. in a `cdef ... noexcept nogil`
# callback. Take the GIL through gilgate first, then run Python code in a `with gil` function or
# block: Cython's own acquisition is then nested (the thread already holds the GIL), so it can
# neither block nor be killed; the fallible part was gilgate's.
#
#   cdef void call_into_python() noexcept with gil:
#       ...Python code...
#
#   cdef int from_a_c_thread() noexcept nogil:
#       cdef int st
#       cdef gilgate_status rc = gilgate_gilstate_ensure(&st)
#       if rc != GILGATE_OK:
#           return rc           # finalizing, not initialized, ...: the thread holds nothing
#       call_into_python()
#       gilgate_gilstate_release(st)
#       return 0
#
# A test builds a real module with it and runs it through finalization (clients/gg_cy_gilgate.pyx,
# harness/tests/cython_gilgate.rs).

from libc.stdint cimport uint64_t
from cpython.pystate cimport PyThreadState

cdef extern from "gilgate.h" nogil:
    # 0 is success; codes are never renumbered.
    enum gilgate_status:
        GILGATE_OK
        GILGATE_ERR_FINALIZING          # the interpreter is finalizing (or gilgate is draining)
        GILGATE_ERR_NOT_INITIALIZED     # before Py_Initialize, or after Py_FinalizeEx
        GILGATE_ERR_NO_PYTHON           # no CPython in this process
        GILGATE_ERR_NULL_ARGUMENT
        GILGATE_ERR_INTERNAL
        GILGATE_ERR_INVALID_ARGUMENT

    enum gilgate_policy:
        GILGATE_POLICY_ABORT
        GILGATE_POLICY_HANG
        GILGATE_POLICY_EXIT
        GILGATE_POLICY_PARK

    struct gilgate_stats:
        uint64_t gated_entries
        uint64_t refused_finalizing
        uint64_t refused_not_initialized
        uint64_t refused_no_python
        uint64_t kills_intercepted
        uint64_t hangs_intercepted
        uint64_t drains
        uint64_t drain_timeouts
        uint64_t drain_last_ns
        uint64_t drain_max_ns
        uint64_t policy_actions
        uint64_t threads_registered
        uint64_t open_regions

    # Fallible entries: GILGATE_OK with the GIL held, or an error with the thread intact.
    gilgate_status gilgate_restore_thread(PyThreadState *tstate)   # PyEval_RestoreThread
    gilgate_status gilgate_acquire_thread(PyThreadState *tstate)   # PyEval_AcquireThread
    PyThreadState *gilgate_save_thread()                           # PyEval_SaveThread
    void gilgate_release_thread(PyThreadState *tstate)             # PyEval_ReleaseThread
    gilgate_status gilgate_gilstate_ensure(int *state_out)         # PyGILState_Ensure
    void gilgate_gilstate_release(int state)                       # PyGILState_Release
    gilgate_status gilgate_finalize(int *py_result_out)            # Py_FinalizeEx, after the drain
    gilgate_status gilgate_runtime_status()                        # advisory
    const char *gilgate_status_str(gilgate_status status)          # static, never NULL
    const char *gilgate_version()
    void gilgate_set_drain_timeout_ms(uint64_t ms)
    gilgate_status gilgate_set_policy(int policy)
    gilgate_status gilgate_stats(gilgate_stats *out)
    void gilgate_apply_policy(const char *what)                    # does not return
