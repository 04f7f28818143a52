//! Parking a thread that cannot be told (CPython 3.14's own answer, gh-87135, given to every
//! version), and the watchdog that keeps a park from changing how the process ends.
//!
//! A parked thread never returns and never unwinds: no forced unwind through C++ destructors or
//! Rust drops without the GIL (the crash at exit of 3.8–3.13). But it also keeps whatever its
//! callers held, and on 3.8–3.13 a program may depend on CPython's `pthread_exit` ending the
//! thread: a join that returns, an RAII lock released by the forced unwind, a `thread_local`
//! destructor. So the first park starts a watchdog thread that looks, every `POLL_MS`, at what
//! the main thread (whose return or `exit` ends the process) is blocked in
//! (`/proc/self/task/<pid>/syscall`):
//! - on 3.8–3.13, once the main thread has been blocked in an untimed futex wait for two polls
//!   in a row, the parked threads are released into the real `pthread_exit`, which is what raw
//!   CPython did to them at once: the process then ends exactly as it would without gilgate,
//!   only later (a wait on a thread that ended holding a mutex is named, below);
//! - when the main thread waits, without a timeout, for a glibc mutex whose owner (`__owner`, the
//!   third int; the word itself for PI mutexes) is parked, or was released holding it, or owned by
//!   a thread blocked the same way, or joins a parked thread (the wait is on a word of its
//!   descriptor, whose address the park recorded), the process can never end: seen twice, one
//!   line names it and the process aborts. Raw 3.14 hangs there forever.
//!
//! Waits it cannot attribute (condition variables, semaphores, Python locks, timed waits) and
//! workers blocked forever (they do not keep the process alive) are left alone.
//!
//! No allocation and no lock before a park is certain; the parked thread waits on a futex word
//! of its own entry; the watchdog, on its own thread, uses raw syscalls and static buffers.
//!
//! Calibration. Under qemu-user (arm64 images on x86-64 hosts through binfmt_misc) the file shows
//! the HOST syscall qemu's thread is blocked in (x86-64 `futex` 202, not aarch64's 98) and the host
//! address of the word (the guest's plus qemu's `guest_base`, 0 by default); the op and the other
//! arguments are the guest's (qemu-aarch64 7.2: `FUTEX_WAIT_BITSET` of a join, `LOCK_PI` of a PI
//! mutex pass through). So before trusting what the main thread waits in, the watchdog learns both
//! from a parked thread, whose wait it knows: `FUTEX_WAIT|FUTEX_PRIVATE_FLAG`, value
//! `PARKED_STATE`, no timeout, on its entry's `state`. The learned address offset is subtracted
//! before comparing with recorded pointers (the descriptors a join waits on); `/proc/self/mem` is
//! read at the reported (host) address. Until calibrated the native values are used (natively a
//! parked thread shows exactly them, so nothing changes there); a reading that differs from them
//! is trusted only when seen twice.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, AtomicUsize, Ordering::*};

const MAX: usize = 256;
const NAME: usize = 40;
const POLL_MS: u64 = 100;

/// Parked, waiting; released by the watchdog (3.8–3.13); exited after its release.
const PARKED_STATE: u32 = 0;
const RELEASED: u32 = 1;

struct Entry {
    tid: AtomicI32,
    /// `pthread_self()`: the thread's descriptor, where a joiner waits.
    pthread: AtomicUsize,
    /// PARKED_STATE or RELEASED: the futex word the parked thread waits on.
    state: AtomicU32,
    /// CPython 3.8–3.13: raw CPython would have ended this thread with `pthread_exit`.
    releasable: AtomicBool,
    name_len: AtomicUsize,
    name: [AtomicU8; NAME],
}

#[allow(clippy::declare_interior_mutable_const)]
const E: Entry = {
    #[allow(clippy::declare_interior_mutable_const)]
    const B: AtomicU8 = AtomicU8::new(0);
    Entry {
        tid: AtomicI32::new(0),
        pthread: AtomicUsize::new(0),
        state: AtomicU32::new(PARKED_STATE),
        releasable: AtomicBool::new(false),
        name_len: AtomicUsize::new(0),
        name: [B; NAME],
    }
};
static PARKED: [Entry; MAX] = [E; MAX];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);
/// CPython parked one of its threads itself (`pause()`, 3.14+ and builds that backported it):
/// raw CPython would end no thread, so none is released.
static CPYTHON_PARKS: AtomicBool = AtomicBool::new(false);

