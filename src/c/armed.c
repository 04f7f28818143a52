/* The only C in gilgate: a setjmp cannot be called soundly from Rust (it returns twice), Rust in a
 * cdylib only gets general-dynamic TLS (a __tls_get_addr call per access), and the entry hot path
 * needs initial-exec TLS and no frame it does not need. So the fast paths of the fallible API
 * (gg_api_*) and of the drop-in exports (gg_drop_*) live here, and everything else (first use of
 * a thread, nesting, refusals, kill bookkeeping, drain) is Rust, reached through gg_rust.
 *
 * If CPython decides to kill a thread inside a gated entry's call into it (pthread_exit on
 * 3.8-3.13, pause() forever on 3.14+), gilgate's interposed pthread_exit/pause call gg_kill_hook(),
 * which returns the thread to that entry, and the entry returns an error (or applies the policy)
 * instead. Two ways back: the Rust paths arm a jump buffer around the call (gg_arm_call); the
 * x86-64 fast entries arm nothing and are found by a stack walk (gg_kill_hook, at the end).
 * Frames skipped either way are CPython's own (take_gil, PyEval_RestoreThread, ...) and the
 * interposer's Rust frame, none of which own anything that needs unwinding at that point.
 *
 * Memory ordering of the entry (the Dekker pair with the drain) is argued in gate.rs; this file
 * implements the same sequence: depth store, barrier A, state load.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unwind.h>

#define GG_TLS __thread __attribute__((tls_model("initial-exec")))
#define GG_API __attribute__((visibility("hidden")))

/* The armed call. gg_arm_call(arg, f) calls f(arg) with this thread's jump buffer armed and
 * returns {f's return value, 0}; if CPython kills or parks the thread inside f, the interposers
 * call gg_kill_hook(kind), which makes that same gg_arm_call return {?, kind} instead (kind > 0).
 * Returned in rax:rdx, so the value of PyGILState_Ensure comes back without a memory round trip.
 * Not reentrant: callers check gg_jb.armed first (an armed call only runs inside a region, and
 * the fast paths are outermost entries, so they never see it set).
 * Callers restore errno on the kill path (CPython's kill leaves whatever its waits set). */
struct gg_ret {
    intptr_t value;
    intptr_t kill;
};
struct gg_jb {
    void *reg[8]; /* x86-64: rbx rbp r12 r13 r14 r15, rsp after return, return address */
    int armed;
};
static GG_TLS struct gg_jb gg_jb __attribute__((used));
_Static_assert(offsetof(struct gg_jb, armed) == 64, "asm offsets");

#if defined(__x86_64__)
/* Saves the callee-saved registers, the stack pointer the caller will have after the return and
 * the return address: all that the caller may rely on across a call (SysV). The jump back
 * restores them and "returns" from gg_arm_call with rdx = kind. No libc call, no signal mask
 * (kills never run in a signal handler), no frame of its own beyond the alignment slot. */
struct gg_ret gg_arm_call(void *arg, void *f) GG_API;
__attribute__((noreturn)) void gg_jb_jump(int kind) GG_API;
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl gg_arm_call\n"
    "  .hidden gg_arm_call\n"
    "  .type gg_arm_call, @function\n"
    "gg_arm_call:\n"
    "  .cfi_startproc\n"
    "  movq gg_jb@gottpoff(%rip), %rax\n"
    "  addq %fs:0, %rax\n"
    "  movq %rbx, 0(%rax)\n"
    "  movq %rbp, 8(%rax)\n"
    "  movq %r12, 16(%rax)\n"
    "  movq %r13, 24(%rax)\n"
    "  movq %r14, 32(%rax)\n"
    "  movq %r15, 40(%rax)\n"
    "  leaq 8(%rsp), %rcx\n"
    "  movq %rcx, 48(%rax)\n"
    "  movq (%rsp), %rcx\n"
    "  movq %rcx, 56(%rax)\n"
    "  movl $1, 64(%rax)\n"
    "  subq $8, %rsp\n"
    "  .cfi_adjust_cfa_offset 8\n"
    "  call *%rsi\n"
    "  addq $8, %rsp\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  movq gg_jb@gottpoff(%rip), %rcx\n"
    "  movl $0, %fs:64(%rcx)\n"
    "  xorl %edx, %edx\n"
    "  ret\n"
    "  .cfi_endproc\n"
    "  .size gg_arm_call, .-gg_arm_call\n"
    "\n"
    "  .p2align 4\n"
    "  .globl gg_jb_jump\n"
    "  .hidden gg_jb_jump\n"
    "  .type gg_jb_jump, @function\n"
    "gg_jb_jump:\n" /* only called while armed (gg_kill_hook checks) */
    "  .cfi_startproc\n"
    "  movq gg_jb@gottpoff(%rip), %rax\n"
    "  addq %fs:0, %rax\n"
    "  movl $0, 64(%rax)\n"
    "  movslq %edi, %rdx\n"
    "  movl $1, %ecx\n"
    "  testq %rdx, %rdx\n"
    "  cmovle %rcx, %rdx\n"
    "  movq 0(%rax), %rbx\n"
    "  movq 8(%rax), %rbp\n"
    "  movq 16(%rax), %r12\n"
    "  movq 24(%rax), %r13\n"
    "  movq 32(%rax), %r14\n"
    "  movq 40(%rax), %r15\n"
    "  movq 48(%rax), %rsp\n"
    "  jmp *56(%rax)\n"
    "  .cfi_endproc\n"
    "  .size gg_jb_jump, .-gg_jb_jump\n");
#else
/* Portable variant: __builtin_setjmp saves the frame pointer, stack pointer and resume address;
 * the compiler makes this function save every callee-saved register. */
