/* gilgate.hpp: header-only C++ RAII layer over gilgate.h.
 *
 * - No exceptions, no RTTI, no allocation; every member is noexcept. C++11 and later.
 * - Builds with -fno-exceptions -fno-rtti; include before or after <Python.h>, any number of times.
 * - Errors are values: each guard exposes `explicit operator bool()` (true = this guard holds the
 *   GIL) and `status()` (the gilgate_status of its acquisition). A guard that failed holds nothing
 *   and releases nothing.
 *
 *   void call_into_python() {
 *       gilgate::gil g;                       // gilgate_gilstate_ensure
 *       if (!g) {                             // GILGATE_ERR_FINALIZING, ..._NOT_INITIALIZED, ...
 *           log(gilgate_status_str(g.status()));
 *           return;                           // no GIL held, nothing to release
 *       }
 *       ... Python C API calls ...
 *   }                                         // gilgate_gilstate_release
 *
 * Guards are bound to the thread that created them: never move one to, or destroy it on, another
 * thread. Like the C calls they wrap, nested guards must be destroyed in reverse order.
 */
#ifndef GILGATE_HPP
#define GILGATE_HPP

#if !defined(__cplusplus) || __cplusplus < 201103L
#error "gilgate.hpp needs C++11 or later; C code includes gilgate.h"
#endif

#include "gilgate.h"

#include <cstdlib>

/* [[nodiscard]] is C++17; older modes fall back to the GNU attribute, or to nothing. */
#if __cplusplus >= 201703L
#define GILGATE_CXX_NODISCARD [[nodiscard]]
#define GILGATE_CXX_NODISCARD_CLASS [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define GILGATE_CXX_NODISCARD __attribute__((warn_unused_result))
#define GILGATE_CXX_NODISCARD_CLASS
#else
#define GILGATE_CXX_NODISCARD
#define GILGATE_CXX_NODISCARD_CLASS
#endif

namespace gilgate {

namespace detail {
/* Status reported by a guard whose contents were moved to another guard. gilgate.h has no
 * dedicated "empty" code; GILGATE_ERR_INVALID_ARGUMENT is never returned by the entry calls the
 * guards make, so it cannot be mistaken for a real acquisition result. */
inline gilgate_status moved_from_status() noexcept { return GILGATE_ERR_INVALID_ARGUMENT; }
} // namespace detail

/* RAII over gilgate_gilstate_ensure / gilgate_gilstate_release: the fallible PyGILState_Ensure.
 * For threads Python did not create (and for code that may or may not hold the GIL already). */
class GILGATE_CXX_NODISCARD_CLASS gil {
public:
    gil() noexcept : state_(0), status_(gilgate_gilstate_ensure(&state_)), held_(status_ == GILGATE_OK) {}

    ~gil() { release(); }

    gil(gil &&other) noexcept : state_(other.state_), status_(other.status_), held_(other.held_) {
        other.held_ = false;
        other.status_ = detail::moved_from_status();
    }

    /* No copies; no move assignment either: it would release the target's GIL state while a
     * later-acquired one is still held (PyGILState_Release calls must nest). */
    gil(const gil &) = delete;
    gil &operator=(const gil &) = delete;
    gil &operator=(gil &&) = delete;

    /* True while this guard holds the GIL. */
    GILGATE_CXX_NODISCARD explicit operator bool() const noexcept { return held_; }

    /* The result of gilgate_gilstate_ensure: GILGATE_OK, or why nothing is held (see gilgate.h).
     * It stays GILGATE_OK after release(), when bool turns false. */
    GILGATE_CXX_NODISCARD gilgate_status status() const noexcept { return status_; }

    /* Release early (idempotent). Only what this guard acquired is released. */
    void release() noexcept {
        if (held_) {
            held_ = false;
            gilgate_gilstate_release(state_);
        }
    }

private:
    int state_;
    gilgate_status status_;
    bool held_;
};

/* RAII over gilgate_restore_thread(tstate) / gilgate_save_thread(), for hosts that own a
 * PyThreadState (`struct _ts *`, e.g. from PyThreadState_New). After a GILGATE_ERR_FINALIZING
 * status, do not use the thread state again (the runtime may already have freed it). */
class GILGATE_CXX_NODISCARD_CLASS thread_state {
public:
    explicit thread_state(struct _ts *tstate) noexcept
        : tstate_(tstate), status_(gilgate_restore_thread(tstate)), held_(status_ == GILGATE_OK) {}