/// CPython's finalization reached `pause()` (its own park) on some thread.
pub(crate) fn cpython_parks() {
    CPYTHON_PARKS.store(true, Relaxed);
}

/// Number of threads parked so far (every kind, every cause).
pub(crate) fn parked() -> u64 {
    COUNT.load(Relaxed) as u64
}

/// Park the calling thread; `what` names the call that parked it (the watchdog's line). Returns
/// only when the watchdog releases the thread (3.8–3.13, see the module docs): the caller then
/// ends it with the real `pthread_exit`, outside any panic boundary.
pub(crate) fn park(what: &str) {
    let tid = crate::log::tid() as i32;
    // A parked thread's region never ends: it must not hold later drains.
    if let Some(slot) = crate::gate::my_slot_if_any() {
        crate::gate::close_region(slot);
    }
    let releasable = crate::cpython::api_if_resolved().map_or(false, |a| a.version < (3, 14));
    let i = COUNT.fetch_add(1, AcqRel);
    if crate::config::get().verbose {
        crate::log::Line::new().s("parked thread ").u(tid as u64).s(" in ").s(what)
            .s(" (the interpreter is finalizing: it can never run again)").emit();
    }
    if i >= MAX {
        sleep_forever(); // not recorded: never released, never named
    }
    let e = &PARKED[i];
    let n = what.len().min(NAME);
    for (d, &b) in e.name.iter().zip(&what.as_bytes()[..n]) {
        d.store(b, Relaxed);
    }
    e.name_len.store(n, Relaxed);
    // SAFETY: pthread_self has no preconditions.
    e.pthread.store(unsafe { libc::pthread_self() } as usize, Relaxed);
    e.releasable.store(releasable, Relaxed);
    e.state.store(PARKED_STATE, Relaxed); // an entry is reused only after fork()
    e.tid.store(tid, Release); // published last: a non-zero tid means a complete entry
    if crate::config::get().watchdog && !WATCHING.swap(true, AcqRel) {
        start_watchdog();
    }
    while e.state.load(Acquire) == PARKED_STATE {
        // SAFETY: a futex wait on our own static word while it holds PARKED_STATE; spurious
        // wake-ups and EINTR loop back.
        unsafe {
            libc::syscall(libc::SYS_futex, e.state.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                PARKED_STATE, std::ptr::null::<libc::timespec>());
        }
    }
    if crate::config::get().verbose {
        crate::log::Line::new().s("released thread ").u(tid as u64)
            .s(" to pthread_exit (as CPython 3.8-3.13 end it): the main thread waits").emit();
    }
}

pub(crate) fn sleep_forever() -> ! {
    loop {
        // SAFETY: plain sleep; not our interposed pause, so never caught by an armed entry.
        unsafe {
            let ts = libc::timespec { tv_sec: 3600, tv_nsec: 0 };
            libc::nanosleep(&ts, std::ptr::null_mut());
        }
    }
}

/// `pthread_atfork` child handler: the parked threads and the watchdog do not exist in a child.
pub(crate) extern "C" fn after_fork_child() {
    for e in PARKED.iter().take(COUNT.load(Relaxed).min(MAX)) {
        e.tid.store(0, Relaxed);
    }
    COUNT.store(0, Relaxed);
    WATCHING.store(false, Relaxed);
}

/// The watchdog runs on a thread of its own (a parked thread may have a small stack, and may be
/// released); detached, it never keeps the process alive.
fn start_watchdog() {
    extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
        watch()
    }
    // SAFETY: a detached thread running `run`, which never returns; attr is initialized and
    // destroyed here.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut th: libc::pthread_t = 0;
        if libc::pthread_attr_init(&mut attr) != 0 {
            return;
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        libc::pthread_create(&mut th, &attr, run, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    Mutex,
    Join,
}

/// What the main thread waits for at one poll.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    addr: usize,
    /// The first thread it waits for (mutex owner or joined thread), if the futex word says.
    on: Option<(i32, Wait)>,
}

/// How the kernel shows a futex wait to this process: the syscall number and the offset from
/// the address the process uses to the one shown (see the module docs, "Calibration").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Calib {
    nr: u64,
    offset: usize,
}

/// What `/proc/self/task/T/syscall` shows natively for a futex wait.
const NATIVE: Calib = Calib { nr: libc::SYS_futex as u64, offset: 0 };

