/* The x86-64 assembly of armed.c, one part per #include (GG_ASM_PART): the fast paths that
 * every other architecture gets in C (armed.c's #else branches, built here by the cargo feature
 * portable-entries). Offsets and constants are layout.rs's, through gg_layout.h (GG_XS). */
#if !defined(GG_ASM_PART)
#error "included by armed.c only"
#endif

#if GG_ASM_PART == 1 /* the armed call (gg_arm_call, gg_jb_jump) */
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
#endif /* GG_ASM_PART == 1 */

#if GG_ASM_PART == 2 /* the fallible API's fast entries */
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
#define GG_ENTRY_ASM(name, tag, pyoff, slowoff, which, is_ensure, kind)                                    \
    "  .text\n  .p2align 4\n  .globl " name "\n  .hidden " name "\n  .type " name ", @function\n"     \
    name ":\n"                                                                                       \
    "  .cfi_startproc\n"                                                                             \
    "  movq gg_slot@gottpoff(%rip), %rax\n"                                                          \
    "  movq %fs:(%rax), %rcx\n"                                                                      \
    "  movq gg_hot+" GG_XS(pyoff) "(%rip), %rsi\n"                                                    \
    "  testq %rdi, %rdi\n  jz 9f\n"                                                                  \
    GG_ENTRY_FTEST_##is_ensure                                                                       \
    "  cmpl $0, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n  jne 9f\n"   /* nested or busy slot: Rust */           \
    "  movl $1, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n"              /* depth = 1 (store, then ...) */        \
    "  movq gg_hot(%rip), %rax\n"                   /* ... the state load (barrier A) */             \
    "  cmpq " GG_XS(GG_SLOT_FAST_STATE) "(%rcx), %rax\n  jne 8f\n" /* != fast_state */                  \
    "  movl $" GG_XS(kind) ", " GG_XS(GG_SLOT_KIND0) "(%rcx)\n" /* kinds[0] */                           \
    GG_ENTRY_INTERP_##is_ensure                                                                      \
    "  movq %rsp, " GG_XS(GG_SLOT_OPEN_SP) "(%rcx)\n"          /* open_sp = this frame's CFA - 8 */     \
    "  movq " GG_XS(GG_SLOT_ERRNO_PTR) "(%rcx), %rax\n  movl (%rax), %eax\n"                             \
    "  movl %eax, " GG_XS(GG_SLOT_SAVED_ERRNO) "(%rcx)\n"                                  /* saved_errno */ \
    "  pushq %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                         \
    GG_ENTRY_PUSH_##is_ensure                                                                        \
    "  movq %rcx, %rbx\n"                                                                            \
    "  call *%rsi\n"                                                                                 \
    "  .globl gg_ret_" tag "\n  .hidden gg_ret_" tag "\n"                                            \
    "gg_ret_" tag ":\n"                                                                              \
    "  addq $1, " GG_XS(GG_SLOT_ENTRIES) "(%rbx)\n"            /* entries (owner-only counter) */       \
    GG_ENTRY_POP_##is_ensure                                                                         \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  xorl %eax, %eax\n  ret\n"                                                                     \
    "  .globl gg_kill_" tag "\n  .hidden gg_kill_" tag "\n"                                          \
    "gg_kill_" tag ":\n"                            /* rsp = open_sp - 8, edx = kind */              \
    "  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                                       \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  movq gg_slot@gottpoff(%rip), %rax\n  movq %fs:(%rax), %rdi\n"                                \
    "  movq " GG_XS(GG_SLOT_ERRNO_PTR) "(%rdi), %rax\n  movl " GG_XS(GG_SLOT_SAVED_ERRNO) "(%rdi), %ecx\n" \
    "  movl %ecx, (%rax)\n"                         /* errno back */                                 \
    "  movl %edx, %esi\n  movl $" GG_XS(which) ", %edx\n"                                            \
    "  jmp *gg_rust+" GG_XS(GG_RUST_KILLED) "(%rip)\n"  /* killed(slot, kind, which) */                  \
    "8:\n"                                                                                           \
    "  movl $0, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n"               /* depth back to 0 (release store) */    \
    "9:\n"                                                                                           \
    "  jmp *gg_rust+" GG_XS(slowoff) "(%rip)\n"                                                      \
    "  .cfi_endproc\n  .size " name ", .-" name "\n"