    ~thread_state() { release(); }

    thread_state(thread_state &&other) noexcept
        : tstate_(other.tstate_), status_(other.status_), held_(other.held_) {
        other.held_ = false;
        other.status_ = detail::moved_from_status();
    }
    thread_state(const thread_state &) = delete;
    thread_state &operator=(const thread_state &) = delete;
    thread_state &operator=(thread_state &&) = delete;

    /* True while this guard holds the GIL with the thread state attached. */
    GILGATE_CXX_NODISCARD explicit operator bool() const noexcept { return held_; }
    /* The result of gilgate_restore_thread. */
    GILGATE_CXX_NODISCARD gilgate_status status() const noexcept { return status_; }
    /* The thread state passed to the constructor. */
    struct _ts *get() const noexcept { return tstate_; }

    /* Detach early (idempotent): gilgate_save_thread, only if this guard attached. */
    void release() noexcept {
        if (held_) {
            held_ = false;
            (void)gilgate_save_thread();
        }
    }

private:
    struct _ts *tstate_;
    gilgate_status status_;
    bool held_;
};

/* Py_BEGIN_ALLOW_THREADS / Py_END_ALLOW_THREADS with a fallible end. The caller must hold the GIL
 * when constructing it; the constructor releases it (gilgate_save_thread).
 *
 *   gilgate::allow_threads nogil;
 *   blocking_io();
 *   if (gilgate_status st = nogil.reacquire()) return st;   // no GIL: the runtime is finalizing
 *   ... Python C API calls ...
 *
 * Call reacquire() and handle its status. If the destructor has to re-acquire instead and cannot
 * (the interpreter is finalizing), it has no way to report that, so it applies gilgate's
 * configured policy (gilgate_apply_policy: park by default, see GILGATE_ON_FINALIZE) rather than
 * letting the code after the scope run without the GIL. */
class allow_threads {
public:
    allow_threads() noexcept : tstate_(gilgate_save_thread()), done_(false), result_(GILGATE_OK) {}

    ~allow_threads() {
        if (done_ || tstate_ == nullptr) return;
        if (gilgate_restore_thread(tstate_) != GILGATE_OK) {
            gilgate_apply_policy("gilgate::allow_threads::~allow_threads");
            std::abort(); /* not reached: no policy returns */
        }
    }

    allow_threads(const allow_threads &) = delete;
    allow_threads &operator=(const allow_threads &) = delete;
    allow_threads(allow_threads &&) = delete;
    allow_threads &operator=(allow_threads &&) = delete;

    /* True if the constructor released the GIL (false: there was no live runtime, or the
     * caller did not hold the GIL; then nothing is re-acquired). */
    bool released() const noexcept { return tstate_ != nullptr; }

    /* Re-acquire the GIL now. GILGATE_OK: the GIL is held again. Otherwise it is not held, and
     * must not be released. Calling it again returns the first result and does nothing else. If
     * the constructor released nothing: the runtime's status if it is not running, else
     * GILGATE_ERR_NULL_ARGUMENT (there was no thread state to restore). */
    GILGATE_CXX_NODISCARD gilgate_status reacquire() noexcept {
        if (!done_) {
            done_ = true;
            if (tstate_ != nullptr) {
                result_ = gilgate_restore_thread(tstate_);
            } else {
                gilgate_status rt = gilgate_runtime_status();
                result_ = rt != GILGATE_OK ? rt : GILGATE_ERR_NULL_ARGUMENT;
            }
        }
        return result_;
    }

private:
    struct _ts *tstate_;
    bool done_;
    gilgate_status result_;
};

} // namespace gilgate

#endif /* GILGATE_HPP */