/// The watchdog's calibration: the one in use, and a non-native candidate seen once.
struct Calibration {
    cal: Calib,
    done: bool,
    candidate: Option<Calib>,
}

impl Calibration {
    const fn new() -> Self {
        Calibration { cal: NATIVE, done: false, candidate: None }
    }

    /// Look at a parked thread still waiting (at most one look per poll until done).
    fn look(&mut self) {
        if self.done {
            return;
        }
        let Some(e) = PARKED.iter().take(COUNT.load(Acquire).min(MAX))
            .find(|e| e.tid.load(Acquire) != 0 && e.state.load(Acquire) == PARKED_STATE) else { return };
        let mut text = [0u8; 256];
        let Some(n) = read_syscall(e.tid.load(Acquire), &mut text) else { return };
        self.learn(&text[..n], e.state.as_ptr() as usize);
    }

    /// One reading of a parked thread's line; `word`: its `state`.
    fn learn(&mut self, line: &[u8], word: usize) {
        let Some(c) = parked_wait(line, word) else {
            self.candidate = None;
            return;
        };
        // The native reading is what the park's own syscall shows: trusted at once. Another one
        // only twice in a row (a thread between its publication and its wait is in another call).
        if c == NATIVE || self.candidate == Some(c) {
            self.cal = c;
            self.done = true;
        } else {
            self.candidate = Some(c);
        }
    }
}

/// The calibration a parked thread's line gives, if it shows the park's wait: on `word`
/// (`FUTEX_WAIT`, private or not as the kernel shows it), value `PARKED_STATE`, no timeout,
/// at a page-aligned offset (qemu's `guest_base` is).
fn parked_wait(line: &[u8], word: usize) -> Option<Calib> {
    let (nr, a) = parse_syscall(line)?;
    let offset = a[0].wrapping_sub(word);
    (a[1] & !(libc::FUTEX_PRIVATE_FLAG as usize) == libc::FUTEX_WAIT as usize
        && a[2] as u32 == PARKED_STATE && a[3] == 0 && offset % 4096 == 0)
        .then_some(Calib { nr, offset })
}

fn watch() -> ! {
    let mut prev: Option<Seen> = None;
    let mut cal = Calibration::new();
    loop {
        // SAFETY: plain sleep.
        unsafe {
            let ts = libc::timespec { tv_sec: 0, tv_nsec: (POLL_MS * 1_000_000) as i64 };
            libc::nanosleep(&ts, std::ptr::null_mut());
        }
        ffi_boundary!({
            cal.look();
            poll(&mut prev, cal.cal)
        });
    }
}

/// One look at the main thread (see the module docs).
fn poll(prev: &mut Option<Seen>, cal: Calib) {
    // SAFETY: getpid has no preconditions.
    let main = unsafe { libc::getpid() };
    let seen = untimed_futex(main, cal)
        .map(|(addr, op, val)| Seen { addr, on: waits_for(main, addr, op, val, cal) });
    let confirmed = seen.is_some() && seen == *prev;
    *prev = seen;
    let Some(seen) = seen.filter(|_| confirmed) else { return };
    if release_all() {
        *prev = None; // give them time to end; look again
        return;
    }
    if let Some((on, wait)) = seen.on {
        if let Some((end, hops)) = chain_end(on, cal) {
            // The address the program knows (the guest's under qemu-user).
            report(main, seen.addr.wrapping_sub(cal.offset), on, wait, end, hops);
        }
    }
}

