# gilgate_pep788.pxd: CPython 3.15's PEP 788 API for Cython, on every CPython (3.8+).
#
#   from gilgate_pep788 cimport PyThreadState_EnsureFromView, PyThreadState_Release, ...
#
# The names are CPython's. Cython includes Python.h first, then gilgate_pep788.h: below 3.15
# that header maps them onto libgilgate's exports (link the module with -lgilgate, or load
# libgilgate.so another way); from 3.15 on it adds nothing and CPython's own functions are
# used. Put the directory holding this file, gilgate_pep788.h and gilgate.h on Cython's and the
# C compiler's include paths. Semantics and the differences below 3.15: docs/versions.md
# ("PEP 788 on every CPython"). Every function is nogil: call them from C threads.
#
#   cdef void callback(PyInterpreterView *view) noexcept nogil:
#       cdef PyThreadStateToken *t = PyThreadState_EnsureFromView(view)
#       if t == NULL:
#           return              # the interpreter is finalizing or gone: the thread is intact
#       run_python()            # a `noexcept with gil` function: nested, cannot block or fail
#       PyThreadState_Release(t)

cdef extern from "gilgate_pep788.h" nogil:
    ctypedef struct PyInterpreterGuard:
        pass
    ctypedef struct PyInterpreterView:
        pass
    ctypedef void PyThreadStateToken

    # Caller attached; NULL with an exception set once finalization has begun.
    PyInterpreterGuard *PyInterpreterGuard_FromCurrent()
    # No thread state needed; NULL (no exception) when the interpreter is gone or finalizing.
    PyInterpreterGuard *PyInterpreterGuard_FromView(PyInterpreterView *view)
    void PyInterpreterGuard_Close(PyInterpreterGuard *guard)

    PyInterpreterView *PyInterpreterView_FromCurrent()    # caller attached
    PyInterpreterView *PyInterpreterView_FromMain()       # no thread state needed
    void PyInterpreterView_Close(PyInterpreterView *view)

    # NULL: nothing attached, the thread as it was; else pass the token to PyThreadState_Release.
    PyThreadStateToken *PyThreadState_Ensure(PyInterpreterGuard *guard)
    PyThreadStateToken *PyThreadState_EnsureFromView(PyInterpreterView *view)
    void PyThreadState_Release(PyThreadStateToken *token)
