// Recipe (docs/recipes.md): a pybind11 extension module with its own threads that call into
// Python through gilgate.hpp instead of py::gil_scoped_acquire, and pybind11's own guard
// (py::gil_scoped_release) kept where Python's threads call the module. Built with CMake
// (find_package(gilgate CONFIG)) and with pkg-config, and run through finalization by
// harness/tests/recipes.rs. The threads are ../recipe_threads.hpp (the same for nanobind).
#include <pybind11/pybind11.h>

namespace py = pybind11;
using recipe_object = py::object;
using recipe_error = py::error_already_set;
#define GG_RECIPE_NAME "gg_recipe_pyb"
#include "../recipe_threads.hpp"

PYBIND11_MODULE(gg_recipe_pyb, m) {
    m.def("start", [](int n, py::object cb) {
        callback = new py::object(std::move(cb)); // never destroyed: the threads outlive the interpreter
        start_threads(n);
    });
    m.def("wait_ready", [](int n) {
        py::gil_scoped_release nogil; // a Python thread: pybind11's guard is the right tool here
        return wait_workers(n);
    });
}
