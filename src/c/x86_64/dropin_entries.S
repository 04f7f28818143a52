/* x86-64: the drop-in exports' fast entries, ../dropin_entries.c's C entries written out (the same
 * sequence as its gg_drop_entry + shared.h gg_fast_entry; kills found by gg_kill_hook's walk,
 * resumed at gg_kill_drop_*, which hands the kill to Rust's drop_killed: the policy). Arguments as
 * the trampolines pass them (exports/dropin.rs): restore and acquire (ts, ra, sp), ensure (ra, sp);
 * sp is the caller's stack pointer after the return, i.e. this frame's entry rsp + 8, and becomes
 * open_sp. Calls from CPython's own code (shared.h gg_from_cpython), NULL thread states and
 * CPython's threads go straight to CPython by tail jump; anything else is Rust's.
 * Offsets and constants: gg_layout.h (src/base/layout.rs). */
#include "shared.h"

/* has_ts = 1 (restore/acquire): rdi = ts; NULL goes straight to CPython, and a thread state
 * executing a Python frame (shared.h gg_in_python, platform/boundary.rs `frame_of`: the same two
 * reads) resumes Python code that ran outside any region: Rust forwards it without a region. */
.macro GG_DROP_ENTRY name, tag, pyoff, slowoff, which, ra, sp, has_ts, kind
  .text
  .p2align 4
  .globl \name
  .hidden \name
  .type \name, @function
\name:
  .cfi_startproc
  movq gg_hot+\pyoff(%rip), %rax
  testq %rax, %rax                      /* CPython not resolved yet: Rust */
  jz 9f
  movq gg_hot+GG_HOT_TEXT_LO(%rip), %rcx /* from CPython's own code? */
  movq \ra, %r8
  subq %rcx, %r8
  movq gg_hot+GG_HOT_TEXT_HI(%rip), %r9
  subq %rcx, %r9
  cmpq %r9, %r8
  jb 6f
  .if \has_ts
  testq %rdi, %rdi
  jz 6f
  .endif
  movq gg_kind@gottpoff(%rip), %rcx
  movl %fs:(%rcx), %ecx
  cmpl $GG_HOST, %ecx                   /* not a host thread */
  jne 5f
  .if \has_ts
  movl gg_hot+GG_HOT_FRAME_OFF(%rip), %r8d
  movq (%rdi,%r8), %r8
  testq %r8, %r8
  jz 4f
  movl gg_hot+GG_HOT_CFRAME_OFF(%rip), %r9d
  cmpl $-1, %r9d
  je 9f
  cmpq $0, (%r8,%r9)
  jne 9f
4:
  .endif
  movq gg_slot@gottpoff(%rip), %rcx
  movq %fs:(%rcx), %rcx
  cmpl $0, GG_SLOT_DEPTH(%rcx)
  jne 9f
  movl $1, GG_SLOT_DEPTH(%rcx)
  movq gg_hot(%rip), %r8
  cmpq GG_SLOT_FAST_STATE(%rcx), %r8
  jne 8f
  movl $\kind, GG_SLOT_KIND0(%rcx)
  movq \sp, GG_SLOT_OPEN_SP(%rcx)       /* open_sp */
  movq GG_SLOT_ERRNO_PTR(%rcx), %r8
  movl (%r8), %r8d
  movl %r8d, GG_SLOT_SAVED_ERRNO(%rcx)  /* saved_errno */
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  movq %rcx, %rbx
  call *%rax
  .globl gg_ret_\tag
  .hidden gg_ret_\tag
gg_ret_\tag:
  addq $1, GG_SLOT_ENTRIES(%rbx)
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  ret                                   /* ensure: eax is PyGILState_Ensure's value */
  .globl gg_kill_\tag
  .hidden gg_kill_\tag
gg_kill_\tag:                           /* rsp = entry rsp - 8, edx = kind */
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  movq gg_slot@gottpoff(%rip), %rax
  movq %fs:(%rax), %rdi
  movq GG_SLOT_ERRNO_PTR(%rdi), %rax
  movl GG_SLOT_SAVED_ERRNO(%rdi), %ecx
  movl %ecx, (%rax)
  movl %edx, %esi
  movl $\which, %edx
  jmp *gg_rust+GG_RUST_DROP_KILLED(%rip) /* drop_killed(slot, kind, which) */
5:
  cmpl $GG_CPYTHON, %ecx                /* CPython's thread: forward */
  jne 9f
6:
  jmp *%rax
8:
  movl $0, GG_SLOT_DEPTH(%rcx)
9:
  jmp *gg_rust+\slowoff(%rip)
  .cfi_endproc
  .size \name, .-\name
.endm

GG_DROP_ENTRY gg_drop_restore_thread, drop_restore, GG_HOT_PY_RESTORE, GG_RUST_DROP_RESTORE, GG_W_RESTORE, %rsi, %rdx, 1, GG_KIND_TSTATE
GG_DROP_ENTRY gg_drop_acquire_thread, drop_acquire, GG_HOT_PY_ACQUIRE, GG_RUST_DROP_ACQUIRE, GG_W_ACQUIRE, %rsi, %rdx, 1, GG_KIND_TSTATE
GG_DROP_ENTRY gg_drop_gilstate_ensure, drop_ensure, GG_HOT_PY_ENSURE, GG_RUST_DROP_ENSURE, GG_W_ENSURE, %rdi, %rsi, 0, GG_KIND_GILSTATE

  .section .note.GNU-stack,"",@progbits
