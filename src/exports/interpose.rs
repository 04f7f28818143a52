//! Interposed libc functions through which CPython kills or parks a thread during finalization:
//! `pthread_exit` (3.8-3.13, via PyThread_exit_thread) and `pause` (3.14+, `_PyThreadState_HangThread`).
//! CPython reaches both through the PLT in every build measured, so an earlier definition in the
//! lookup scope (gilgate linked ahead of libc, or LD_PRELOAD) wins.
//!
//! These run inside CPython and libc paths on threads that may never have touched gilgate:
//! the unarmed path does no allocation and takes no lock before forwarding.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::*};

use crate::boundary::{gg_kill_hook, KILL_PAUSE, KILL_PTHREAD_EXIT};

static REAL_PTHREAD_EXIT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_PAUSE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
/// Whether our `pthread_exit` is the one the process's global scope resolves to.
static INTERPOSING: AtomicBool = AtomicBool::new(false);

/// Library constructor: resolve the real functions before any thread can need them.
pub(crate) fn init() {
    let pe = crate::cpython::lookup(b"pthread_exit\0", std::ptr::null_mut());
    let pa = crate::cpython::lookup(b"pause\0", std::ptr::null_mut());
    REAL_PTHREAD_EXIT.store(pe, Release);
    REAL_PAUSE.store(pa, Release);
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    let seen = unsafe { libc::dlsym(libc::RTLD_DEFAULT, b"pthread_exit\0".as_ptr() as *const _) };
    // Compare the defining object, not the address: our own reference to `pthread_exit` goes
    // through the GOT and may already be libc's.
    let ours = !seen.is_null() && crate::cpython::object_base(seen) == crate::cpython::own_base();
    INTERPOSING.store(ours, Release);
}

pub(crate) fn interposing() -> bool {
    INTERPOSING.load(Acquire)
}

pub(crate) fn real_pthread_exit() -> unsafe extern "C-unwind" fn(*mut c_void) -> ! {
    let p = REAL_PTHREAD_EXIT.load(Acquire);
    if p.is_null() {
        crate::log::Line::new().s("fatal: real pthread_exit not found").emit();
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    }
    // SAFETY: p is libc's pthread_exit, declared noreturn by glibc.
    unsafe { std::mem::transmute(p) }
}

/// gilgate's `pthread_exit`. Inside an armed gated entry, jumps back to it (the entry returns
/// GILGATE_ERR_FINALIZING, or applies the policy in drop-in mode); CPython killing a thread
/// inside a gated region or while it finalizes gets the policy (by default: parked, whatever
/// the thread's kind); everywhere else, exactly libc's pthread_exit.
///
/// # Safety
/// Same contract as libc's pthread_exit.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C-unwind" fn pthread_exit(_retval: *mut c_void) -> ! {
    core::arch::naked_asm!(tramp!(1), f = sym pthread_exit_impl)
}

extern "C-unwind" fn pthread_exit_impl(retval: *mut c_void, ra: usize, _sp: usize) -> ! {
    // SAFETY: returns only when this thread is not armed; otherwise jumps to the armed entry
    // (this frame owns nothing that needs dropping).
    unsafe { gg_kill_hook(KILL_PTHREAD_EXIT) };
    // The panic boundary covers gilgate's own work only: the real pthread_exit below must run
    // outside any catch (its forced unwind must not meet one). A panic means "not ours".
    let mut hit = ffi_boundary!(finalization_kill(ra, true));
    if matches!(hit, Hit::No) && ffi_boundary!(may_kill_unseen(ra)) {
        hit = ffi_boundary!(await_finalization(ra));
    }
    ffi_boundary!(match hit {
        Hit::Host => crate::policy::apply("PyThread_exit_thread", "CPython is killing a host thread (finalizing)"),
        Hit::CPython => {
            let _ = crate::policy::cpython_thread("PyThread_exit_thread");
        }
        Hit::No => {}
    });
    // SAFETY: the caller's own pthread_exit call (also a parked thread's, once released).
    unsafe { real_pthread_exit()(retval) }
}