static GG_TLS void *gg_buf[5];
static GG_TLS volatile intptr_t gg_kill_kind;
GG_API __attribute__((noinline)) struct gg_ret gg_arm_call(void *arg, void *f) {
    struct gg_ret r = {0, 0};
    if (__builtin_setjmp(gg_buf) != 0) {
        r.kill = gg_kill_kind;
        return r;
    }
    *(volatile int *)&gg_jb.armed = 1;
    r.value = ((intptr_t(*)(void *))f)(arg);
    *(volatile int *)&gg_jb.armed = 0;
    return r;
}
GG_API int gg_kill_hook(int kind) {
    if (!gg_jb.armed)
        return 0;
    gg_jb.armed = 0;
    gg_kill_kind = kind > 0 ? kind : 1;
    __builtin_longjmp(gg_buf, 1);
}
#endif

/* The armed calls of the Rust paths (api.rs slow paths, dropin.rs): 0, or the kill kind. */
GG_API int gg_armed_call_p(void (*f)(void *), void *arg) {
    if (gg_jb.armed) { /* nested arming would overwrite the outer buffer: never expected */
        f(arg);
        return 0;
    }
    int e = errno;
    struct gg_ret r = gg_arm_call(arg, (void *)f);
    if (r.kill)
        errno = e;
    return (int)r.kill;
}
GG_API int gg_armed_call_ri(int (*f)(void), int *out) {
    if (gg_jb.armed) {
        *out = f();
        return 0;
    }
    int e = errno;
    struct gg_ret r = gg_arm_call(NULL, (void *)f);
    if (!r.kill)
        *out = (int)r.value;
    else
        errno = e;
    return (int)r.kill;
}
GG_API int gg_armed_call_v(void (*f)(void)) {
    if (gg_jb.armed) {
        f();
        return 0;
    }
    int e = errno;
    struct gg_ret r = gg_arm_call(NULL, (void *)f);
    if (r.kill)
        errno = e;
    return (int)r.kill;
}

/* What started this thread, decided once by origin.rs: 0 unknown, 1 host, 2 CPython.
 * Initial-exec TLS: readable from interposed functions without allocation or locks. */
static GG_TLS int gg_kind __attribute__((used));
GG_API int gg_thread_kind(void) { return gg_kind; }
GG_API void gg_set_thread_kind(int k) { gg_kind = k; }



/* ---- The gate's shared data (gate.rs mirrors these layouts; both sides assert them) ---------- */

/* One host thread's slot: gate.rs `Slot` (#[repr(C)]). Only the owner thread writes depth,
 * entries, open_sp; the drain reads depth. */
struct slot {
    _Atomic uint32_t depth;
    _Atomic uint32_t suspended;
    _Atomic uint64_t retired_gen;
    _Atomic uint64_t entries;
    _Atomic uintptr_t open_sp;
    _Atomic uint8_t in_use;
    _Atomic uint8_t detached;
    _Atomic uint64_t fast_state; /* see gate.rs: the state word this thread may enter fast in */
    int *errno_ptr;              /* the owner thread's errno (its address is fixed per thread) */
    int saved_errno;             /* errno at the armed call, restored when a kill is caught */
};
_Static_assert(offsetof(struct slot, depth) == 0, "Slot layout");
_Static_assert(offsetof(struct slot, suspended) == 4, "Slot layout");
_Static_assert(offsetof(struct slot, retired_gen) == 8, "Slot layout");
_Static_assert(offsetof(struct slot, entries) == 16, "Slot layout");
_Static_assert(offsetof(struct slot, open_sp) == 24, "Slot layout");
_Static_assert(offsetof(struct slot, in_use) == 32, "Slot layout");
_Static_assert(offsetof(struct slot, detached) == 33, "Slot layout");
_Static_assert(offsetof(struct slot, fast_state) == 40, "Slot layout");
_Static_assert(offsetof(struct slot, errno_ptr) == 48, "Slot layout");
_Static_assert(offsetof(struct slot, saved_errno) == 56, "Slot layout");
_Static_assert(sizeof(struct slot) == 64, "Slot layout");

/* This thread's gate slot (gate.rs), for the entry hot path. A thread without one points at
 * gg_no_slot instead of NULL: its depth (never 0, never 1) sends every fast path to Rust, so the
 * entries need no NULL test. No fast path writes it (each writes only after that depth test). */
static struct slot gg_no_slot = { .depth = UINT32_MAX };
static GG_TLS void *gg_slot __attribute__((used)) = &gg_no_slot;
static inline struct slot *gg_slot_or_null(void) {
    struct slot *sl = gg_slot;
    return sl == &gg_no_slot ? NULL : sl;
}
GG_API void *gg_slot_get(void) { return gg_slot_or_null(); }
GG_API void gg_slot_set(void *p) { gg_slot = p ? p : &gg_no_slot; }

/* Read-mostly words every entry reads, alone in a 128-byte block (two cache lines, which adjacent-
 * line prefetch pairs anyway): the state word (gate.rs STATE: state in the low 2 bits, generation
 * above), whether membarrier is in use, CPython's functions (NULL until a CPython is resolved:
 * the fast paths then defer to Rust), CPython's code range and main interpreter. */
struct gg_hot {
    _Atomic uint64_t state;
    _Atomic uint32_t fast_barrier; /* read by Rust only: fast_state is set only when it is 1 */
    uint32_t pad_;
    void *_Atomic py[8];
    _Atomic uintptr_t text_lo, text_hi; /* CPython's executable segments (origin.rs) */
    void *_Atomic main_interp;             /* this generation's main PyInterpreterState */
    char tail_pad_[24];                    /* nothing else in the block */
};
/* API_ENSURE/API_GILSTATE_RELEASE: the fallible API's gilstate pair, NULL where its Rust path
 * must run every time (PEP 788's tokens on 3.15+); the drop-in exports use ENSURE/GILSTATE_RELEASE. */
enum { GG_PY_RESTORE, GG_PY_ACQUIRE, GG_PY_ENSURE, GG_PY_SAVE, GG_PY_RELEASE_THREAD, GG_PY_GILSTATE_RELEASE,
       GG_PY_API_ENSURE, GG_PY_API_GILSTATE_RELEASE };
_Static_assert(sizeof(struct gg_hot) == 128, "gg_hot layout");
GG_API _Alignas(128) struct gg_hot gg_hot = { .state = 4 /* UNKNOWN, generation 1 */ };

enum { GG_OK = 0, GG_ERR_FINALIZING = 1, GG_ERR_NO_PYTHON = 3 }; /* status.rs numbers */
enum { GG_W_RESTORE = 0, GG_W_ACQUIRE = 1, GG_W_ENSURE = 2 };

/* The Rust side (api.rs): full paths, and the bookkeeping of an entry CPython tried to kill.
 * Registered by the library constructor; the stubs answer before that (no CPython bound yet). */
struct gg_rust {
    int (*restore)(void *tstate);
    int (*acquire)(void *tstate);
    int (*ensure)(int *out);
    void *(*save)(void);
    void (*release_thread)(void *tstate);
    void (*gilstate_release)(int st);
    int (*killed)(struct slot *slot, int kind, int which);
    /* drop-in exports (dropin.rs): the full paths, and a kill in a fast entry (applies the
     * policy: does not return, or ends the thread through the C-unwind frames). */
    void (*drop_restore)(void *tstate, uintptr_t ra, uintptr_t sp);
    void (*drop_acquire)(void *tstate, uintptr_t ra, uintptr_t sp);
    int (*drop_ensure)(uintptr_t ra, uintptr_t sp);
    void *(*drop_save)(uintptr_t ra, uintptr_t sp);
    void (*drop_release_thread)(void *tstate, uintptr_t ra, uintptr_t sp);
    void (*drop_gilstate_release)(int st, uintptr_t ra, uintptr_t sp);
    void (*drop_killed)(struct slot *slot, int kind, int which);
};
static int stub_entry(void *p) { (void)p; return GG_ERR_NO_PYTHON; }
static int stub_ensure(int *p) { (void)p; return GG_ERR_NO_PYTHON; }
static void *stub_save(void) { return NULL; }
static void stub_release_thread(void *p) { (void)p; }
static void stub_gilstate_release(int st) { (void)st; }
static int stub_killed(struct slot *s, int k, int w) { (void)s; (void)k; (void)w; return GG_ERR_FINALIZING; }
/* Before the constructor registered the Rust side, the drop-in stubs cannot do better than abort:
 * no CPython is bound yet (a library constructor calling CPython before gilgate's ran). */
static void stub_drop_p(void *t, uintptr_t a, uintptr_t b) { (void)t; (void)a; (void)b; __builtin_trap(); }
static int stub_drop_ensure(uintptr_t a, uintptr_t b) { (void)a; (void)b; __builtin_trap(); }
static void *stub_drop_save(uintptr_t a, uintptr_t b) { (void)a; (void)b; __builtin_trap(); }
static void stub_drop_gs_release(int st, uintptr_t a, uintptr_t b) { (void)st; (void)a; (void)b; __builtin_trap(); }
static void stub_drop_killed(struct slot *s, int k, int w) { (void)s; (void)k; (void)w; __builtin_trap(); }
GG_API struct gg_rust gg_rust = { stub_entry, stub_entry, stub_ensure, stub_save, stub_release_thread,
                                  stub_gilstate_release, stub_killed, stub_drop_p, stub_drop_p,
                                  stub_drop_ensure, stub_drop_save, stub_drop_p, stub_drop_gs_release,
                                  stub_drop_killed };
GG_API void gg_set_rust(const struct gg_rust *r) { gg_rust = *r; }

#define RLX memory_order_relaxed
static inline void *gg_py(int i) { return atomic_load_explicit(&gg_hot.py[i], memory_order_relaxed); }
GG_API void gg_publish_py(int i, void *f) { atomic_store_explicit(&gg_hot.py[i], f, memory_order_release); }
GG_API void gg_publish_text(uintptr_t lo, uintptr_t hi) {
    atomic_store_explicit(&gg_hot.text_hi, hi, RLX);
    atomic_store_explicit(&gg_hot.text_lo, lo, memory_order_release);
}


/* The stack pointer, for the drop-in nesting heuristic (gate.rs Slot::open_sp). */
static inline uintptr_t gg_sp(void) {
#if defined(__x86_64__)
    uintptr_t sp;
    __asm__("movq %%rsp, %0" : "=r"(sp));
    return sp;
#else
    return (uintptr_t)__builtin_frame_address(0);
#endif
}

/* The outermost entry of a region, from a thread whose slot exists, when the state word equals
 * the slot's fast_state (RUNNING, adopted, this generation, thread neither retired nor detached,
 * membarrier in use: gate.rs sets it): open the region (open_sp = sp), make the armed call, count
 * it: GG_OK. A kill inside the call: the kill kind (> 0), region still open for Rust to undo.
 * Anything else leaves nothing behind and returns -1: Rust's full path.
 * Barrier A is a compiler fence: fast_state is only ever set when the drain uses membarrier.
 * No armed call can be in progress here: every armed call runs inside a region (depth >= 1). */
static inline __attribute__((always_inline)) int gg_fast_entry(struct slot *sl, void *f, void *arg,
                                                                int *value_out, uintptr_t sp,
                                                                int check_interp) {
    if (__builtin_expect(atomic_load_explicit(&sl->depth, RLX) != 0, 0))
        return -1;
    atomic_store_explicit(&sl->depth, 1, RLX);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(atomic_load_explicit(&gg_hot.state, memory_order_acquire)
                         != atomic_load_explicit(&sl->fast_state, RLX), 0)) {
        atomic_store_explicit(&sl->depth, 0, memory_order_release);
        return -1;
    }
    /* The fallible API validates its PyThreadState: one of the main interpreter passes here
     * (`interp` is the third pointer of struct _ts in every CPython 3.8-3.15); any other one is
     * checked by Rust against the runtime's live interpreters. Read only once the runtime is
     * known to be alive, so a stale pointer after finalization is never dereferenced here. */
    if (check_interp && ((void *const *)arg)[2] != atomic_load_explicit(&gg_hot.main_interp, RLX)) {
        atomic_store_explicit(&sl->depth, 0, memory_order_release);
        return -1;
    }
    atomic_store_explicit(&sl->open_sp, sp, RLX);
    sl->saved_errno = *sl->errno_ptr;
    struct gg_ret r = gg_arm_call(arg, f);
    if (__builtin_expect(r.kill != 0, 0)) {
        *sl->errno_ptr = sl->saved_errno;
        return (int)r.kill; /* the caller hands it to Rust (bookkeeping, error or policy) */
    }
    if (value_out)
        *value_out = (int)r.value;
    atomic_store_explicit(&sl->entries, atomic_load_explicit(&sl->entries, RLX) + 1, RLX);
    return GG_OK;
}

#if defined(__x86_64__)
/* The API entries, written out in assembly: gg_fast_entry with nothing armed. The entry saves no
 * registers for a kill: if CPython kills or parks the thread inside the call, gg_kill_hook finds
 * this frame with the unwinder (its return address gg_ret_*, its stack pointer from open_sp), takes the
 * caller's rbp and r12-r15 from the unwinder's context, rbx from the entry's own push, and
 * resumes at the entry's kill label gg_kill_* with rsp = open_sp - 8. So a kill costs a stack walk
 * and an entry costs no stores for it. Same sequence as gg_fast_entry otherwise (depth store,
 * then the state load: the membarrier pairing in gate.rs; x86 keeps the program order of these
 * plain moves apart from store->load, which membarrier covers).
 * Offsets are asserted below against struct slot, struct gg_hot and struct gg_rust.
 * Fast path: ts != NULL, slot, CPython function bound, depth 0, state == slot->fast_state,
 * ts->interp == main interpreter (restore/acquire only). Else the Rust path, by tail jump. */
#define GG_S(x) #x
#define GG_ENTRY_ASM(name, tag, pyoff, slowoff, which, is_ensure)                                    \
    "  .text\n  .p2align 4\n  .globl " name "\n  .hidden " name "\n  .type " name ", @function\n"     \
    name ":\n"                                                                                       \
    "  .cfi_startproc\n"                                                                             \
    "  movq gg_slot@gottpoff(%rip), %rax\n"                                                          \
    "  movq %fs:(%rax), %rcx\n"                                                                      \
    "  movq gg_hot+" GG_S(pyoff) "(%rip), %rsi\n"                                                    \
    "  testq %rdi, %rdi\n  jz 9f\n"                                                                  \
    GG_ENTRY_FTEST_##is_ensure                                                                       \
    "  cmpl $0, 0(%rcx)\n  jne 9f\n"               /* nested or busy slot: Rust */                   \
    "  movl $1, 0(%rcx)\n"                          /* depth = 1 (store, then ...) */                \
    "  movq gg_hot(%rip), %rax\n"                   /* ... the state load (barrier A) */             \
    "  cmpq 40(%rcx), %rax\n  jne 8f\n"             /* != fast_state */                              \
    GG_ENTRY_INTERP_##is_ensure                                                                      \
    "  movq %rsp, 24(%rcx)\n"                       /* open_sp = this frame's CFA - 8 */             \
    "  movq 48(%rcx), %rax\n  movl (%rax), %eax\n  movl %eax, 56(%rcx)\n" /* saved_errno */         \
    "  pushq %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                         \
    GG_ENTRY_PUSH_##is_ensure                                                                        \
    "  movq %rcx, %rbx\n"                                                                            \
    "  call *%rsi\n"                                                                                 \
    "  .globl gg_ret_" tag "\n  .hidden gg_ret_" tag "\n"                                            \
    "gg_ret_" tag ":\n"                                                                              \
    "  addq $1, 16(%rbx)\n"                         /* entries (owner-only counter) */               \
    GG_ENTRY_POP_##is_ensure                                                                         \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  xorl %eax, %eax\n  ret\n"                                                                     \
    "  .globl gg_kill_" tag "\n  .hidden gg_kill_" tag "\n"                                          \
    "gg_kill_" tag ":\n"                            /* rsp = open_sp - 8, edx = kind */              \
    "  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                                       \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  movq gg_slot@gottpoff(%rip), %rax\n  movq %fs:(%rax), %rdi\n"                                \
    "  movq 48(%rdi), %rax\n  movl 56(%rdi), %ecx\n  movl %ecx, (%rax)\n" /* errno back */          \
    "  movl %edx, %esi\n  movl $" GG_S(which) ", %edx\n"                                            \
    "  jmp *gg_rust+48(%rip)\n"                     /* killed(slot, kind, which) */                  \
    "8:\n"                                                                                           \
    "  movl $0, 0(%rcx)\n"                          /* depth back to 0 (release store) */            \
    "9:\n"                                                                                           \
    "  jmp *gg_rust+" GG_S(slowoff) "(%rip)\n"                                                      \
    "  .cfi_endproc\n  .size " name ", .-" name "\n"
/* restore/acquire: ts->interp (third pointer of struct _ts) must be the main interpreter. */
#define GG_ENTRY_INTERP_0 "  movq gg_hot+96(%rip), %rax\n  cmpq %rax, 16(%rdi)\n  jne 8f\n"
#define GG_ENTRY_PUSH_0 ""
/* restore/acquire: CPython's function is published before any slot can get a fast_state (the
 * depth/state tests fail until then); ensure's is NULL on the PEP 788 path, so it is tested. */
#define GG_ENTRY_FTEST_0 ""
#define GG_ENTRY_FTEST_1 "  testq %rsi, %rsi\n  jz 9f\n"
#define GG_ENTRY_POP_0 ""
/* ensure: rdi is `out`, kept on the stack (with an alignment slot) and written after the call. */
#define GG_ENTRY_INTERP_1 ""
#define GG_ENTRY_PUSH_1 "  pushq %rdi\n  .cfi_adjust_cfa_offset 8\n  subq $8, %rsp\n  .cfi_adjust_cfa_offset 8\n"
#define GG_ENTRY_POP_1 "  addq $8, %rsp\n  .cfi_adjust_cfa_offset -8\n  popq %rdi\n  .cfi_adjust_cfa_offset -8\n" \
                       "  movl %eax, (%rdi)\n"
/* pyoff = 16 + 8 * GG_PY_x; slowoff = offsetof(struct gg_rust, x) */
__asm__(GG_ENTRY_ASM("gg_api_restore_thread", "restore", 16, 0, 0, 0));
__asm__(GG_ENTRY_ASM("gg_api_acquire_thread", "acquire", 24, 8, 1, 0));
__asm__(GG_ENTRY_ASM("gg_api_gilstate_ensure", "ensure", 64, 16, 2, 1));
GG_API int gg_api_restore_thread(void *ts);
GG_API int gg_api_acquire_thread(void *ts);
GG_API int gg_api_gilstate_ensure(int *out);
extern const char gg_ret_restore[], gg_ret_acquire[], gg_ret_ensure[] GG_API;
extern const char gg_kill_restore[], gg_kill_acquire[], gg_kill_ensure[] GG_API;
_Static_assert(offsetof(struct gg_hot, py) + 8 * GG_PY_RESTORE == 16, "asm offsets");
_Static_assert(offsetof(struct gg_hot, py) + 8 * GG_PY_ACQUIRE == 24, "asm offsets");
_Static_assert(offsetof(struct gg_hot, py) + 8 * GG_PY_API_ENSURE == 64, "asm offsets");
_Static_assert(offsetof(struct gg_hot, main_interp) == 96, "asm offsets");
_Static_assert(offsetof(struct gg_rust, restore) == 0, "asm offsets");
_Static_assert(offsetof(struct gg_rust, acquire) == 8, "asm offsets");
_Static_assert(offsetof(struct gg_rust, ensure) == 16, "asm offsets");
_Static_assert(offsetof(struct gg_rust, killed) == 48, "asm offsets");
_Static_assert(GG_W_RESTORE == 0 && GG_W_ACQUIRE == 1 && GG_W_ENSURE == 2, "asm constants");

#else
GG_API int gg_api_restore_thread(void *ts) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_RESTORE);
    if (__builtin_expect(!sl || !f || !ts, 0))
        return gg_rust.restore(ts);
    int rc = gg_fast_entry(sl, f, ts, NULL, gg_sp(), 1);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.restore(ts) : gg_rust.killed(sl, rc, GG_W_RESTORE);
    return GG_OK;
}

GG_API int gg_api_acquire_thread(void *ts) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_ACQUIRE);
    if (__builtin_expect(!sl || !f || !ts, 0))
        return gg_rust.acquire(ts);
    int rc = gg_fast_entry(sl, f, ts, NULL, gg_sp(), 1);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.acquire(ts) : gg_rust.killed(sl, rc, GG_W_ACQUIRE);
    return GG_OK;
}

GG_API int gg_api_gilstate_ensure(int *out) {
    struct slot *sl = gg_slot_or_null();
    void *f = gg_py(GG_PY_API_ENSURE);
    if (__builtin_expect(!sl || !f || !out, 0))
        return gg_rust.ensure(out);
    /* *out is written only when PyGILState_Ensure returned. */
    int rc = gg_fast_entry(sl, f, NULL, out, gg_sp(), 0);
    if (__builtin_expect(rc != GG_OK, 0))
        return rc < 0 ? gg_rust.ensure(out) : gg_rust.killed(sl, rc, GG_W_ENSURE);
    return GG_OK;
}

#endif

/* Close the region after the real release returned (gate.rs `leave` at depth 1). `detached` is
 * already 0 here: gate.rs clears fast_state whenever it sets detached, and the fast release
 * needs state == fast_state. */
static inline void gg_leave_outermost(struct slot *sl) {
    atomic_store_explicit(&sl->suspended, 0, RLX);
    atomic_store_explicit(&sl->open_sp, 0, RLX);
    atomic_store_explicit(&sl->depth, 0, memory_order_release);
}
/* The same for a region whose detached flag is not known to be clear (drop-in saves). */
static inline void gg_leave_outermost_any(struct slot *sl) {
    atomic_store_explicit(&sl->detached, 0, RLX);
    gg_leave_outermost(sl);
}

/* Release side: fast only for the outermost region while the state word still equals the slot's
 * fast_state (so: not detached, runtime alive, gate not closed); everything else is Rust's.
 * sl is gg_slot itself: gg_no_slot fails the depth test. A matching fast_state also means
 * CPython's save/release functions are published (api.rs publishes before anyone can enter). */
static inline int gg_release_fast(struct slot *sl) {
    return atomic_load_explicit(&sl->depth, RLX) == 1
        && atomic_load_explicit(&gg_hot.state, memory_order_acquire)
               == atomic_load_explicit(&sl->fast_state, RLX);
}

GG_API void *gg_api_save_thread(void) {
    struct slot *sl = gg_slot;
    if (__builtin_expect(!gg_release_fast(sl), 0))
        return gg_rust.save();
    void *ts = ((void *(*)(void))gg_py(GG_PY_SAVE))();
    gg_leave_outermost(sl);
    return ts;
}

GG_API void gg_api_release_thread(void *ts) {
    struct slot *sl = gg_slot;
    if (__builtin_expect(!ts || !gg_release_fast(sl), 0)) {
        gg_rust.release_thread(ts);
        return;
    }
    ((void (*)(void *))gg_py(GG_PY_RELEASE_THREAD))(ts);
    gg_leave_outermost(sl);
}

GG_API void gg_api_gilstate_release(int st) {
    struct slot *sl = gg_slot;
    void (*f)(int) = (void (*)(int))gg_py(GG_PY_API_GILSTATE_RELEASE); /* NULL on PEP 788's path */
    if (__builtin_expect(!f || !gg_release_fast(sl), 0)) {
        gg_rust.gilstate_release(st);
        return;
    }
    f(st);
    gg_leave_outermost(sl);
}

/* ---- Drop-in exports (dropin.rs): CPython's own names --------------------------------------
 * Each export's trampoline passes the caller's return address and stack pointer. Calls from
 * CPython's own code go straight to CPython; a host thread's outermost entry and its matching
 * save take the fast path; everything else (first call on a thread, nesting, extension saves
 * inside a region, refusals, policy) is Rust's. */

#define GG_HOST 1    /* origin.rs HOST */
#define GG_CPYTHON 2 /* origin.rs CPYTHON: e.g. an extension's Py_END_ALLOW_THREADS on a Python thread */
#define GG_NESTED_STACK_BYTES 512 /* dropin.rs NESTED_STACK_BYTES */

static inline int gg_from_cpython(uintptr_t ra) {
    uintptr_t lo = atomic_load_explicit(&gg_hot.text_lo, memory_order_acquire);
    return ra - lo < atomic_load_explicit(&gg_hot.text_hi, RLX) - lo;
}

#if defined(__x86_64__)
/* The drop-in entries, in assembly like the API entries (same sequence as gg_drop_entry +
 * gg_fast_entry; kills found by gg_kill_hook's walk, resumed at gg_kill_drop_*, which hands the
 * kill to Rust's drop_killed: the policy). Arguments as the trampolines pass them: restore and
 * acquire (ts, ra, sp), ensure (ra, sp); sp is the caller's stack pointer after the return, i.e.
 * this frame's entry rsp + 8, and becomes open_sp. Calls from CPython's own code, NULL thread
 * states and CPython's threads go straight to CPython by tail jump; anything else Rust's. */
#define GG_DROP_ASM(name, tag, pyoff, slowoff, which, RA, SP, TSTEST)                                \
    "  .text\n  .p2align 4\n  .globl " name "\n  .hidden " name "\n  .type " name ", @function\n"     \
    name ":\n"                                                                                       \
    "  .cfi_startproc\n"                                                                             \
    "  movq gg_hot+" GG_S(pyoff) "(%rip), %rax\n"                                                    \
    "  testq %rax, %rax\n  jz 9f\n"                 /* CPython not resolved yet: Rust */             \
    "  movq gg_hot+80(%rip), %rcx\n"                /* from CPython's own code? */                   \
    "  movq " RA ", %r8\n  subq %rcx, %r8\n"                                                         \
    "  movq gg_hot+88(%rip), %r9\n  subq %rcx, %r9\n"                                                \
    "  cmpq %r9, %r8\n  jb 6f\n"                                                                     \
    TSTEST                                                                                           \
    "  movq gg_kind@gottpoff(%rip), %rcx\n  movl %fs:(%rcx), %ecx\n"                                \
    "  cmpl $1, %ecx\n  jne 5f\n"                   /* not a host thread */                          \
    "  movq gg_slot@gottpoff(%rip), %rcx\n  movq %fs:(%rcx), %rcx\n"                                \
    "  cmpl $0, 0(%rcx)\n  jne 9f\n"                                                                 \
    "  movl $1, 0(%rcx)\n"                                                                           \
    "  movq gg_hot(%rip), %r8\n"                                                                     \
    "  cmpq 40(%rcx), %r8\n  jne 8f\n"                                                               \
    "  movq " SP ", 24(%rcx)\n"                     /* open_sp */                                    \
    "  movq 48(%rcx), %r8\n  movl (%r8), %r8d\n  movl %r8d, 56(%rcx)\n" /* saved_errno */           \
    "  pushq %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                         \
    "  movq %rcx, %rbx\n"                                                                            \
    "  call *%rax\n"                                                                                 \
    "  .globl gg_ret_" tag "\n  .hidden gg_ret_" tag "\n"                                            \
    "gg_ret_" tag ":\n"                                                                              \
    "  addq $1, 16(%rbx)\n"                                                                          \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  ret\n"                                       /* ensure: eax is PyGILState_Ensure's value */   \
    "  .globl gg_kill_" tag "\n  .hidden gg_kill_" tag "\n"                                          \
    "gg_kill_" tag ":\n"                            /* rsp = entry rsp - 8, edx = kind */            \
    "  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                                       \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  movq gg_slot@gottpoff(%rip), %rax\n  movq %fs:(%rax), %rdi\n"                                \
    "  movq 48(%rdi), %rax\n  movl 56(%rdi), %ecx\n  movl %ecx, (%rax)\n"                           \
    "  movl %edx, %esi\n  movl $" GG_S(which) ", %edx\n"                                            \
    "  jmp *gg_rust+104(%rip)\n"                    /* drop_killed(slot, kind, which) */             \
    "5:\n"                                                                                           \
    "  cmpl $2, %ecx\n  jne 9f\n"                   /* CPython's thread: forward */                  \
    "6:\n"                                                                                           \
    "  jmp *%rax\n"                                                                                  \
    "8:\n"                                                                                           \
    "  movl $0, 0(%rcx)\n"                                                                           \
    "9:\n"                                                                                           \
    "  jmp *gg_rust+" GG_S(slowoff) "(%rip)\n"                                                      \
    "  .cfi_endproc\n  .size " name ", .-" name "\n"
#define GG_DROP_TSTEST "  testq %rdi, %rdi\n  jz 6f\n"
__asm__(GG_DROP_ASM("gg_drop_restore_thread", "drop_restore", 16, 56, 0, "%rsi", "%rdx", GG_DROP_TSTEST));
__asm__(GG_DROP_ASM("gg_drop_acquire_thread", "drop_acquire", 24, 64, 1, "%rsi", "%rdx", GG_DROP_TSTEST));
__asm__(GG_DROP_ASM("gg_drop_gilstate_ensure", "drop_ensure", 32, 72, 2, "%rdi", "%rsi", ""));
GG_API void gg_drop_restore_thread(void *ts, uintptr_t ra, uintptr_t sp);
GG_API void gg_drop_acquire_thread(void *ts, uintptr_t ra, uintptr_t sp);
GG_API int gg_drop_gilstate_ensure(uintptr_t ra, uintptr_t sp);
extern const char gg_ret_drop_restore[], gg_ret_drop_acquire[], gg_ret_drop_ensure[] GG_API;
extern const char gg_kill_drop_restore[], gg_kill_drop_acquire[], gg_kill_drop_ensure[] GG_API;
_Static_assert(offsetof(struct gg_hot, py) + 8 * GG_PY_ENSURE == 32, "asm offsets");
_Static_assert(offsetof(struct gg_hot, text_lo) == 80 && offsetof(struct gg_hot, text_hi) == 88, "asm offsets");
_Static_assert(offsetof(struct gg_rust, drop_restore) == 56 && offsetof(struct gg_rust, drop_acquire) == 64
               && offsetof(struct gg_rust, drop_ensure) == 72 && offsetof(struct gg_rust, drop_killed) == 104,
               "asm offsets");
_Static_assert(GG_HOST == 1 && GG_CPYTHON == 2, "asm constants");
#else
/* A host thread's outermost entry; returns 1 if done (GIL held), 0 for Rust's path. */
static inline __attribute__((always_inline)) int gg_drop_entry(void *f, void *arg, int *value_out,
                                                                uintptr_t sp, int which) {
    struct slot *sl = gg_slot_or_null();
    if (__builtin_expect(!sl || gg_kind != GG_HOST, 0))
        return 0;
    int rc = gg_fast_entry(sl, f, arg, value_out, sp, 0);
    if (__builtin_expect(rc > 0, 0))
        gg_rust.drop_killed(sl, rc, which); /* the policy: does not come back */
    return rc == GG_OK;
}

GG_API void gg_drop_restore_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_RESTORE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_restore(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra) || !ts || gg_kind == GG_CPYTHON) {
        f(ts);
        return;
    }
    if (!gg_drop_entry((void *)f, ts, NULL, sp, GG_W_RESTORE))
        gg_rust.drop_restore(ts, ra, sp);
}

GG_API void gg_drop_acquire_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_ACQUIRE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_acquire(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra) || !ts || gg_kind == GG_CPYTHON) {
        f(ts);
        return;
    }
    if (!gg_drop_entry((void *)f, ts, NULL, sp, GG_W_ACQUIRE))
        gg_rust.drop_acquire(ts, ra, sp);
}

GG_API int gg_drop_gilstate_ensure(uintptr_t ra, uintptr_t sp) {
    int (*f)(void) = (int (*)(void))gg_py(GG_PY_ENSURE);
    if (__builtin_expect(!f, 0))
        return gg_rust.drop_ensure(ra, sp);
    if (gg_from_cpython(ra) || gg_kind == GG_CPYTHON)
        return f();
    int v = 0;
    if (gg_drop_entry((void *)f, NULL, &v, sp, GG_W_ENSURE))
        return v;
    return gg_rust.drop_ensure(ra, sp);
}

#endif

/* Save side: the host's own save closing its outermost region (not an extension's save deeper
 * in the stack, which suspends it: Rust), or any call outside a region: forwarded. */
static inline int gg_drop_leave_kind(struct slot *sl, uintptr_t sp, int may_suspend) {
    if (!sl)
        return 0; /* no region: plain forward */
    uint32_t d = atomic_load_explicit(&sl->depth, RLX);
    if (d == 0)
        return 0;
    if (d == 1 && !(may_suspend && sp + GG_NESTED_STACK_BYTES < atomic_load_explicit(&sl->open_sp, RLX)))
        return 1; /* forward, then close the region */
    return 2; /* Rust */
}

GG_API void *gg_drop_save_thread(uintptr_t ra, uintptr_t sp) {
    void *(*f)(void) = (void *(*)(void))gg_py(GG_PY_SAVE);
    if (__builtin_expect(!f, 0))
        return gg_rust.drop_save(ra, sp);
    if (gg_from_cpython(ra))
        return f();
    struct slot *sl = gg_slot_or_null();
    int k = gg_drop_leave_kind(sl, sp, 1);
    if (k == 2)
        return gg_rust.drop_save(ra, sp);
    void *ts = f();
    if (k == 1)
        gg_leave_outermost_any(sl);
    return ts;
}

GG_API void gg_drop_release_thread(void *ts, uintptr_t ra, uintptr_t sp) {
    void (*f)(void *) = (void (*)(void *))gg_py(GG_PY_RELEASE_THREAD);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_release_thread(ts, ra, sp);
        return;
    }
    if (gg_from_cpython(ra)) {
        f(ts);
        return;
    }
    struct slot *sl = gg_slot_or_null();
    int k = gg_drop_leave_kind(sl, sp, 1);
    if (k == 2) {
        gg_rust.drop_release_thread(ts, ra, sp);
        return;
    }
    f(ts);
    if (k == 1)
        gg_leave_outermost_any(sl);
}

