// Recipe (docs/recipes.md): a nanobind extension module with its own threads that call into
// Python through gilgate.hpp instead of nb::gil_scoped_acquire, and nanobind's own guard
// (nb::gil_scoped_release) kept where Python's threads call the module. Built with CMake
// (find_package(gilgate CONFIG)), and run through finalization by
// harness/tests/recipes.rs. The threads are ../recipe_threads.hpp (the same for pybind11).
#include <nanobind/nanobind.h>

namespace nb = nanobind;
using recipe_object = nb::object;
using recipe_error = nb::python_error;
#define GG_RECIPE_NAME "gg_recipe_nb"
#include "../recipe_threads.hpp"

NB_MODULE(gg_recipe_nb, m) {
    m.def("start", [](int n, nb::object cb) {
        callback = new nb::object(std::move(cb)); // never destroyed: the threads outlive the interpreter
        start_threads(n);
    });
    m.def("wait_ready", [](int n) {
        nb::gil_scoped_release nogil; // a Python thread: nanobind's guard is the right tool here
        return wait_workers(n);
    });
}
