/* aarch64: the resume of a walked-to entry (gg_walk_resume). The armed call of the Rust paths is
 * ../armed_call.c's __builtin_setjmp one here (its cost is the slow path's); the walk is in
 * ../armed_call.c; offsets of struct gg_walk are ../shared.h's GG_WALK_* (asserted there). */
#include "shared.h"

/* gg_walk_resume(w, kind, sp): the callee-saved registers the entry did not touch (x20-x29,
 * d8-d15: the caller's, from the unwinder), its stack pointer, the kill kind in w1 (already
 * there), then its kill label, which takes x19 and x30 from the stack. The `br` needs no BTI
 * landing pad: these objects carry no GNU property note, so the library is never BTI-enforced
 * (a build that enables BTI would need `bti j` at the kill labels and `bti c` at the entries). */
  .text
  .p2align 4
  .globl gg_walk_resume
  .hidden gg_walk_resume
  .type gg_walk_resume, %function
gg_walk_resume:
  .cfi_startproc
  ldp x20, x21, [x0, #GG_WALK_X20]
  ldp x22, x23, [x0, #GG_WALK_X20 + 16]
  ldp x24, x25, [x0, #GG_WALK_X20 + 32]
  ldp x26, x27, [x0, #GG_WALK_X20 + 48]
  ldp x28, x29, [x0, #GG_WALK_X20 + 64]
  ldp d8, d9, [x0, #GG_WALK_D8]
  ldp d10, d11, [x0, #GG_WALK_D8 + 16]
  ldp d12, d13, [x0, #GG_WALK_D8 + 32]
  ldp d14, d15, [x0, #GG_WALK_D8 + 48]
  ldr x16, [x0, #GG_WALK_RESUME]
  mov sp, x2
  br x16
  .cfi_endproc
  .size gg_walk_resume, .-gg_walk_resume

  .section .note.GNU-stack,"",%progbits