/// Release every parked thread raw CPython would have ended (3.8–3.13). True if any.
fn release_all() -> bool {
    if CPYTHON_PARKS.load(Relaxed) {
        return false;
    }
    let mut any = false;
    for e in PARKED.iter().take(COUNT.load(Acquire).min(MAX)) {
        if e.tid.load(Acquire) != 0 && e.releasable.load(Relaxed)
            && e.state.compare_exchange(PARKED_STATE, RELEASED, AcqRel, Relaxed).is_ok()
        {
            // SAFETY: waking waiters on our own static futex word.
            unsafe { libc::syscall(libc::SYS_futex, e.state.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
            any = true;
        }
    }
    any
}

fn parked_index(tid: i32) -> Option<usize> {
    (0..COUNT.load(Acquire).min(MAX)).find(|&i| PARKED[i].tid.load(Acquire) == tid)
}

/// Follow mutex waits from `tid` to a parked (or released) thread: (its index, hops).
fn chain_end(mut tid: i32, cal: Calib) -> Option<(usize, u32)> {
    for hops in 0..8 {
        if let Some(i) = parked_index(tid) {
            return Some((i, hops));
        }
        let (addr, op, val) = untimed_futex(tid, cal)?;
        match waits_for(tid, addr, op, val, cal)? {
            (next, Wait::Mutex) => tid = next,
            (_, Wait::Join) => return None,
        }
    }
    None
}

/// Thread `tid`'s untimed futex wait, if it is in one: (address as shown, op without flags,
/// value).
fn untimed_futex(tid: i32, cal: Calib) -> Option<(usize, usize, i32)> {
    let mut text = [0u8; 256];
    let n = read_syscall(tid, &mut text)?;
    futex_wait_of(&text[..n], cal)
}

/// An untimed futex wait in one syscall line, the futex's number being `cal.nr`.
fn futex_wait_of(line: &[u8], cal: Calib) -> Option<(usize, usize, i32)> {
    let (nr, a) = parse_syscall(line)?;
    if nr != cal.nr {
        return None;
    }
    // Minus FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME; a timed wait ends by itself: not ours.
    let op = a[1] & !(128 | 256);
    (matches!(op, 0 | 6 | 9 | 13) && a[3] == 0).then_some((a[0], op, a[2] as u32 as i32))
}

/// `/proc/self/task/T/syscall`: "NR a0 a1 a2 a3 a4 a5 sp pc" (hex), "running", or "-1 sp pc".
fn read_syscall(tid: i32, text: &mut [u8; 256]) -> Option<usize> {
    let mut path = [0u8; 64];
    let mut p = 0;
    for part in [&b"/proc/self/task/"[..], itoa(tid as u64, &mut [0u8; 20]), b"/syscall\0"] {
        path[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    read_file(&path, text)
}

/// A syscall line's number and first four arguments.
fn parse_syscall(line: &[u8]) -> Option<(u64, [usize; 4])> {
    let mut it = line.split(|&b| b == b' ' || b == b'\n').filter(|w| !w.is_empty());
    let nr = crate::config::parse_u64(it.next()?)?;
    let mut a = [0usize; 4];
    for v in a.iter_mut() {
        *v = hex(it.next()?)?;
    }
    Some((nr, a))
}

/// The thread a futex wait waits for, when the word says so exactly: a glibc mutex (normal,
/// error-checking, recursive: the waiter expects 2 and `__owner` names the owner; PI: the word
/// itself), or a join of a parked thread (a word of the descriptor the park recorded). `addr` is
/// as shown: read at it (`/proc/self/mem` is the host's memory under qemu-user), compared with
/// recorded pointers less the calibrated offset.
fn waits_for(waiter: i32, addr: usize, op: usize, val: i32, cal: Calib) -> Option<(i32, Wait)> {
    if matches!(op, 6 | 13) {
        let owner = read_i32(addr)? & 0x3fff_ffff;
        return (owner > 0 && owner != waiter).then_some((owner, Wait::Mutex));
    }
    for e in PARKED.iter().take(COUNT.load(Acquire).min(MAX)) {
        let ptid = e.tid.load(Acquire);
        let base = e.pthread.load(Relaxed);
        let at = addr.wrapping_sub(cal.offset);
        if ptid != 0 && at >= base && at < base + 4096 {
            return Some((ptid, Wait::Join));
        }
    }
    if val == 2 && read_i32(addr)? == 2 {
        let owner = read_i32(addr + 8)?;
        return (owner > 0 && owner != waiter).then_some((owner, Wait::Mutex));
    }
    None
}

#[cold]
fn report(main: i32, addr: usize, on: i32, wait: Wait, end: usize, hops: u32) {
    let e = &PARKED[end];
    let mut name = [0u8; NAME];
    let n = e.name_len.load(Relaxed).min(NAME);
    for (d, s) in name.iter_mut().zip(&e.name) {
        *d = s.load(Relaxed);
    }
    let what = std::str::from_utf8(&name[..n]).unwrap_or("?");
    let ptid = e.tid.load(Relaxed) as u64;
    let released = e.state.load(Acquire) == RELEASED;
    let mut l = crate::log::Line::new();
    l.s("deadlock: thread ").u(main as u64);
    let mut comm = [0u8; 32];
    if let Some(c) = thread_name(main, &mut comm) {
        l.s(" (").s(c).s(")");
    }
    match wait {
        Wait::Mutex => l.s(" waits for a mutex (0x").s(hex_str(addr, &mut [0u8; 16])).s(") held by thread "),
        Wait::Join => l.s(" waits to join thread "),
    };
    l.u(on as u64);
    if hops > 0 {
        l.s(", which waits (").u(hops as u64).s(" step(s)) for thread ").u(ptid);
    }
    l.s(", which was parked in ").s(what).s(" because the interpreter was finalizing");
    if released {
        l.s(", then ended with pthread_exit (as CPython 3.8-3.13 end it) without unlocking it");
    } else {
        l.s(" and will never run again");
    }
    l.s("; aborting (without gilgate this process would hang here)");
    l.emit();
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

fn thread_name(tid: i32, out: &mut [u8; 32]) -> Option<&str> {
    let mut path = [0u8; 64];
    let mut p = 0;
    for part in [&b"/proc/self/task/"[..], itoa(tid as u64, &mut [0u8; 20]), b"/comm\0"] {
        path[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    let n = read_file(&path, out)?;
    let s = &out[..n];
    let s = &s[..s.iter().position(|&b| b == b'\n').unwrap_or(n)];
    std::str::from_utf8(s).ok()
}

fn read_file(path: &[u8], out: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated (built above), out is our buffer.
    unsafe {
        let fd = libc::open(path.as_ptr() as *const _, libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, out.as_mut_ptr() as *mut _, out.len());
        libc::close(fd);
        (n > 0).then_some(n as usize)
    }
}

/// Read 4 bytes of this process's memory without faulting on an unmapped address.
fn read_i32(addr: usize) -> Option<i32> {
    let mut v = [0u8; 4];
    // SAFETY: pread on /proc/self/mem reports an unmapped address as an error instead of faulting.
    unsafe {
        let fd = libc::open(b"/proc/self/mem\0".as_ptr() as *const _, libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::pread(fd, v.as_mut_ptr() as *mut _, 4, addr as libc::off_t);
        libc::close(fd);
        (n == 4).then(|| i32::from_ne_bytes(v))
    }
}

fn hex(s: &[u8]) -> Option<usize> {
    let s = s.strip_prefix(b"0x")?;
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0usize, |a, &b| Some(a * 16 + (b as char).to_digit(16)? as usize))
}

fn itoa(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

fn hex_str(mut v: usize, buf: &mut [u8; 16]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    // SAFETY: ASCII hex digits only.
    unsafe { std::str::from_utf8_unchecked(&buf[i..]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_numbers() {
        assert_eq!(hex(b"0x7f12ab"), Some(0x7f12ab));
        assert_eq!(hex(b"0x0"), Some(0));
        assert_eq!(hex(b"12"), None);
        assert_eq!(hex(b"0xzz"), None);
        assert_eq!(itoa(1234, &mut [0u8; 20]), b"1234");
        assert_eq!(hex_str(0xdead, &mut [0u8; 16]), "dead");
    }

    // Lines read from /proc/self/task/T/syscall by a probe (2026-12-06): an aarch64 program under
    // qemu-aarch64 7.2 on x86-64 (host futex 202), default guest_base and `-B 0x1000000000`.
    const QEMU: u64 = 202;
    const QEMU_PARK: &[u8] = b"202 0x5500020148 0x80 0x0 0x0 0x0 0x30 0x7fbff97bbcf0 0x7fbffa22bef6\n";
    const QEMU_JOIN_B: &[u8] = b"202 0x650323e270 0x109 0x48d 0x0 0x0 0xffffffff 0x7f920357acf0 0x7f920402bef6\n";
    const QEMU_PI: &[u8] = b"202 0x55000200e0 0x86 0x0 0x0 0x0 0x527e1a0 0x7f9203539cf0 0x7f920402bef6\n";

    #[test]
    fn calibrates_from_a_parked_threads_wait() {
        // Natively: the park's own syscall, trusted at once.
        let native = format!("{} 0x7f0000001000 0x80 0x0 0x0 0x0 0x0 0x7ffd0 0x7f1\n", libc::SYS_futex);
        let mut c = Calibration::new();
        c.learn(native.as_bytes(), 0x7f00_0000_1000);
        assert!(c.done);
        assert_eq!(c.cal, NATIVE);
        assert_eq!(NATIVE, Calib { nr: libc::SYS_futex as u64, offset: 0 });

        // qemu-user, guest_base 0: the host number (on x86-64 the native one: trusted at once),
        // else trusted when seen twice in a row.
        let mut c = Calibration::new();
        c.learn(QEMU_PARK, 0x55_0002_0148);
        assert_eq!(c.done, libc::SYS_futex as u64 == QEMU);
        c.learn(QEMU_PARK, 0x55_0002_0148);
        assert!(c.done);
        assert_eq!(c.cal, Calib { nr: QEMU, offset: 0 });

        // guest_base 0x1000000000: the offset is learned, twice in a row.
        let based: &[u8] = b"202 0x6500020148 0x80 0x0 0x0 0x0 0x30 0x7f9 0x7f9\n";
        let mut c = Calibration::new();
        c.learn(based, 0x55_0002_0148);
        assert!(!c.done);
        assert_eq!(c.cal, NATIVE);
        c.learn(based, 0x55_0002_0148);
        assert!(c.done);
        assert_eq!(c.cal, Calib { nr: QEMU, offset: 0x10_0000_0000 });

        // Not the park's wait: another op, value, a timeout, an offset off the page, not a
        // syscall at all.
        assert_eq!(parked_wait(QEMU_PI, 0x55_0002_00e0), None);
        assert_eq!(parked_wait(b"202 0x5500020148 0x80 0x1 0x0 0x0 0x0 0x1 0x1\n", 0x55_0002_0148), None);
        assert_eq!(parked_wait(b"202 0x5500020148 0x80 0x0 0x7ff0 0x0 0x0 0x1 0x1\n", 0x55_0002_0148), None);
        assert_eq!(parked_wait(QEMU_PARK, 0x55_0002_0140), None);
        assert_eq!(parked_wait(b"running\n", 0x55_0002_0148), None);
        assert_eq!(parked_wait(b"-1 0x7ffd0 0x7f1\n", 0x55_0002_0148), None);

        // A different reading in between starts over.
        let mut c = Calibration::new();
        c.learn(based, 0x55_0002_0148);
        c.learn(b"running\n", 0x55_0002_0148);
        c.learn(based, 0x55_0002_0148);
        assert!(!c.done);
        c.learn(based, 0x55_0002_0148);
        assert!(c.done);
    }

    #[test]
    fn reads_waits_with_the_learned_number() {
        let q = Calib { nr: QEMU, offset: 0x10_0000_0000 };
        // A join (FUTEX_WAIT_BITSET|PRIVATE|CLOCK_REALTIME, untimed): the address as shown.
        assert_eq!(futex_wait_of(QEMU_JOIN_B, q), Some((0x65_0323_e270, 9, 0x48d)));
        assert_eq!(futex_wait_of(QEMU_PI, q), Some((0x55_0002_00e0, 6, 0)));
        // With the native number the host's futex is another syscall (on aarch64 202 is
        // accept; on x86-64 the native number is 202 itself).
        if libc::SYS_futex as u64 != QEMU {
            assert_eq!(futex_wait_of(QEMU_PARK, NATIVE), None);
        }
        // A timed wait is not ours.
        assert_eq!(futex_wait_of(b"202 0x5500020148 0x80 0x0 0x7ff0 0x0 0x0 0x1 0x1\n", q), None);
    }

    #[test]
    fn a_join_is_matched_less_the_offset() {
        // A join waits on a word of the joined thread's descriptor (its tid, at +0x2d0 on glibc
        // 2.36 aarch64); shown at guest + offset.
        let i = COUNT.fetch_add(1, AcqRel);
        let e = &PARKED[i];
        e.pthread.store(0x55_0323_e1a0, Relaxed);
        e.tid.store(4242, Release);
        let q = Calib { nr: QEMU, offset: 0x10_0000_0000 };
        assert_eq!(waits_for(1, 0x65_0323_e270, 9, 0x48d, q), Some((4242, Wait::Join)));
        // Uncalibrated, the shown address is taken for the guest's: no match (and no memory
        // there to read as a mutex).
        assert_eq!(waits_for(1, 0x65_0323_e270, 9, 0x48d, Calib { nr: QEMU, offset: 0 }), None);
        e.tid.store(0, Release);
    }

    #[test]
    fn reads_own_memory_and_survives_bad_addresses() {
        let x: i32 = 0x1234_5678;
        assert_eq!(read_i32(&x as *const i32 as usize), Some(0x1234_5678));
        assert_eq!(read_i32(8), None);
    }
}
