/* aarch64: the fallible API's fast entries, ../api_entries.c's C entries written out (the same
 * sequence as shared.h `gg_fast_entry`), with nothing armed, as ../x86_64/api_entries.S: if
 * CPython kills or parks the thread inside the call, gg_kill_hook (../armed_call.c) finds this
 * frame with the unwinder (its return address gg_ret_*, its stack pointer from open_sp), takes
 * x20-x29 and d8-d15 from the unwinder's context, x19 and x30 from the entry's own push, and
 * resumes at the kill label gg_kill_* with sp = open_sp - 16. An entry stores nothing for a kill
 * beyond that one pair, which the call needs anyway. Ordering: entry.inc.
 * Fast path: ts != NULL, slot, CPython function bound, depth 0, state == slot->fast_state,
 * ts->interp == main interpreter (restore/acquire only). Else the Rust path, by tail jump. */
#include "shared.h"
#include "aarch64/entry.inc"

/* is_ensure = 0: restore/acquire (x0 = ts, whose interp must be the main interpreter; CPython's
 * function is published before any slot can get a fast_state, so it is not tested).
 * is_ensure = 1: x0 = `out`, kept on the stack below the pair (16 bytes: sp stays aligned) and
 * written after the call; the function is NULL on the PEP 788 path, so it is tested.
 * open_sp = the entry's sp (its CFA). */
.macro GG_API_ENTRY name, tag, pyoff, slowoff, which, is_ensure, kind
  .text
  .p2align 4
  .globl \name
  .hidden \name
  .type \name, %function
\name:
  .cfi_startproc
  mrs x10, tpidr_el0
  GG_TPOFF x9, gg_slot
  ldr x9, [x10, x9]
  GG_HOT_ADDR
  ldr x12, [x11, #\pyoff]
  cbz x0, 9f
  .if \is_ensure
  cbz x12, 9f
  .endif
  GG_ADMIT \kind
  .if \is_ensure == 0
  ldr x13, [x11, #GG_HOT_MAIN_INTERP]
  ldr x14, [x0, #GG_TS_INTERP]
  cmp x13, x14
  b.ne 8f
  .endif
  mov x10, sp
  GG_OPEN x10
  GG_PUSH
  .if \is_ensure
  str x0, [sp, #-16]!
  .cfi_adjust_cfa_offset 16
  .endif
  blr x12
  .globl gg_ret_\tag
  .hidden gg_ret_\tag
gg_ret_\tag:
  .if \is_ensure
  ldr x1, [sp], #16
  .cfi_adjust_cfa_offset -16
  str w0, [x1]
  .endif
  GG_POP
  mov w0, #0
  ret
  .globl gg_kill_\tag
  .hidden gg_kill_\tag
gg_kill_\tag:                           /* sp = open_sp - 16, w1 = kind */
  GG_KILLED \which, GG_RUST_KILLED
  GG_TO_RUST \slowoff
  .cfi_endproc
  .size \name, .-\name
.endm

GG_API_ENTRY gg_api_restore_thread, restore, GG_HOT_PY_RESTORE, GG_RUST_RESTORE, GG_W_RESTORE, 0, GG_KIND_API_TSTATE
GG_API_ENTRY gg_api_acquire_thread, acquire, GG_HOT_PY_ACQUIRE, GG_RUST_ACQUIRE, GG_W_ACQUIRE, 0, GG_KIND_API_TSTATE
GG_API_ENTRY gg_api_gilstate_ensure, ensure, GG_HOT_PY_API_ENSURE, GG_RUST_ENSURE, GG_W_ENSURE, 1, GG_KIND_API_GILSTATE

  .section .note.GNU-stack,"",%progbits
