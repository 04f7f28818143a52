/* x86-64: the fallible API's fast entries, ../api_entries.c's C entries written out (the same
 * sequence as shared.h `gg_fast_entry`, which mirrors gate/entry.rs `enter_with`'s fast case),
 * with nothing armed. The entry saves no registers for a kill: if CPython kills or parks the thread
 * inside the call, gg_kill_hook (../armed_call.c) finds this frame with the unwinder (its return
 * address gg_ret_*, its stack pointer from open_sp), takes the caller's rbp and r12-r15 from the
 * unwinder's context, rbx from the entry's own push, and resumes at the entry's kill label
 * gg_kill_* with rsp = open_sp - 8. So a kill costs a stack walk and an entry costs no stores for
 * it. Depth store, then the state load: the pairing of gate/protocol.rs (x86 keeps the program
 * order of these plain moves apart from store->load, which membarrier covers).
 * Offsets and constants: gg_layout.h (src/base/layout.rs), asserted against the C structures.
 * Fast path: ts != NULL, slot, CPython function bound, depth 0, state == slot->fast_state,
 * ts->interp == main interpreter (restore/acquire only). Else the Rust path, by tail jump. */
#include "shared.h"

/* is_ensure = 0: restore/acquire (rdi = ts, whose interp must be the main interpreter; CPython's
 * function is published before any slot can get a fast_state, so it is not tested).
 * is_ensure = 1: rdi = `out`, kept on the stack (with an alignment slot) and written after the
 * call; the function is NULL on the PEP 788 path, so it is tested. */
.macro GG_API_ENTRY name, tag, pyoff, slowoff, which, is_ensure, kind
  .text
  .p2align 4
  .globl \name
  .hidden \name
  .type \name, @function
\name:
  .cfi_startproc
  movq gg_slot@gottpoff(%rip), %rax
  movq %fs:(%rax), %rcx
  movq gg_hot+\pyoff(%rip), %rsi
  testq %rdi, %rdi
  jz 9f
  .if \is_ensure
  testq %rsi, %rsi
  jz 9f
  .endif
  cmpl $0, GG_SLOT_DEPTH(%rcx)          /* nested or busy slot: Rust */
  jne 9f
  movl $1, GG_SLOT_DEPTH(%rcx)          /* depth = 1 (store, then ...) */
  movq gg_hot(%rip), %rax               /* ... the state load (barrier A) */
  cmpq GG_SLOT_FAST_STATE(%rcx), %rax   /* != fast_state */
  jne 8f
  movl $\kind, GG_SLOT_KIND0(%rcx)      /* kinds[0] */
  .if \is_ensure == 0
  movq gg_hot+GG_HOT_MAIN_INTERP(%rip), %rax
  cmpq %rax, GG_TS_INTERP(%rdi)
  jne 8f
  .endif
  movq %rsp, GG_SLOT_OPEN_SP(%rcx)      /* open_sp = this frame's CFA - 8 */
  movq GG_SLOT_ERRNO_PTR(%rcx), %rax
  movl (%rax), %eax
  movl %eax, GG_SLOT_SAVED_ERRNO(%rcx)  /* saved_errno */
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  .if \is_ensure
  pushq %rdi
  .cfi_adjust_cfa_offset 8
  subq $8, %rsp
  .cfi_adjust_cfa_offset 8
  .endif
  movq %rcx, %rbx
  call *%rsi
  .globl gg_ret_\tag
  .hidden gg_ret_\tag
gg_ret_\tag:
  addq $1, GG_SLOT_ENTRIES(%rbx)        /* entries (owner-only counter) */
  .if \is_ensure
  addq $8, %rsp
  .cfi_adjust_cfa_offset -8
  popq %rdi
  .cfi_adjust_cfa_offset -8
  movl %eax, (%rdi)
  .endif
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  xorl %eax, %eax
  ret
  .globl gg_kill_\tag
  .hidden gg_kill_\tag
gg_kill_\tag:                           /* rsp = open_sp - 8, edx = kind */
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
  movl $\which, %edx
  jmp *gg_rust+GG_RUST_KILLED(%rip)     /* killed(slot, kind, which) */
8:
  movl $0, GG_SLOT_DEPTH(%rcx)          /* depth back to 0 (release store) */
9:
  jmp *gg_rust+\slowoff(%rip)
  .cfi_endproc
  .size \name, .-\name
.endm

GG_API_ENTRY gg_api_restore_thread, restore, GG_HOT_PY_RESTORE, GG_RUST_RESTORE, GG_W_RESTORE, 0, GG_KIND_API_TSTATE
GG_API_ENTRY gg_api_acquire_thread, acquire, GG_HOT_PY_ACQUIRE, GG_RUST_ACQUIRE, GG_W_ACQUIRE, 0, GG_KIND_API_TSTATE
GG_API_ENTRY gg_api_gilstate_ensure, ensure, GG_HOT_PY_API_ENSURE, GG_RUST_ENSURE, GG_W_ENSURE, 1, GG_KIND_API_GILSTATE

  .section .note.GNU-stack,"",@progbits
