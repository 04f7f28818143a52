/* x86-64: the armed call (gg_arm_call, gg_jb_jump) and the resume of a walked-to entry
 * (gg_walk_resume). The C declarations and the walk are in ../armed_call.c; offsets of struct
 * gg_jb and struct gg_walk are ../shared.h's GG_JB_* / GG_WALK_* (asserted there).
 *
 * gg_arm_call saves the callee-saved registers, the stack pointer the caller will have after the
 * return and the return address: all that the caller may rely on across a call (SysV). The jump
 * back restores them and "returns" from gg_arm_call with rdx = kind. No libc call, no signal mask
 * (kills never run in a signal handler), no frame of its own beyond the alignment slot. */
#include "shared.h"

  .text
  .p2align 4
  .globl gg_arm_call
  .hidden gg_arm_call
  .type gg_arm_call, @function
gg_arm_call:
  .cfi_startproc
  movq gg_jb@gottpoff(%rip), %rax
  addq %fs:0, %rax
  movq %rbx, 0(%rax)
  movq %rbp, 8(%rax)
  movq %r12, 16(%rax)
  movq %r13, 24(%rax)
  movq %r14, 32(%rax)
  movq %r15, 40(%rax)
  leaq 8(%rsp), %rcx
  movq %rcx, 48(%rax)
  movq (%rsp), %rcx
  movq %rcx, 56(%rax)
  movl $1, GG_JB_ARMED(%rax)
  subq $8, %rsp
  .cfi_adjust_cfa_offset 8
  call *%rsi
  addq $8, %rsp
  .cfi_adjust_cfa_offset -8
  movq gg_jb@gottpoff(%rip), %rcx
  movl $0, %fs:GG_JB_ARMED(%rcx)
  xorl %edx, %edx
  ret
  .cfi_endproc
  .size gg_arm_call, .-gg_arm_call

/* Only called while armed (gg_kill_hook tests gg_jb.armed). */
  .p2align 4
  .globl gg_jb_jump
  .hidden gg_jb_jump
  .type gg_jb_jump, @function
gg_jb_jump:
  .cfi_startproc
  movq gg_jb@gottpoff(%rip), %rax
  addq %fs:0, %rax
  movl $0, GG_JB_ARMED(%rax)
  movslq %edi, %rdx
  movl $1, %ecx
  testq %rdx, %rdx
  cmovle %rcx, %rdx
  movq 0(%rax), %rbx
  movq 8(%rax), %rbp
  movq 16(%rax), %r12
  movq 24(%rax), %r13
  movq 32(%rax), %r14
  movq 40(%rax), %r15
  movq 48(%rax), %rsp
  jmp *56(%rax)
  .cfi_endproc
  .size gg_jb_jump, .-gg_jb_jump

/* gg_walk_resume(w, kind, rsp): the callee-saved registers the entry did not touch, its stack
 * pointer, the kill kind in edx, then its kill label. */
  .p2align 4
  .globl gg_walk_resume
  .hidden gg_walk_resume
  .type gg_walk_resume, @function
gg_walk_resume:
  .cfi_startproc
  movq GG_WALK_RBP(%rdi), %rbp
  movq GG_WALK_R12(%rdi), %r12
  movq GG_WALK_R13(%rdi), %r13
  movq GG_WALK_R14(%rdi), %r14
  movq GG_WALK_R15(%rdi), %r15
  movq GG_WALK_RESUME(%rdi), %rax
  movq %rdx, %rsp
  movq %rsi, %rdx
  jmp *%rax
  .cfi_endproc
  .size gg_walk_resume, .-gg_walk_resume

  .section .note.GNU-stack,"",@progbits
