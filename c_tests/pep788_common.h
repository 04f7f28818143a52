/* Shared by the PEP 788 hosts (pep788_pool.c, pep788_guards.cpp, pep788_seed.c): written only
 * against CPython 3.15's API. Built for 3.15 against CPython alone, and for 3.8-3.14 with
 * gilgate_pep788.h + libgilgate linked ahead of libpython: the same source, unchanged. */
#ifndef PEP788_COMMON_H
#define PEP788_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "gilgate_pep788.h" /* adds nothing from 3.15 on */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define P788_UNUSED __attribute__((unused))

/* work(i): a little Python, sometimes releasing the GIL; the host checks every result. */
static const char WORK_SRC[] =
    "import time\n"
    "def work(i):\n"
    "    s = sum(range(i % 64))\n"
    "    if i % 7 == 0:\n"
    "        time.sleep(0)\n"
    "    return s\n";

P788_UNUSED static long work_expected(long i) { long n = i % 64; return n * (n - 1) / 2; }

/* The attached thread calls work(i); 1 if the result is right. */
P788_UNUSED static int call_work(PyObject *fn, long i) {
    PyObject *r = PyObject_CallFunction(fn, "l", i);
    if (!r) { PyErr_Print(); return 0; }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    return v == work_expected(i);
}

/* Runs WORK_SRC in __main__ and returns a new reference to work (attached thread). */
P788_UNUSED static PyObject *load_work(void) {
    if (PyRun_SimpleString(WORK_SRC) != 0) return NULL;
    PyObject *m = PyImport_AddModule("__main__"); /* borrowed */
    return m ? PyObject_GetAttrString(m, "work") : NULL;
}

P788_UNUSED static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

P788_UNUSED static void sleep_us(long us) {
    struct timespec ts;
    ts.tv_sec = us / 1000000; ts.tv_nsec = (us % 1000000) * 1000;
    nanosleep(&ts, NULL);
}
#endif
