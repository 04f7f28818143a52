/* Runs a program and holds its main thread, alone, at one instruction for a while: the other
 * threads run on. With it a test puts a host thread's call into a window of CPython's
 * finalization that lasts a few instructions (harness/tests/dropin.rs, "finalization window").
 *   hold_main ADDR GO HOLD_MS -- PROGRAM ARGS...
 * ADDR: hex address in the program's non-PIE executable (a -dbg build's symbol, read with nm).
 * When the main thread reaches ADDR for the first time: GO is created, the main thread stays
 * stopped HOLD_MS, then resumes untraced. Only the main thread is traced (no PTRACE_O_TRACECLONE),
 * with an x86-64 debug register (no code patched). Prints "hold_main: held" to stderr when it
 * held; exits with the program's status (128+N for a signal N), as a shell would. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DR(n) (offsetof(struct user, u_debugreg) + (n) * sizeof(long))

static __attribute__((unused)) int finish(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 125;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

#if defined(__x86_64__)
/* DR0 = addr; DR7: local enable of DR0, break on execution (R/W0 = 00, LEN0 = 00). */
static int arm(pid_t pid, unsigned long addr) {
    if (ptrace(PTRACE_POKEUSER, pid, DR(0), addr) == 0 && ptrace(PTRACE_POKEUSER, pid, DR(7), 1) == 0)
        return 1;
    perror("hold_main: debug registers");
    kill(pid, SIGKILL);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: hold_main ADDR GO HOLD_MS -- PROGRAM ARGS...\n");
        return 125;
    }
#if !defined(__x86_64__)
    fprintf(stderr, "hold_main: x86-64 only\n");
    return 125;
#else
    unsigned long addr = strtoul(argv[1], NULL, 16);
    const char *go = argv[2];
    long hold_ms = atol(argv[3]);
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execvp(argv[5], argv + 5); /* stops with SIGTRAP once the new image is loaded */
        perror("hold_main: exec");
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st)) return finish(pid);
    /* Exec events instead of a plain SIGTRAP (a wrapper may exec the program); the program dies
     * with hold_main. */
    ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    if (!arm(pid, addr)) return finish(pid);
    int sig = 0;
    for (;;) {
        if (ptrace(PTRACE_CONT, pid, 0, sig) != 0) return finish(pid);
        if (waitpid(pid, &st, 0) < 0) return 125;
        if (WIFEXITED(st)) return WEXITSTATUS(st);
        if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
        sig = WSTOPSIG(st);
        if (sig == SIGTRAP && (st >> 16) == PTRACE_EVENT_EXEC) {
            sig = 0; /* a new image starts with the debug registers cleared */
            if (!arm(pid, addr)) return finish(pid);
            continue;
        }
        if (sig != SIGTRAP) continue; /* the program's own signal: delivered */
        if (!(ptrace(PTRACE_PEEKUSER, pid, DR(6), 0) & 1)) continue;
        sig = 0;
        break;
    }
    /* Held: the main thread is stopped at ADDR, the others run. */
    int fd = open(go, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    fprintf(stderr, "hold_main: held\n");
    struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    ptrace(PTRACE_POKEUSER, pid, DR(7), 0);
    ptrace(PTRACE_POKEUSER, pid, DR(6), 0);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return finish(pid);
#endif
}
