/* PEP 788 (CPython 3.15+): the call that gilgate_gilstate_ensure makes with the kill jump armed.
 * armed.c's gg_armed_call_p arms the jump around a `void (*)(void *)`; this trampoline adapts
 * PyThreadState_Ensure(guard) -> token to that shape, so every frame the jump may skip stays
 * C or CPython (no Rust frame in between). See src/pep788.rs. */
#define GG_API __attribute__((visibility("hidden")))

struct gg788_call {
    void *(*ensure)(void *guard); /* PyThreadState_Ensure */
    void *guard;                  /* PyInterpreterGuard * */
    void *token;                  /* out: PyThreadStateToken *, NULL on failure */
};

GG_API void gg788_ensure_tramp(void *p) {
    struct gg788_call *c = (struct gg788_call *)p;
    c->token = c->ensure(c->guard);
}