/* restore/acquire: ts->interp (third pointer of struct _ts) must be the main interpreter. */
#define GG_ENTRY_INTERP_0 "  movq gg_hot+" GG_XS(GG_HOT_MAIN_INTERP) "(%rip), %rax\n  cmpq %rax, " GG_XS(GG_TS_INTERP) "(%rdi)\n  jne 8f\n"
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
__asm__(GG_ENTRY_ASM("gg_api_restore_thread", "restore", GG_HOT_PY_RESTORE, GG_RUST_RESTORE, GG_W_RESTORE, 0, GG_KIND_API_TSTATE));
__asm__(GG_ENTRY_ASM("gg_api_acquire_thread", "acquire", GG_HOT_PY_ACQUIRE, GG_RUST_ACQUIRE, GG_W_ACQUIRE, 0, GG_KIND_API_TSTATE));
__asm__(GG_ENTRY_ASM("gg_api_gilstate_ensure", "ensure", GG_HOT_PY_API_ENSURE, GG_RUST_ENSURE, GG_W_ENSURE, 1, GG_KIND_API_GILSTATE));
GG_API int gg_api_restore_thread(void *ts);
GG_API int gg_api_acquire_thread(void *ts);
GG_API int gg_api_gilstate_ensure(int *out);
extern const char gg_ret_restore[], gg_ret_acquire[], gg_ret_ensure[] GG_API;
extern const char gg_kill_restore[], gg_kill_acquire[], gg_kill_ensure[] GG_API;

#endif /* GG_ASM_PART == 2 */

#if GG_ASM_PART == 3 /* the drop-in exports' fast entries */
/* The drop-in entries, in assembly like the API entries (same sequence as gg_drop_entry +
 * gg_fast_entry; kills found by gg_kill_hook's walk, resumed at gg_kill_drop_*, which hands the
 * kill to Rust's drop_killed: the policy). Arguments as the trampolines pass them: restore and
 * acquire (ts, ra, sp), ensure (ra, sp); sp is the caller's stack pointer after the return, i.e.
 * this frame's entry rsp + 8, and becomes open_sp. Calls from CPython's own code, NULL thread
 * states and CPython's threads go straight to CPython by tail jump; anything else Rust's. */
#define GG_DROP_ASM(name, tag, pyoff, slowoff, which, RA, SP, TSTEST, FRAMETEST, kind)                                \
    "  .text\n  .p2align 4\n  .globl " name "\n  .hidden " name "\n  .type " name ", @function\n"     \
    name ":\n"                                                                                       \
    "  .cfi_startproc\n"                                                                             \
    "  movq gg_hot+" GG_XS(pyoff) "(%rip), %rax\n"                                                    \
    "  testq %rax, %rax\n  jz 9f\n"                 /* CPython not resolved yet: Rust */             \
    "  movq gg_hot+" GG_XS(GG_HOT_TEXT_LO) "(%rip), %rcx\n"                /* from CPython's own code? */                   \
    "  movq " RA ", %r8\n  subq %rcx, %r8\n"                                                         \
    "  movq gg_hot+" GG_XS(GG_HOT_TEXT_HI) "(%rip), %r9\n  subq %rcx, %r9\n"                                                \
    "  cmpq %r9, %r8\n  jb 6f\n"                                                                     \
    TSTEST                                                                                           \
    "  movq gg_kind@gottpoff(%rip), %rcx\n  movl %fs:(%rcx), %ecx\n"                                \
    "  cmpl $" GG_XS(GG_HOST) ", %ecx\n  jne 5f\n"                                                   \
    FRAMETEST                   /* not a host thread */                          \
    "  movq gg_slot@gottpoff(%rip), %rcx\n  movq %fs:(%rcx), %rcx\n"                                \
    "  cmpl $0, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n  jne 9f\n"                                                                 \
    "  movl $1, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n"                                                                           \
    "  movq gg_hot(%rip), %r8\n"                                                                     \
    "  cmpq " GG_XS(GG_SLOT_FAST_STATE) "(%rcx), %r8\n  jne 8f\n"                                 \
    "  movl $" GG_XS(kind) ", " GG_XS(GG_SLOT_KIND0) "(%rcx)\n"                                                               \
    "  movq " SP ", " GG_XS(GG_SLOT_OPEN_SP) "(%rcx)\n"                     /* open_sp */                                    \
    "  movq " GG_XS(GG_SLOT_ERRNO_PTR) "(%rcx), %r8\n  movl (%r8), %r8d\n"                         \
    "  movl %r8d, " GG_XS(GG_SLOT_SAVED_ERRNO) "(%rcx)\n" /* saved_errno */           \
    "  pushq %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                         \
    "  movq %rcx, %rbx\n"                                                                            \
    "  call *%rax\n"                                                                                 \
    "  .globl gg_ret_" tag "\n  .hidden gg_ret_" tag "\n"                                            \
    "gg_ret_" tag ":\n"                                                                              \
    "  addq $1, " GG_XS(GG_SLOT_ENTRIES) "(%rbx)\n"                                                                          \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  ret\n"                                       /* ensure: eax is PyGILState_Ensure's value */   \
    "  .globl gg_kill_" tag "\n  .hidden gg_kill_" tag "\n"                                          \
    "gg_kill_" tag ":\n"                            /* rsp = entry rsp - 8, edx = kind */            \
    "  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"                                       \
    "  popq %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"                               \
    "  movq gg_slot@gottpoff(%rip), %rax\n  movq %fs:(%rax), %rdi\n"                                \
    "  movq " GG_XS(GG_SLOT_ERRNO_PTR) "(%rdi), %rax\n  movl " GG_XS(GG_SLOT_SAVED_ERRNO) "(%rdi), %ecx\n" \
    "  movl %ecx, (%rax)\n"                           \
    "  movl %edx, %esi\n  movl $" GG_XS(which) ", %edx\n"                                            \
    "  jmp *gg_rust+" GG_XS(GG_RUST_DROP_KILLED) "(%rip)\n" /* drop_killed(slot, kind, which) */             \
    "5:\n"                                                                                           \
    "  cmpl $" GG_XS(GG_CPYTHON) ", %ecx\n  jne 9f\n"                   /* CPython's thread: forward */                  \
    "6:\n"                                                                                           \
    "  jmp *%rax\n"                                                                                  \
    "8:\n"                                                                                           \
    "  movl $0, " GG_XS(GG_SLOT_DEPTH) "(%rcx)\n"                                                                           \
    "9:\n"                                                                                           \
    "  jmp *gg_rust+" GG_XS(slowoff) "(%rip)\n"                                                      \
    "  .cfi_endproc\n  .size " name ", .-" name "\n"
