/* aarch64: the drop-in exports' fast entries, ../dropin_entries.c's C entries written out (the
 * same sequence as its gg_drop_entry + shared.h gg_fast_entry; kills found by gg_kill_hook's walk,
 * resumed at gg_kill_drop_*, which hands the kill to Rust's drop_killed: the policy), as
 * ../x86_64/dropin_entries.S. Arguments as the trampolines pass them (exports/dropin.rs): restore
 * and acquire (ts, ra, sp), ensure (ra, sp); sp is the caller's stack pointer, which is this
 * entry's sp too (the trampoline only branches), and becomes open_sp. Calls from CPython's own
 * code (shared.h gg_from_cpython), NULL thread states and CPython's threads go straight to CPython
 * by tail jump; anything else is Rust's. Ordering: entry.inc; text_lo is read with `ldar` before
 * text_hi (published hi, then lo with release: shared.c gg_publish_text). */
#include "shared.h"
#include "aarch64/entry.inc"

/* has_ts = 1 (restore/acquire): x0 = ts; NULL goes straight to CPython, and a thread state
 * executing a Python frame (shared.h gg_in_python, platform/boundary.rs `frame_of`: the same two
 * reads) resumes Python code that ran outside any region: Rust forwards it without a region.
 * x10 keeps the thread pointer from the gg_kind read to the gg_slot read. */
.macro GG_DROP_ENTRY name, tag, pyoff, slowoff, which, ra, sp, has_ts, kind
  .text
  .p2align 4
  .globl \name
  .hidden \name
  .type \name, %function
\name:
  .cfi_startproc
  GG_HOT_ADDR
  ldr x12, [x11, #\pyoff]
  cbz x12, 9f                           /* CPython not resolved yet: Rust */
  add x13, x11, #GG_HOT_TEXT_LO         /* from CPython's own code? */
  ldar x13, [x13]
  ldr x14, [x11, #GG_HOT_TEXT_HI]
  sub x15, \ra, x13
  sub x14, x14, x13
  cmp x15, x14
  b.lo 6f
  .if \has_ts
  cbz x0, 6f
  .endif
  mrs x10, tpidr_el0
  GG_TPOFF x13, gg_kind
  ldr w13, [x10, x13]
  cmp w13, #GG_HOST                     /* not a host thread */
  b.ne 5f
  .if \has_ts
  ldr w14, [x11, #GG_HOT_FRAME_OFF]
  ldr x14, [x0, w14, uxtw]
  cbz x14, 4f
  ldr w15, [x11, #GG_HOT_CFRAME_OFF]
  cmn w15, #1
  b.eq 9f
  ldr x15, [x14, w15, uxtw]
  cbnz x15, 9f
4:
  .endif
  GG_TPOFF x9, gg_slot
  ldr x9, [x10, x9]
  GG_ADMIT \kind
  GG_OPEN \sp
  GG_PUSH
  blr x12
  .globl gg_ret_\tag
  .hidden gg_ret_\tag
gg_ret_\tag:
  GG_POP
  ret                                   /* ensure: w0 is PyGILState_Ensure's value */
  .globl gg_kill_\tag
  .hidden gg_kill_\tag
gg_kill_\tag:                           /* sp = open_sp - 16, w1 = kind */
  GG_KILLED \which, GG_RUST_DROP_KILLED
5:
  cmp w13, #GG_CPYTHON                  /* CPython's thread: forward */
  b.ne 9f
6:
  br x12
  GG_TO_RUST \slowoff
  .cfi_endproc
  .size \name, .-\name
.endm

GG_DROP_ENTRY gg_drop_restore_thread, drop_restore, GG_HOT_PY_RESTORE, GG_RUST_DROP_RESTORE, GG_W_RESTORE, x1, x2, 1, GG_KIND_TSTATE
GG_DROP_ENTRY gg_drop_acquire_thread, drop_acquire, GG_HOT_PY_ACQUIRE, GG_RUST_DROP_ACQUIRE, GG_W_ACQUIRE, x1, x2, 1, GG_KIND_TSTATE
GG_DROP_ENTRY gg_drop_gilstate_ensure, drop_ensure, GG_HOT_PY_ENSURE, GG_RUST_DROP_ENSURE, GG_W_ENSURE, x0, x1, 0, GG_KIND_GILSTATE

  .section .note.GNU-stack,"",%progbits
