/* aarch64: PEP 788's PyThreadState_Ensure below 3.15 (gilgate_thread_state_ensure, exports/
 * pep788_compat.rs) in one frame, as ../x86_64/pep788_entries.S: ../pep788_compat.c
 * `gg788c_ensure`'s checks followed by api_entries.S's gilstate entry (entry.inc, shared.h
 * `gg_fast_entry`), its result turned into the level's token. x0 = the guard. Fast path:
 * CPython's getter published (gg788_cur_fn); guard magic; no thread state attached (the getter
 * returns NULL); slot; PyGILState_Ensure published; depth 0; state == slot->fast_state ==
 * guard->key (main interpreter, this generation, running). Otherwise the Rust body
 * (gg788_rs_ensure) by tail jump, x0 still the guard.
 *
 * The "attached?" test reads CPython's thread-local at tpidr_el0 + gg788_tp_off when
 * pep788_compat.rs `tls_getter` proved the getter a static-TLS descriptor access (the offset is
 * the same on every thread: no per-thread address, unlike x86-64's gg788_tss); otherwise it
 * calls the getter.
 *
 * Ordering (entry.inc; docs/design.md, "arm64"): gg788_cur_fn is read with `ldar`, as the C
 * path's acquire load (it orders the reads of what gg788c_publish stored before it); the state
 * word is the admission's `ldar`, compared with the guard's key as well (x86-64 compares the
 * same single load). The guard is the caller's, its head immutable once made. A kill inside
 * PyGILState_Ensure is found as api_entries.S's are (gg_sites in ../armed_call.c: the return
 * address gg_ret_788, the kill label gg_kill_788) and ends as the API's does (gg_rust.killed),
 * returning NULL. */
#include "shared.h"
#include "aarch64/entry.inc"

  .text
  .p2align 4
  .globl gg788_compat_ensure
  .hidden gg788_compat_ensure
  .type gg788_compat_ensure, %function
gg788_compat_ensure:
  .cfi_startproc
  adrp x16, gg788_cur_fn
  add x16, x16, :lo12:gg788_cur_fn
  ldar x16, [x16]                       /* CPython's getter (acquire, as the C path) */
  cbz x16, 9f                           /* not published: Rust */
  cbz x0, 9f
  ldr x13, [x0]
  ldr x14, =GG788_GUARD_MAGIC
  cmp x13, x14
  b.ne 9f
  adrp x15, gg788_tp_off
  ldr x15, [x15, #:lo12:gg788_tp_off]   /* ordered by the ldar above, as gg788c_publish stores */
  mrs x10, tpidr_el0
  cbz x15, 1f
  ldr x15, [x10, x15]                   /* CPython's thread-local, where the getter reads */
  b 2f
1:
  stp x0, x30, [sp, #-16]!              /* the guard and the return address across the getter */
  .cfi_adjust_cfa_offset 16
  .cfi_rel_offset x30, 8
  blr x16
  mov x15, x0
  ldp x0, x30, [sp], #16
  .cfi_adjust_cfa_offset -16
  .cfi_restore x30
  mrs x10, tpidr_el0
2:
  cbnz x15, 9f                          /* attached: Rust (a nested level, or a refusal) */
  GG_TPOFF x9, gg_slot
  ldr x9, [x10, x9]
  GG_HOT_ADDR
  ldr x12, [x11, #GG_HOT_PY_API_ENSURE]
  cbz x12, 9f
  GG_ADMIT GG_KIND_API_GILSTATE
  ldr x14, [x0, #GG788_GUARD_KEY]
  cmp x13, x14                          /* state word == the guard's key */
  b.ne 8f
  mov x10, sp
  GG_OPEN x10                           /* open_sp = the entry's sp, as api_entries.S */
  GG_PUSH
  blr x12
  .globl gg_ret_788
  .hidden gg_ret_788
gg_ret_788:
  GG_POP
  ubfiz w0, w0, #3, #1
  orr w0, w0, #4                        /* token: T_GILSTATE | (state & 1) << 3 */
  ret
  .globl gg_kill_788
  .hidden gg_kill_788
gg_kill_788:                            /* sp = open_sp - 16 (the pushed x19/x30), w1 = kind */
  .cfi_adjust_cfa_offset 16
  .cfi_rel_offset x19, 0
  .cfi_rel_offset x30, 8
  ldp x19, x30, [sp], #16
  .cfi_adjust_cfa_offset -16
  .cfi_restore x19
  .cfi_restore x30
  mrs x0, tpidr_el0
  GG_TPOFF x9, gg_slot
  ldr x0, [x0, x9]
  ldr x9, [x0, #GG_SLOT_ERRNO_PTR]
  ldr w10, [x0, #GG_SLOT_SAVED_ERRNO]
  str w10, [x9]                         /* errno back */
  mov w2, #GG_W_ENSURE
  adrp x16, gg_rust
  ldr x16, [x16, #:lo12:gg_rust+GG_RUST_KILLED]
  str x30, [sp, #-16]!                  /* the API's bookkeeping, then NULL: the thread intact */
  .cfi_adjust_cfa_offset 16
  .cfi_rel_offset x30, 0
  blr x16
  ldr x30, [sp], #16
  .cfi_adjust_cfa_offset -16
  .cfi_restore x30
  mov x0, #0
  ret
8:
  stlr wzr, [x9]                        /* depth back to 0 (release store) */
9:
  adrp x16, gg788_rs_ensure
  ldr x16, [x16, #:lo12:gg788_rs_ensure]
  br x16
  .cfi_endproc
  .size gg788_compat_ensure, .-gg788_compat_ensure
  .ltorg

  .section .note.GNU-stack,"",%progbits
