/* x86-64: PEP 788's PyThreadState_Ensure below 3.15 (gilgate_thread_state_ensure, exports/
 * pep788_compat.rs) in one frame: ../pep788_compat.c `gg788c_ensure`'s checks followed by
 * api_entries.S's gilstate entry (the same steps: entry.inc, shared.h `gg_fast_entry`), its
 * result turned into the level's token. rdi = the guard. Fast path: this thread's address of
 * CPython's thread-local "attached thread state" known (gg788_tss, ../pep788_compat.c) and no
 * thread state attached; guard magic; slot; PyGILState_Ensure published; depth 0; state ==
 * slot->fast_state == guard->key (main interpreter, this generation, running). Otherwise: the
 * C path while gg788_tss is not known on this thread (it fills it, or tests with CPython's
 * getter), the Rust body (gg788_rs_ensure) for everything else. A kill inside PyGILState_Ensure
 * is found as api_entries.S's are (gg_sites in ../armed_call.c: the return address gg_ret_788,
 * the kill label gg_kill_788) and ends as the API's does (gg_rust.killed), returning NULL. */
#include "shared.h"
#include "x86_64/entry.inc"

  .text
  .p2align 4
  .globl gg788_compat_ensure
  .hidden gg788_compat_ensure
  .type gg788_compat_ensure, @function
gg788_compat_ensure:
  .cfi_startproc
  movq gg788_tss@gottpoff(%rip), %rax
  movq %fs:(%rax), %rdx                 /* &CPython's current thread state on this thread */
  testq %rdx, %rdx
  jz 7f                                 /* not known yet: the C path */
  cmpq $0, (%rdx)                       /* attached: Rust (a nested level, or a refusal) */
  jne 9f
  testq %rdi, %rdi
  jz 9f
  movabsq $GG788_GUARD_MAGIC, %rax
  cmpq %rax, (%rdi)
  jne 9f
  movq gg_slot@gottpoff(%rip), %rax
  movq %fs:(%rax), %rcx
  movq gg_hot+GG_HOT_PY_API_ENSURE(%rip), %rsi
  testq %rsi, %rsi
  jz 9f
  GG_ADMIT %rcx, %rax, GG_KIND_API_GILSTATE
  cmpq %rax, GG788_GUARD_KEY(%rdi)      /* state word == the guard's key */
  jne 8f
  GG_OPEN %rcx, %rsp, %rax, %eax         /* open_sp = this frame's CFA - 8 */
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  movq %rcx, %rbx
  call *%rsi
  .globl gg_ret_788
  .hidden gg_ret_788
gg_ret_788:
  addq $1, GG_SLOT_ENTRIES(%rbx)        /* entries (owner-only counter) */
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  andl $1, %eax
  leal 4(,%rax,8), %eax                 /* token: T_GILSTATE | (state & 1) << 3 */
  ret
  .globl gg_kill_788
  .hidden gg_kill_788
gg_kill_788:                            /* rsp = open_sp - 8, edx = kind */
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  movq gg_slot@gottpoff(%rip), %rax
  movq %fs:(%rax), %rdi
  movq GG_SLOT_ERRNO_PTR(%rdi), %rax
  movl GG_SLOT_SAVED_ERRNO(%rdi), %ecx
  movl %ecx, (%rax)                     /* errno back */
  movl %edx, %esi
  movl $GG_W_ENSURE, %edx
  subq $8, %rsp                         /* the API's bookkeeping, then NULL: the thread intact */
  .cfi_adjust_cfa_offset 8
  call *gg_rust+GG_RUST_KILLED(%rip)
  addq $8, %rsp
  .cfi_adjust_cfa_offset -8
  xorl %eax, %eax
  ret
8:
  movl $0, GG_SLOT_DEPTH(%rcx)          /* depth back to 0 (release store) */
9:
  jmp *gg788_rs_ensure(%rip)
7:
  jmp gg788c_ensure
  .cfi_endproc
  .size gg788_compat_ensure, .-gg788_compat_ensure

  .section .note.GNU-stack,"",@progbits