enum Hit {
    /// Not a finalization kill (also the value if gilgate panicked deciding).
    No,
    /// A host thread (gated or not).
    Host,
    /// A thread CPython created (`threading`), or the main thread of a `python` executable.
    CPython,
}

impl crate::OnPanic for Hit {
    fn on_panic() -> Self {
        Hit::No
    }
}

/// Is this `pthread_exit`/`pause` CPython ending or parking a thread because it finalizes
/// (or, for `pthread_exit` only, ends the interpreter of a thread inside a gated region;
/// `pause` is also `signal.pause()`, legitimately called inside a region)? Only CPython's own
/// call sites count: a program's own `pthread_exit` is never touched. Reads two runtime fields
/// and thread-local words: no allocation, no lock.
#[inline]
fn finalization_kill(ra: usize, region_counts: bool) -> Hit {
    if !crate::origin::in_cpython(ra) {
        return Hit::No;
    }
    let in_region = region_counts && crate::gate::my_slot_if_any().map_or(false, |s| s.depth.load(Relaxed) > 0);
    if !in_region {
        let Some(api) = crate::cpython::api_if_resolved() else { return Hit::No };
        if api.runtime_alive().is_ok() {
            return Hit::No;
        }
    }
    // Under `park` both kinds are parked alike (policy::apply and policy::cpython_thread): no
    // stack walk to tell them apart, which would take CPU (and, before glibc 2.35, the loader
    // lock `exit()` needs) while the main thread is finishing its exit.
    if in_region || crate::policy::current() == crate::policy::GILGATE_POLICY_PARK
        || crate::origin::thread_kind() == crate::origin::HOST
    {
        Hit::Host
    } else {
        Hit::CPython
    }
}

/// gilgate's `pause`: inside an armed gated entry (CPython 3.14+ parking a thread that tried to
/// attach during finalization), jumps back and the entry fails; a host thread parked by CPython
/// outside one gets the policy; otherwise libc's pause.
///
/// # Safety
/// Same contract as libc's pause.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn pause() -> c_int {
    core::arch::naked_asm!(tramp!(0), f = sym pause_impl)
}

extern "C-unwind" fn pause_impl(ra: usize, _sp: usize) -> c_int {
    // SAFETY: as in pthread_exit_impl.
    unsafe { gg_kill_hook(KILL_PAUSE) };
    let mut hit = ffi_boundary!(finalization_kill(ra, false));
    if matches!(hit, Hit::No) && ffi_boundary!(may_hang_unseen(ra)) {
        match ffi_boundary!(watch(ra)) {
            Watch::Signal => return -1, // errno is EINTR, as pause() leaves it
            Watch::Finalizing(h) => hit = h,
            Watch::Failed => {}
        }
    }
    if !matches!(hit, Hit::No) {
        crate::park::cpython_parks();
    }
    ffi_boundary!(match hit {
        Hit::Host => crate::policy::apply("_PyThreadState_HangThread", "CPython is parking a host thread forever (finalizing)"),
        Hit::CPython => {
            let _ = crate::policy::cpython_thread("_PyThreadState_HangThread");
        }
        Hit::No => {}
    });
    let p = REAL_PAUSE.load(Acquire);
    if p.is_null() {
        crate::park::sleep_forever();
    }
    // SAFETY: p is libc's pause.
    let f: unsafe extern "C" fn() -> c_int = unsafe { std::mem::transmute(p) };
    // SAFETY: the caller's own pause call.
    unsafe { f() }
}

/// CPython calls `pause()` from its own code with the runtime flags still saying alive:
/// `signal.pause()`, or a hang (3.14+, and builds that backported it, e.g. Debian's 3.13.18)
/// whose cause the runtime flags do not show yet: `_PyThreadState_MustExit` reading the
/// interpreter's finalizing state, set a few instructions before the runtime's (3.12-3.14.0);
/// 3.15's `PyGILState_Ensure` hanging a thread without a thread state once the main interpreter
/// refuses new guards, also just before the runtime's flag. Only under `park` and `hang`, whose
/// answer is a wait too: under `abort` and `exit` such a thread keeps libc's `pause()`, as
/// without gilgate.
fn may_hang_unseen(ra: usize) -> bool {
    crate::origin::in_cpython(ra)
        && crate::cpython::api_if_resolved().is_some()
        && matches!(crate::policy::current(), crate::policy::GILGATE_POLICY_PARK | crate::policy::GILGATE_POLICY_HANG)
}

