/* layout_probe.c: the offsets gilgate reads through a thread state (src/cpython.rs
 * frame_offsets, interp_is_live), from this CPython's own headers. Built by the harness for
 * 3.13+ (release and Py_DEBUG builds), which compares them with gilgate's table: a Py_DEBUG
 * build that laid out struct _ts differently would be read wrongly. Prints one line:
 *   LAYOUT interp=N current_frame=N frame_previous=N debug=0|1 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_frame.h"
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe_structs.h"
#endif

int main(void) {
#ifdef Py_DEBUG
    int debug = 1;
#else
    int debug = 0;
#endif
    printf("LAYOUT interp=%zu current_frame=%zu frame_previous=%zu debug=%d\n",
           offsetof(PyThreadState, interp), offsetof(PyThreadState, current_frame),
           offsetof(_PyInterpreterFrame, previous), debug);
    return 0;
}
