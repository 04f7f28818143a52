/* The floor for a forwarding layer: a separate shared object whose functions only call through a
 * function pointer to the real libpython function (one extra call, nothing else). At -O2 each is
 * `mov ptr(%rip),%rax; jmp *%rax`. Used by benches/pair.c. */
#include <stddef.h>

static void *(*p_save)(void);
static void (*p_restore)(void *);
static int (*p_ensure)(void);
static void (*p_release)(int);

void shim_init(void *save, void *restore, void *ensure, void *release) {
    p_save = (void *(*)(void))save;
    p_restore = (void (*)(void *))restore;
    p_ensure = (int (*)(void))ensure;
    p_release = (void (*)(int))release;
}

void *shim_save(void) { return p_save(); }
void shim_restore(void *ts) { p_restore(ts); }
int shim_ensure(void) { return p_ensure(); }
void shim_release(int st) { p_release(st); }