enum Watch {
    /// A signal handler ran: `pause()` returns -1 with `EINTR`.
    Signal,
    /// The runtime now shows finalization: the thread is treated as if it had shown at once.
    Finalizing(Hit),
    /// The timed wait itself failed: fall back to libc's `pause()`.
    Failed,
}

impl crate::OnPanic for Watch {
    fn on_panic() -> Self {
        Watch::Failed
    }
}

/// Wait as `pause()` does (until a signal handler runs), but in timed slices, re-checking the
/// runtime after each: once it shows finalization, the thread is one CPython hung (or one that
/// `signal.pause()` would leave waiting forever now: raw CPython hangs or ends it at its next
/// attach), and it is parked like any other. A slice starts at 10 ms (the windows above are a
/// few instructions long) and doubles up to 1 s (a `signal.pause()` in a long-running program
/// wakes once a second, to no one's notice).
fn watch(ra: usize) -> Watch {
    let mut ms: i64 = 10;
    loop {
        let ts = libc::timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 };
        // SAFETY: ppoll with no descriptors, a valid timeout and no signal mask change: a
        // sleep that, like pause(), ends early with EINTR when a signal handler runs.
        let r = unsafe { libc::ppoll(std::ptr::null_mut(), 0, &ts, std::ptr::null()) };
        if r < 0 {
            // SAFETY: reads this thread's errno.
            return if unsafe { *libc::__errno_location() } == libc::EINTR { Watch::Signal } else { Watch::Failed };
        }
        let hit = finalization_kill(ra, false);
        if !matches!(hit, Hit::No) {
            if crate::config::get().verbose {
                let depth = crate::gate::my_slot_if_any().map_or(0, |s| s.depth.load(Relaxed) as u64);
                crate::log::Line::new().s("thread ").u(crate::log::tid())
                    .s(" waited in CPython's pause() before the runtime showed finalization (a hang CPython decided first; region depth ")
                    .u(depth).s(")").emit();
            }
            return Watch::Finalizing(hit);
        }
        ms = (ms * 2).min(1000);
    }
}

/// CPython 3.12 and 3.13 end a host thread with `pthread_exit` once the *interpreter* shows
/// finalization (`_PyThreadState_MustExit` falls back to it), a few instructions before the
/// runtime's flag is set. A host thread never reaches CPython's `pthread_exit` otherwise (its
/// threads end by returning, not through `PyThread_exit_thread`), short of calling that function
/// itself.
fn may_kill_unseen(ra: usize) -> bool {
    crate::origin::in_cpython(ra)
        && crate::origin::thread_kind() == crate::origin::HOST
        && crate::cpython::api_if_resolved().map_or(false, |a| (3, 12) <= a.version && a.version < (3, 14))
}

/// Wait (at most 1 s, in slices from 1 ms) for the runtime to show the finalization CPython
/// already acted on; the kill is then treated as if it had shown at once. If it never shows, the
/// thread called `PyThread_exit_thread` itself: it gets libc's `pthread_exit`, late.
fn await_finalization(ra: usize) -> Hit {
    let mut waited: i64 = 0;
    let mut ms: i64 = 1;
    while waited < 1000 {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: ms * 1_000_000 };
        // SAFETY: a plain sleep with a valid timespec; an early return (signal) only re-checks sooner.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        waited += ms;
        let hit = finalization_kill(ra, true);
        if !matches!(hit, Hit::No) {
            if crate::config::get().verbose {
                crate::log::Line::new().s("thread ").u(crate::log::tid())
                    .s(" reached CPython's pthread_exit before the runtime showed finalization (a kill CPython decided first)").emit();
            }
            return hit;
        }
        ms = (ms * 2).min(100);
    }
    Hit::No
}
