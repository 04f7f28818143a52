/* The armed call and the kill hook: how a thread that CPython kills (pthread_exit on 3.8-3.13) or
 * parks (pause() forever on 3.14+) inside a gated entry's call comes back to that entry, which then
 * returns an error (or applies the policy) instead. gilgate's interposed pthread_exit/pause
 * (exports/interpose.rs) call gg_kill_hook(). Two ways back: the Rust paths arm a jump buffer
 * around the call (gg_armed_call_*, through gg_arm_call); the assembly fast entries (x86-64,
 * aarch64) arm nothing and are found by a stack walk (gg_kill_hook, below). Frames skipped either
 * way are CPython's own (take_gil, PyEval_RestoreThread, ...) and the interposer's Rust frame,
 * none of which own anything that needs unwinding at that point. Callers restore errno on the
 * kill path (CPython's kill leaves whatever its waits set). */
#include "shared.h"
#include <unwind.h>

_Static_assert(offsetof(struct gg_jb, armed) == GG_JB_ARMED, "x86_64/armed_call.S offsets");

#if !GG_X86_ASM
/* Portable gg_arm_call (aarch64's too: its assembly entries need none): __builtin_setjmp saves the
 * frame pointer, stack pointer and resume address; the compiler makes this function save every
 * callee-saved register. */
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
/* Only called while armed. */
static __attribute__((noreturn, noinline)) void gg_jb_jump(int kind) {
    gg_jb.armed = 0;
    gg_kill_kind = kind > 0 ? kind : 1;
    __builtin_longjmp(gg_buf, 1);
}
#endif
#if !GG_ASM_ENTRIES
GG_API int gg_kill_hook(int kind) {
    if (!gg_jb.armed)
        return 0;
    gg_jb_jump(kind);
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
GG_API int gg_armed_call_pp(void *(*f)(void *), void *arg, void **out) {
    if (gg_jb.armed) {
        *out = f(arg);
        return 0;
    }
    int e = errno;
    struct gg_ret r = gg_arm_call(arg, (void *)f);
    if (!r.kill)
        *out = (void *)r.value;
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

#if GG_ASM_ENTRIES
/* ---- The kill walk of the assembly entries (x86_64/, aarch64/: api_entries.S, dropin_entries.S;
 * pep788_entries.S) ---- */

/* The callee-saved registers an entry leaves alone, by DWARF number, which it takes back from the
 * unwinder's context on a kill (the one it uses itself, and the return address, it pushed). */
#if GG_X86_ASM
__attribute__((noreturn)) void gg_jb_jump(int kind) GG_API;
static const uint8_t gg_dw[] = {6, 12, 13, 14, 15}; /* rbp r12-r15 (x86-64 psABI) */
#define GG_WALK_REGS GG_WALK_RBP
#else
/* x20-x28, x29 and d8-d15 (their low 64 bits are what AAPCS64 preserves; libgcc's unwinder keeps
 * them at that width, and _Unwind_Backtrace saves them itself, so every one has a location). */
static const uint8_t gg_dw[] = {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 72, 73, 74, 75, 76, 77, 78, 79};
#define GG_WALK_REGS GG_WALK_X20
_Static_assert(GG_WALK_D8 == GG_WALK_X20 + 10 * 8, "aarch64/armed_call.S offsets");
#endif

/* A walk's result, for gg_walk_resume (x86_64/ or aarch64/ armed_call.S): gg_dw's registers, the
 * entry's stack pointer and its kill label. */
struct gg_walk {
    uintptr_t open_sp;  /* in: the open region's open_sp */
    const char *resume; /* out: the entry's kill label, or NULL */
    uintptr_t reg[sizeof gg_dw];
    uintptr_t resume_sp; /* out */
};
_Static_assert(offsetof(struct gg_walk, resume) == GG_WALK_RESUME && offsetof(struct gg_walk, reg) == GG_WALK_REGS,
               "armed_call.S offsets");
__attribute__((noreturn)) void gg_walk_resume(const struct gg_walk *w, intptr_t kind, uintptr_t sp) GG_API;

extern const char gg_ret_restore[], gg_ret_acquire[], gg_ret_ensure[] GG_API;
extern const char gg_kill_restore[], gg_kill_acquire[], gg_kill_ensure[] GG_API;
extern const char gg_ret_drop_restore[], gg_ret_drop_acquire[], gg_ret_drop_ensure[] GG_API;
extern const char gg_kill_drop_restore[], gg_kill_drop_acquire[], gg_kill_drop_ensure[] GG_API;
extern const char gg_ret_788[], gg_kill_788[] GG_API; /* <arch>/pep788_entries.S */

/* The assembly entries: where their call into CPython returns to, their kill label, and from
 * open_sp, their stack pointer at that call and the one their kill label expects (pointing at
 * the pushed rbx, resp. x19/x30). */
static const struct gg_entry_site {
    const char *ret, *kill;
    uint8_t call_off, resume_off;
} gg_sites[] = {
#if GG_X86_ASM
    /* API entries store their entry rsp as open_sp, drop-in ones entry rsp + 8. */
    {gg_ret_restore, gg_kill_restore, 8, 8},
    {gg_ret_acquire, gg_kill_acquire, 8, 8},
    {gg_ret_ensure, gg_kill_ensure, 24, 8}, /* also `out` and an alignment slot */
    {gg_ret_drop_restore, gg_kill_drop_restore, 16, 16},
    {gg_ret_drop_acquire, gg_kill_drop_acquire, 16, 16},
    {gg_ret_drop_ensure, gg_kill_drop_ensure, 16, 16},
    {gg_ret_788, gg_kill_788, 8, 8}, /* PEP 788's ensure below 3.15: the API's frame, no `out` */
#else
    /* open_sp is the entry's sp, API and drop-in alike (the drop-in trampolines only branch). */
    {gg_ret_restore, gg_kill_restore, 16, 16},
    {gg_ret_acquire, gg_kill_acquire, 16, 16},
    {gg_ret_ensure, gg_kill_ensure, 32, 16}, /* `out` below the pair */
    {gg_ret_drop_restore, gg_kill_drop_restore, 16, 16},
    {gg_ret_drop_acquire, gg_kill_drop_acquire, 16, 16},
    {gg_ret_drop_ensure, gg_kill_drop_ensure, 16, 16},
    {gg_ret_788, gg_kill_788, 16, 16}, /* PEP 788's ensure below 3.15: the API's frame, no `out` */
#endif
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
     * the entry (aarch64: a pointer-authentication signature already stripped), registers are
     * the entry's, and "CFA" is still the callee's, i.e. the entry's stack pointer at the call. */
    if ((uintptr_t)_Unwind_GetCFA(ctx) != w->open_sp - e->call_off)
        return _URC_END_OF_STACK; /* an entry frame that is not the open region's: never expected */
    w->resume_sp = w->open_sp - e->resume_off;
    const char *resume = e->kill;
    for (size_t i = 0; i < sizeof gg_dw; i++)
        w->reg[i] = (uintptr_t)_Unwind_GetGR(ctx, gg_dw[i]);
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
 * the walk finds nothing and the kill goes to the policy. */
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
