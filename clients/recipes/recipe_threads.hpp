// The recipes' threads (docs/recipes.md), shared by pybind11/gg_recipe_pyb.cpp and
// nanobind/gg_recipe_nb.cpp (and the scikit-build-core build of the former): everything but the
// binding library's own names. The including file defines, before including it:
//   recipe_object  the library's object type (py::object, nb::object)
//   recipe_error   the exception a failed Python call throws (py::error_already_set,
//                  nb::python_error), which has discard_as_unraisable(const char *)
//   GG_RECIPE_NAME the module's name, a string literal
// and then defines the module: start(n, callback) and wait_ready(n) below.
//
// start(n, callback): 2n threads of the module's own, each looping until gilgate says no:
//   a: lock the host mutex; gilgate::gil (was: the library's gil_scoped_acquire); callback; unlock.
//   b: gilgate::gil; callback; gilgate::allow_threads while locking the host mutex (was: the
//      library's gil_scoped_release), reacquire() (fallible); callback; unlock.
// wait_ready(n): called by Python's main thread; blocks with the library's gil_scoped_release
//   (right on a thread Python owns) until n workers made a call.
// A C atexit handler (runs after Py_FinalizeEx) waits for the workers, takes the host mutex,
// prints RESULT started=N finished=N vanished=N ok=N finalizing=N notinit=N other=N and _exits 0
// only if every worker ended with FINALIZING or NOT_INITIALIZED and none vanished.
#pragma once

#include <gilgate.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace {
std::mutex host;
std::atomic<int> started{0}, finished{0}, ready{0}, fin{0}, notinit{0}, other{0};
std::atomic<long> ok{0};
recipe_object *callback = nullptr; // never destroyed: the threads outlive the interpreter

void end(gilgate_status st) {
    if (st == GILGATE_ERR_FINALIZING) fin++;
    else if (st == GILGATE_ERR_NOT_INITIALIZED) notinit++;
    else other++;
    finished++;
}

void call() { // GIL held
    try {
        (*callback)();
        ok++;
    } catch (recipe_error &e) {
        e.discard_as_unraisable(GG_RECIPE_NAME " callback");
    }
}

void worker_a() {
    bool first = true;
    for (;;) {
        std::lock_guard<std::mutex> lk(host);
        gilgate::gil g; // was: py::gil_scoped_acquire / nb::gil_scoped_acquire g;
        if (!g) {
            end(g.status()); // no GIL held, nothing to release
            return;
        }
        call();
        if (first) { first = false; ready++; }
    }
}

void worker_b() {
    bool first = true;
    for (;;) {
        gilgate::gil g;
        if (!g) {
            end(g.status());
            return;
        }
        call();
        gilgate::allow_threads nogil; // was: py::gil_scoped_release / nb::gil_scoped_release nogil;
        std::unique_lock<std::mutex> lk(host);
        if (gilgate_status st = nogil.reacquire()) {
            end(st); // finalizing: the GIL is not held; g's release is skipped by gilgate
            return;
        }
        call(); // GIL and host mutex held
        if (first) { first = false; ready++; }
    }
}

void report() {
    for (int i = 0; i < 1000 && finished.load() < started.load(); i++) usleep(10000);
    { std::lock_guard<std::mutex> lk(host); }
    int vanished = started.load() - finished.load();
    std::printf("RESULT started=%d finished=%d vanished=%d ok=%ld finalizing=%d notinit=%d other=%d\n",
                started.load(), finished.load(), vanished, ok.load(), fin.load(), notinit.load(), other.load());
    std::fflush(stdout);
    _exit(vanished || other.load() || ok.load() == 0 || fin.load() + notinit.load() != started.load() ? 3 : 0);
}
} // namespace

namespace {
// The body of start(n, cb) once the callback is kept (`callback = new recipe_object(cb)`).
void start_threads(int n) {
    std::atexit(report);
    for (int i = 0; i < n; i++) {
        started += 2;
        std::thread(worker_a).detach();
        std::thread(worker_b).detach();
    }
}

// The body of wait_ready(n), called with the GIL released.
int wait_workers(int n) {
    for (int i = 0; i < 30000 && ready.load() < n; i++) usleep(1000);
    return ready.load();
}
} // namespace