#define GG_DROP_TSTEST "  testq %rdi, %rdi\n  jz 6f\n"
/* restore/acquire: a thread state executing a Python frame resumes Python code that ran outside
 * any region (an extension's Py_END_ALLOW_THREADS on, e.g., an embedding host's main thread):
 * Rust forwards it without opening a region (gate.rs `frame_of`, the same two reads). */
#define GG_DROP_FRAMETEST                                                                            \
    "  movl gg_hot+" GG_XS(GG_HOT_FRAME_OFF) "(%rip), %r8d\n  movq (%rdi,%r8), %r8\n"              \
    "  testq %r8, %r8\n  jz 4f\n"                                                                      \
    "  movl gg_hot+" GG_XS(GG_HOT_CFRAME_OFF) "(%rip), %r9d\n  cmpl $-1, %r9d\n  je 9f\n"            \
    "  cmpq $0, (%r8,%r9)\n  jne 9f\n"                                                                \
    "4:\n"
__asm__(GG_DROP_ASM("gg_drop_restore_thread", "drop_restore", GG_HOT_PY_RESTORE, GG_RUST_DROP_RESTORE, GG_W_RESTORE, "%rsi", "%rdx", GG_DROP_TSTEST, GG_DROP_FRAMETEST, GG_KIND_TSTATE));
__asm__(GG_DROP_ASM("gg_drop_acquire_thread", "drop_acquire", GG_HOT_PY_ACQUIRE, GG_RUST_DROP_ACQUIRE, GG_W_ACQUIRE, "%rsi", "%rdx", GG_DROP_TSTEST, GG_DROP_FRAMETEST, GG_KIND_TSTATE));
__asm__(GG_DROP_ASM("gg_drop_gilstate_ensure", "drop_ensure", GG_HOT_PY_ENSURE, GG_RUST_DROP_ENSURE, GG_W_ENSURE, "%rdi", "%rsi", "", "", GG_KIND_GILSTATE));
GG_API void gg_drop_restore_thread(void *ts, uintptr_t ra, uintptr_t sp);
GG_API void gg_drop_acquire_thread(void *ts, uintptr_t ra, uintptr_t sp);
GG_API int gg_drop_gilstate_ensure(uintptr_t ra, uintptr_t sp);
extern const char gg_ret_drop_restore[], gg_ret_drop_acquire[], gg_ret_drop_ensure[] GG_API;
extern const char gg_kill_drop_restore[], gg_kill_drop_acquire[], gg_kill_drop_ensure[] GG_API;
#endif /* GG_ASM_PART == 3 */

#if GG_ASM_PART == 4 /* resuming an entry CPython killed (gg_walk_resume and the unwinder walk) */
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
#endif /* GG_ASM_PART == 4 */
