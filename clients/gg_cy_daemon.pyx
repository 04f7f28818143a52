# cython: language_level=3
# distutils: language = c++
# Cython module compiled as C++ (cython --cplus, g++), for the real-client suite's `daemon`
# variant (clients/README.md): Python's own daemon threads (threading.Thread(daemon=True)) call
# blocking(ms) in a loop while the main thread returns.
#
# blocking(ms): a C++ object with a destructor (GgRaii) lives across a `with nogil:` block
#   (PyEval_SaveThread ... PyEval_RestoreThread) that calls C++ code, gg_block_raii(), which
#   blocks for ms with another GgRaii alive inside it. When CPython 3.8-3.13 end the thread with
#   pthread_exit in the restore at the end of the block, the forced unwind runs the outer
#   GgRaii's destructor in this function's C++ frame.
# raii_counts(): (constructed, destroyed) GgRaii objects.

cdef extern from *:
    """
    #include <atomic>
    #include <chrono>
    #include <thread>
    static std::atomic<long> gg_raii_made{0}, gg_raii_gone{0};
    struct GgRaii {
        GgRaii() { gg_raii_made.fetch_add(1, std::memory_order_relaxed); }
        ~GgRaii() { gg_raii_gone.fetch_add(1, std::memory_order_relaxed); }
        GgRaii(const GgRaii &) = delete;
        GgRaii &operator=(const GgRaii &) = delete;
    };
    static void gg_block_raii(int ms) {
        GgRaii inner;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    static long gg_raii_made_n() { return gg_raii_made.load(std::memory_order_relaxed); }
    static long gg_raii_gone_n() { return gg_raii_gone.load(std::memory_order_relaxed); }
    """
    cdef cppclass GgRaii:
        GgRaii() nogil
    void gg_block_raii(int ms) nogil
    long gg_raii_made_n() nogil
    long gg_raii_gone_n() nogil


def blocking(int ms):
    cdef GgRaii guard  # constructed on entry, destroyed on every way out of this C++ frame
    with nogil:
        gg_block_raii(ms)


def raii_counts():
    return (gg_raii_made_n(), gg_raii_gone_n())