GG_API void gg_drop_gilstate_release(int st, uintptr_t ra, uintptr_t sp) {
    void (*f)(int) = (void (*)(int))gg_py(GG_PY_GILSTATE_RELEASE);
    if (__builtin_expect(!f, 0)) {
        gg_rust.drop_gilstate_release(st, ra, sp);
        return;
    }
    if (gg_from_cpython(ra)) {
        f(st);
        return;
    }
    struct slot *sl = gg_slot_or_null();
    int k = gg_drop_leave_kind(sl, sp, 0);
    if (k == 2) {
        gg_rust.drop_gilstate_release(st, ra, sp);
        return;
    }
    f(st);
    if (k == 1)
        gg_leave_outermost_any(sl);
}

#if defined(__x86_64__)
/* Resume a walked-to entry: callee-saved registers the entry did not touch, its stack pointer,
 * the kill kind in edx, then its kill label. */
struct gg_walk {
    uintptr_t open_sp;  /* in: the open region's open_sp */
    const char *resume; /* out: the entry's kill label, or NULL */
    uintptr_t rbp, r12, r13, r14, r15;
    uintptr_t resume_sp; /* out */
};
__attribute__((noreturn)) void gg_walk_resume(const struct gg_walk *w, intptr_t kind, uintptr_t rsp) GG_API;
__asm__("  .text\n  .p2align 4\n  .globl gg_walk_resume\n  .hidden gg_walk_resume\n"
        "  .type gg_walk_resume, @function\n"
        "gg_walk_resume:\n"
        "  .cfi_startproc\n"
        "  movq 16(%rdi), %rbp\n  movq 24(%rdi), %r12\n  movq 32(%rdi), %r13\n"
        "  movq 40(%rdi), %r14\n  movq 48(%rdi), %r15\n"
        "  movq 8(%rdi), %rax\n"
        "  movq %rdx, %rsp\n"
        "  movq %rsi, %rdx\n"
        "  jmp *%rax\n"
        "  .cfi_endproc\n  .size gg_walk_resume, .-gg_walk_resume\n");
_Static_assert(offsetof(struct gg_walk, resume) == 8 && offsetof(struct gg_walk, rbp) == 16
               && offsetof(struct gg_walk, r15) == 48, "asm offsets");

/* DWARF register numbers (x86-64 psABI). */
enum { GG_DW_RBP = 6, GG_DW_R12 = 12, GG_DW_R13 = 13, GG_DW_R14 = 14, GG_DW_R15 = 15 };

/* The assembly entries: where their call into CPython returns to, their kill label, and from
 * open_sp, their stack pointer at that call and the one their kill label expects (pointing at
 * the pushed rbx). API entries store their entry rsp as open_sp, drop-in ones entry rsp + 8. */
static const struct gg_entry_site {
    const char *ret, *kill;
    uint8_t call_off, resume_off;
} gg_sites[] = {
    {gg_ret_restore, gg_kill_restore, 8, 8},
    {gg_ret_acquire, gg_kill_acquire, 8, 8},
    {gg_ret_ensure, gg_kill_ensure, 24, 8}, /* also `out` and an alignment slot */
    {gg_ret_drop_restore, gg_kill_drop_restore, 16, 16},
    {gg_ret_drop_acquire, gg_kill_drop_acquire, 16, 16},
    {gg_ret_drop_ensure, gg_kill_drop_ensure, 16, 16},
};

static _Unwind_Reason_Code gg_walk_frame(struct _Unwind_Context *ctx, void *p) {
    struct gg_walk *w = p;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    const struct gg_entry_site *e = NULL;
    for (size_t i = 0; i < sizeof gg_sites / sizeof gg_sites[0]; i++)
        if (ip == (uintptr_t)gg_sites[i].ret)
            e = &gg_sites[i];
    if (!e)
        return _URC_NO_REASON;
    /* libgcc hands the callback the context *at the call site*: IP is the return address in
     * the entry, registers are the entry's, and "CFA" is still the callee's, i.e. the entry's
     * stack pointer at the call. */
    if ((uintptr_t)_Unwind_GetCFA(ctx) != w->open_sp - e->call_off)
        return _URC_END_OF_STACK; /* an entry frame that is not the open region's: never expected */
    w->resume_sp = w->open_sp - e->resume_off;
    const char *resume = e->kill;
    w->rbp = (uintptr_t)_Unwind_GetGR(ctx, GG_DW_RBP);
    w->r12 = (uintptr_t)_Unwind_GetGR(ctx, GG_DW_R12);
    w->r13 = (uintptr_t)_Unwind_GetGR(ctx, GG_DW_R13);
    w->r14 = (uintptr_t)_Unwind_GetGR(ctx, GG_DW_R14);
    w->r15 = (uintptr_t)_Unwind_GetGR(ctx, GG_DW_R15);
    w->resume = resume;
    return _URC_END_OF_STACK; /* stop the walk */
}

/* Called by the pthread_exit/pause interposers. Returns 0 when the thread is not inside an armed
 * call (the interposer goes on with the policy or the real function); otherwise does not return.
 * An armed call is either gg_arm_call's (jump buffer armed: the Rust paths) or an assembly fast
 * entry's (API or drop-in: the region's outermost entry, found by the walk). The walk runs only
 * when this thread has an open region, so only when CPython is killing or parking it inside one.
 * It needs unwind tables (.eh_frame) in CPython's frames between the entry and the kill site, as
 * every CPython build tested here has (glibc's own forced unwind needs them too); without them
 * the walk finds nothing and the kill goes to the policy (diagnosed abort by default). */
GG_API int gg_kill_hook(int kind) {
    if (gg_jb.armed)
        gg_jb_jump(kind);
    struct slot *sl = gg_slot_or_null();
    if (!sl || atomic_load_explicit(&sl->depth, RLX) == 0)
        return 0;
    uintptr_t sp = atomic_load_explicit(&sl->open_sp, RLX);
    if (!sp)
        return 0;
    struct gg_walk w = { .open_sp = sp };
    _Unwind_Backtrace(gg_walk_frame, &w);
    if (!w.resume)
        return 0;
    gg_walk_resume(&w, kind > 0 ? kind : 1, w.resume_sp);
}
#endif
