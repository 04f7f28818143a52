/* A `python` linked against the shared libpython: what a preload covers, for CPythons whose own
 * executable is statically linked (Debian's), so that tests can run Python programs under
 * gilgate there too. */
#include <Python.h>
int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }
