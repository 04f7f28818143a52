/* A kill (3.9-3.13) or park (3.14+) inside a thread's outermost fast entry, made deterministic:
 * the worker enters while the main thread holds the GIL, so it waits inside CPython's take_gil;
 * the main thread then finalizes with the drain disabled (the harness sets
 * GILGATE_DRAIN_TIMEOUT_MS=0), and CPython kills or parks the waiting worker inside the entry.
 * The worker's first entry and save (the Rust path: claims the slot, learns the state) come
 * first, so the measured entry is the thread's outermost fast entry.
 *
 *   entry_kill api-restore  gilgate_restore_thread must return GILGATE_ERR_FINALIZING with errno
 *   entry_kill api-ensure   (resp. gilgate_gilstate_ensure; pep788-ensure: PEP 788's
 *   entry_kill pep788-ensure ensure below 3.15, gilgate_thread_state_ensure on a main-interpreter
 *                           guard, must return NULL) and the caller's callee-saved
 *                           registers unchanged (x86-64, aarch64: ek_checked); the worker then
 *                           ends normally and is joined. Exit 0 = every check held.
 *   entry_kill dropin       PyGILState_Ensure (gilgate's export when linked ahead of libpython):
 *                           the policy applies; the harness runs it under `abort` (gilgate's
 *                           diagnostic naming PyGILState_Ensure) and the default `park` (the
 *                           worker parks; the main thread's pthread_join then waits for it, and
 *                           the watchdog names that wait); it checks the signal and the message.
 * Not for 3.8 (its waiters are killed only after they get the GIL, which finalization keeps). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "gilgate.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { API_RESTORE, API_ENSURE, DROPIN, PEP788_ENSURE };
static struct gilgate_interpreter_guard *guard788;
/* PEP 788's ensure as a status: NULL is the refusal (a kill inside it ends as the API's does). */
static int ensure788(struct gilgate_interpreter_guard *g) {
    void *tok = gilgate_thread_state_ensure(g);
    if (tok) gilgate_thread_state_release(tok);
    return tok ? GILGATE_OK : GILGATE_ERR_FINALIZING;
}

/* ek_checked(f, arg, &bad): f(arg) with every callee-saved register (x86-64: rbx rbp r12-r15;
 * aarch64: x19-x28, d8-d15, and x29 = its sp) holding a known value, and *bad = the bits that
 * differ after it returned: the kill label's return must give the caller back all of them (the
 * assembly entries take them from the unwinder's context, the C entries from the armed call). */
static unsigned long regs_bad = 1;
#if defined(__x86_64__) || defined(__aarch64__)
long ek_checked(void *f, void *arg, unsigned long *bad); /* f's whole return register */
__asm__(".text\n.p2align 4\n.globl ek_checked\n.hidden ek_checked\n.type ek_checked, %function\nek_checked:\n.cfi_startproc\n"
#if defined(__x86_64__)
#define EK_CS(r, v) "movabsq $" v ", %" r "\n"
#define EK_CK(r, v) "movabsq $" v ", %rsi\nxorq %" r ", %rsi\norq %rsi, %rcx\n"
#define EK_REGS(m) m("rbx", "0x1b1b1b1b1b1b1b1b") m("rbp", "0x2b2b2b2b2b2b2b2b") m("r12", "0x3c3c3c3c3c3c3c3c") \
    m("r13", "0x4d4d4d4d4d4d4d4d") m("r14", "0x5e5e5e5e5e5e5e5e") m("r15", "0x6f6f6f6f6f6f6f6f")
        "pushq %rbx\n.cfi_adjust_cfa_offset 8\npushq %rbp\n.cfi_adjust_cfa_offset 8\n"
        "pushq %r12\n.cfi_adjust_cfa_offset 8\npushq %r13\n.cfi_adjust_cfa_offset 8\n"
        "pushq %r14\n.cfi_adjust_cfa_offset 8\npushq %r15\n.cfi_adjust_cfa_offset 8\n"
        "pushq %rdx\n.cfi_adjust_cfa_offset 8\n"
        "movq %rdi, %rax\nmovq %rsi, %rdi\n"
        EK_REGS(EK_CS)
        "call *%rax\n"
        "xorl %ecx, %ecx\n"
        EK_REGS(EK_CK)
        "popq %rdx\nmovq %rcx, (%rdx)\n"
        "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbp\npopq %rbx\n"
        ".cfi_adjust_cfa_offset -56\nret\n"
#else
#define EK_CS(r, v) "mov x16, #" v "\nfmov " r ", x16\n"
#define EK_CK(r, v) "fmov x16, " r "\nmov x15, #" v "\neor x16, x16, x15\norr x17, x17, x16\n"
#define EK_X(m) m("x19", "0x1901") m("x20", "0x2002") m("x21", "0x2103") m("x22", "0x2204") m("x23", "0x2305") \
    m("x24", "0x2406") m("x25", "0x2507") m("x26", "0x2608") m("x27", "0x2709") m("x28", "0x280a")
#define EK_D(m) m("d8", "0x0801") m("d9", "0x0902") m("d10", "0x1003") m("d11", "0x1104") m("d12", "0x1205") \
    m("d13", "0x1306") m("d14", "0x1407") m("d15", "0x1508")
#define EK_XS(r, v) "mov " r ", #" v "\n"
#define EK_XK(r, v) "mov x15, #" v "\neor x16, " r ", x15\norr x17, x17, x16\n"
        "stp x29, x30, [sp, #-176]!\n.cfi_def_cfa_offset 176\n.cfi_offset x29, -176\n.cfi_offset x30, -168\n"
        "mov x29, sp\n"
        "stp x19, x20, [sp, #16]\nstp x21, x22, [sp, #32]\nstp x23, x24, [sp, #48]\n"
        "stp x25, x26, [sp, #64]\nstp x27, x28, [sp, #80]\nstp d8, d9, [sp, #96]\n"
        "stp d10, d11, [sp, #112]\nstp d12, d13, [sp, #128]\nstp d14, d15, [sp, #144]\n"
        "str x2, [sp, #160]\n"
        "mov x14, x0\nmov x0, x1\n"
        EK_X(EK_XS) EK_D(EK_CS)
        "blr x14\n"
        "mov x17, #0\n"
        EK_X(EK_XK) EK_D(EK_CK)
        "mov x16, sp\neor x16, x16, x29\norr x17, x17, x16\n"
        "ldr x2, [sp, #160]\nstr x17, [x2]\n"
        "ldp x19, x20, [sp, #16]\nldp x21, x22, [sp, #32]\nldp x23, x24, [sp, #48]\n"
        "ldp x25, x26, [sp, #64]\nldp x27, x28, [sp, #80]\nldp d8, d9, [sp, #96]\n"
        "ldp d10, d11, [sp, #112]\nldp d12, d13, [sp, #128]\nldp d14, d15, [sp, #144]\n"
        "ldp x29, x30, [sp], #176\n.cfi_def_cfa_offset 0\nret\n"
#endif
        ".cfi_endproc\n.size ek_checked, .-ek_checked\n");
#define CHECKED(f, a) ek_checked((void *)(f), (a), &regs_bad)
#else
#define CHECKED(f, a) (regs_bad = 0, (f)(a))
#endif
static int g_mode;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int warmed, go;
static volatile int entry_status = -1, errno_after = -1;
static volatile int entry_done;

/* _ek.done(): whether the worker's measured entry has returned, or (drop-in) the policy took the
 * worker instead: parked, it never returns (the __del__ below waits for it). */
static PyObject *ek_done(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    struct gilgate_stats s;
    int parked = g_mode == DROPIN && gilgate_stats(&s) == GILGATE_OK && s.policy_actions > 0;
    return PyBool_FromLong(__atomic_load_n(&entry_done, __ATOMIC_ACQUIRE) || parked);
}
static PyMethodDef ek_methods[] = {{"done", ek_done, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef ek_module = {PyModuleDef_HEAD_INIT, "_ek", NULL, -1, ek_methods};
static PyObject *ek_init(void) { return PyModule_Create(&ek_module); }

static void wait_for(int *flag) {
    pthread_mutex_lock(&mu);
    while (!*flag)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}
static void set(int *flag) {
    pthread_mutex_lock(&mu);
    *flag = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *worker(void *arg) {
    PyThreadState *ts = arg;
    int st = 0;
    /* Warm-up while the main thread has released the GIL: the first entry adopts the runtime,
     * the second caches the fast state; the measured third one is a fast entry. */
    for (int k = 0; k < 2; k++)
    if (g_mode == API_RESTORE) {
        if (gilgate_restore_thread(ts) != GILGATE_OK) { fprintf(stderr, "warm-up entry failed\n"); return NULL; }
        gilgate_save_thread();
    } else if (g_mode == API_ENSURE) {
        if (gilgate_gilstate_ensure(&st) != GILGATE_OK) { fprintf(stderr, "warm-up entry failed\n"); return NULL; }
        gilgate_gilstate_release(st);
    } else if (g_mode == PEP788_ENSURE) {
        if (ensure788(guard788) != GILGATE_OK) { fprintf(stderr, "warm-up entry failed\n"); return NULL; }
    } else {
        st = PyGILState_Ensure();
        PyGILState_Release(st);
    }
    set(&warmed);
    wait_for(&go);
    /* The main thread holds the GIL: this entry waits inside CPython until finalization kills
     * or parks it. */
    errno = 4242;
    if (g_mode == API_RESTORE)
        entry_status = CHECKED(gilgate_restore_thread, ts);
    else if (g_mode == API_ENSURE)
        entry_status = CHECKED(gilgate_gilstate_ensure, &st);
    else if (g_mode == PEP788_ENSURE) {
        void *tok = (void *)(intptr_t)CHECKED(gilgate_thread_state_ensure, guard788);
        entry_status = tok ? GILGATE_OK : GILGATE_ERR_FINALIZING;
        if (tok) { gilgate_thread_state_release(tok); entry_status = -2; } /* already handed back */
    } else {
        st = PyGILState_Ensure(); /* the policy ends the process before this returns */
        entry_status = GILGATE_OK;
    }
    errno_after = errno;
    __atomic_store_n(&entry_done, 1, __ATOMIC_RELEASE);
    if (entry_status == GILGATE_OK) { /* not expected: hand the GIL back so the test can end */
        if (g_mode == API_RESTORE) gilgate_save_thread();
        else if (g_mode == API_ENSURE) gilgate_gilstate_release(st);
        else PyGILState_Release(st);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: entry_kill api-restore|api-ensure|pep788-ensure|dropin|dropin-park\n"); return 2; }
    g_mode = !strcmp(argv[1], "api-restore") ? API_RESTORE : !strcmp(argv[1], "api-ensure") ? API_ENSURE
           : !strcmp(argv[1], "pep788-ensure") ? PEP788_ENSURE
           : !strcmp(argv[1], "dropin") || !strcmp(argv[1], "dropin-park") ? DROPIN : -1;
    if (g_mode < 0) { fprintf(stderr, "bad mode\n"); return 2; }
    PyImport_AppendInittab("_ek", ek_init);
    Py_InitializeEx(0);
    PyThreadState *ts = g_mode == API_RESTORE ? PyThreadState_New(PyInterpreterState_Main()) : NULL;
    if (g_mode == PEP788_ENSURE && !(guard788 = gilgate_interpreter_guard_from_current())) {
        fprintf(stderr, "no guard\n");
        return 2;
    }
    pthread_t th;
    /* The worker must meet finalization, not slip in before it: with a switch interval of
     * 1000 s the waiting worker never asks the main thread to drop the GIL, so nothing before
     * CPython's finalizing flag hands it over; then a __del__ run when modules are cleared (after
     * the flag) sleeps with the GIL released, and the worker takes it inside its entry and meets
     * the kill (3.9-3.13) or park (3.14+). Without that window a fast finalization can end before
     * the worker looks, and on 3.10/3.11 it then takes the GIL of a finalized runtime. Nothing
     * here depends on timing: the main thread finalizes only once the worker is inside its entry
     * (gilgate_stats: one more open region), and the __del__ gives the GIL up until the worker's entry
     * has returned (at most 30 s). */
    PyRun_SimpleString("import sys, time, _ek\n"
                       "sys.setswitchinterval(1000.0)\n"
                       "class Busy:\n"
                       "    def __del__(self, done=_ek.done, sleep=time.sleep):\n"
                       "        for _ in range(600):\n"
                       "            sleep(0.05)\n"
                       "            if done():\n"
                       "                break\n"
                       "busy = Busy()\n");
    PyThreadState *main_ts = PyEval_SaveThread();
    pthread_create(&th, NULL, worker, ts);
    wait_for(&warmed);
    PyEval_RestoreThread(main_ts);
    struct gilgate_stats before;
    uint64_t base = gilgate_stats(&before) == GILGATE_OK ? before.open_regions : 0; /* our own */
    set(&go);
    /* Wait (GIL held, so the worker cannot get past CPython's GIL wait) until the worker is inside
     * its entry: its region is open. The worker only needs the GIL once it is in there. */
    for (int i = 0; i < 30000; i++) {
        struct gilgate_stats s;
        if (gilgate_stats(&s) == GILGATE_OK && s.open_regions > base) break;
        struct timespec d = {0, 1000 * 1000};
        nanosleep(&d, NULL);
    }
    struct timespec d = {0, 20 * 1000 * 1000}; /* from the region's opening into take_gil's wait */
    nanosleep(&d, NULL);
    int fin = Py_FinalizeEx();
    pthread_join(th, NULL);
    if (guard788) gilgate_interpreter_guard_close(guard788);
    int ok = entry_status == GILGATE_ERR_FINALIZING && errno_after == 4242 && regs_bad == 0;
    printf("RESULT mode=%s finalize=%d entry=%s errno=%d callee-saved=%s %s\n", argv[1], fin,
           entry_status < 0 ? "none" : gilgate_status_str(entry_status), errno_after,
           regs_bad ? "CHANGED" : "kept", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
