//! Parking a thread that cannot be told (CPython 3.14's own answer, gh-87135, given to every
//! version), and the watchdog that names a deadlock on a parked thread instead of hanging.
//!
//! A parked thread never returns and never unwinds: it holds whatever its callers held, so a
//! thread that later waits for one of those (a host mutex, a join) waits forever. Raw 3.14 hangs
//! silently there. The first parked thread becomes the watchdog: every `POLL`, it reads what each
//! other thread of the process is blocked in (`/proc/self/task/*/syscall`) and recognizes, from
//! the futex word alone, two waits that can never end: a `pthread_mutex_lock` of a mutex whose
//! owner (glibc's `__owner`, the third int of the mutex) is a parked thread, and a `pthread_join`
//! of a parked thread (the wait is on a word inside the joined thread's own descriptor: its `tid`
//! up to glibc 2.40, a join state in 2.43). Seen twice in a row, it writes one line and aborts.
//! Anything else (condition variables, semaphores, Python locks) it cannot attribute: it stays
//! silent, as 3.14 does.
//!
//! No allocation and no lock: parking happens inside CPython's kill paths; the watchdog uses raw
//! syscalls and stack buffers.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering::*};

const MAX: usize = 256;
const NAME: usize = 40;
const POLL_MS: u64 = 400;

struct Entry {
    tid: AtomicI32,
    /// `pthread_self()`: the thread's descriptor, where a joiner waits.
    pthread: AtomicUsize,
    name_len: AtomicUsize,
    name: [AtomicU8; NAME],
}

#[allow(clippy::declare_interior_mutable_const)]
const E: Entry = {
    #[allow(clippy::declare_interior_mutable_const)]
    const B: AtomicU8 = AtomicU8::new(0);
    Entry { tid: AtomicI32::new(0), pthread: AtomicUsize::new(0), name_len: AtomicUsize::new(0), name: [B; NAME] }
};
static PARKED: [Entry; MAX] = [E; MAX];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Number of threads parked so far (every kind, every cause).
pub(crate) fn parked() -> u64 {
    COUNT.load(Relaxed) as u64
}

/// Park the calling thread forever; `what` names the call that parked it (the watchdog's line).
/// The first parked thread runs the watchdog instead of sleeping.
pub(crate) fn park(what: &str) -> ! {
    let tid = crate::log::tid() as i32;
    let i = COUNT.fetch_add(1, AcqRel);
    if i < MAX {
        let e = &PARKED[i];
        let n = what.len().min(NAME);
        for (d, &b) in e.name.iter().zip(&what.as_bytes()[..n]) {
            d.store(b, Relaxed);
        }
        e.name_len.store(n, Relaxed);
        // SAFETY: pthread_self has no preconditions.
        e.pthread.store(unsafe { libc::pthread_self() } as usize, Relaxed);
        e.tid.store(tid, Release); // published last: a non-zero tid means a complete entry
    }
    if crate::config::get().verbose {
        crate::log::Line::new().s("parked thread ").u(tid as u64).s(" in ").s(what)
            .s(" (the interpreter is finalizing: it can never run again)").emit();
    }
    if crate::config::get().watchdog && !WATCHING.swap(true, AcqRel) {
        watch();
    }
    sleep_forever()
}

fn sleep_forever() -> ! {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Mutex,
    Join,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Finding {
    waiter: i32,
    addr: usize,
    parked: usize, // index into PARKED
    wait: Wait,
}

fn watch() -> ! {
    let me = crate::log::tid() as i32;
    let mut prev: Option<Finding> = None;
    loop {
        // SAFETY: plain sleep.
        unsafe {
            let ts = libc::timespec { tv_sec: 0, tv_nsec: (POLL_MS * 1_000_000) as i64 };
            libc::nanosleep(&ts, std::ptr::null_mut());
        }
        let f = scan(me);
        if let (Some(a), Some(b)) = (f, prev) {
            if a == b {
                report(a);
            }
        }
        prev = f;
    }
}

/// One pass over the process's threads: the first wait on a parked thread, if any.
fn scan(me: i32) -> Option<Finding> {
    // SAFETY: open/getdents64/close on a path we own; buffers are on this stack.
    unsafe {
        let fd = libc::open(b"/proc/self/task\0".as_ptr() as *const _, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut buf = [0u8; 4096];
        let mut found = None;
        'outer: loop {
            let n = libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off < n as usize {
                // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let name = &buf[off + 19..off + reclen];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                off += reclen.max(1);
                let Some(tid) = crate::config::parse_u64(name) else { continue };
                let tid = tid as i32;
                if tid == me || parked_index(tid).is_some() {
                    continue;
                }
                if let Some(f) = examine(tid) {
                    found = Some(f);
                    break 'outer;
                }
            }
        }
        libc::close(fd);
        found
    }
}

fn parked_index(tid: i32) -> Option<usize> {
    (0..COUNT.load(Acquire).min(MAX)).find(|&i| PARKED[i].tid.load(Acquire) == tid)
}

/// Is thread `tid` blocked in a futex wait that a parked thread will never end?
fn examine(tid: i32) -> Option<Finding> {
    let mut path = [0u8; 64];
    let mut p = 0;
    for part in [&b"/proc/self/task/"[..], itoa(tid as u64, &mut [0u8; 20]), b"/syscall\0"] {
        path[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    let mut text = [0u8; 256];
    let n = read_file(&path, &mut text)?;
    // "NR a0 a1 a2 a3 a4 a5 sp pc" (hex args), or "running", or "-1 sp pc" (not in a syscall).
    let mut fields = text[..n].split(|&b| b == b' ' || b == b'\n').filter(|f| !f.is_empty());
    let nr = crate::config::parse_u64(fields.next()?)?;
    if nr != libc::SYS_futex as u64 {
        return None;
    }
    let mut a = [0usize; 2];
    for v in a.iter_mut() {
        *v = hex(fields.next()?)?;
    }
    let (uaddr, op) = (a[0], a[1] & !(128 | 256)); // minus FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME
    let count = COUNT.load(Acquire).min(MAX);
    for i in 0..count {
        let e = &PARKED[i];
        let ptid = e.tid.load(Acquire);
        if ptid == 0 {
            continue;
        }
        let f = |wait| Some(Finding { waiter: tid, addr: uaddr, parked: i, wait });
        match op {
            // FUTEX_WAIT, FUTEX_WAIT_BITSET
            0 | 9 => {
                // A join waits on a word of the joined thread's own descriptor: glibc <= 2.40
                // its `tid` (the expected value), 2.43 (Debian unstable) a join state word.
                // Nothing else waits there long: the parked thread holds none of its own locks.
                let base = e.pthread.load(Relaxed);
                if uaddr >= base && uaddr < base + 4096 {
                    return f(Wait::Join);
                }
                // glibc's pthread_mutex_t: int __lock; unsigned __count; int __owner; ...
                if read_i32(uaddr).map_or(false, |w| w != 0) && read_i32(uaddr + 8) == Some(ptid) {
                    return f(Wait::Mutex);
                }
            }
            // FUTEX_LOCK_PI, FUTEX_LOCK_PI2: the owner's tid is in the word itself.
            6 | 13 => {
                if read_i32(uaddr).map_or(false, |w| w & 0x3fff_ffff == ptid) {
                    return f(Wait::Mutex);
                }
            }
            _ => {}
        }
    }
    None
}

#[cold]
fn report(f: Finding) -> ! {
    let e = &PARKED[f.parked];
    let mut name = [0u8; NAME];
    let n = e.name_len.load(Relaxed).min(NAME);
    for (d, s) in name.iter_mut().zip(&e.name) {
        *d = s.load(Relaxed);
    }
    let what = std::str::from_utf8(&name[..n]).unwrap_or("?");
    let ptid = e.tid.load(Relaxed) as u64;
    let mut l = crate::log::Line::new();
    l.s("deadlock: thread ").u(f.waiter as u64);
    let mut comm = [0u8; 32];
    if let Some(c) = thread_name(f.waiter, &mut comm) {
        l.s(" (").s(c).s(")");
    }
    match f.wait {
        Wait::Mutex => l.s(" waits for a mutex (0x").s(hex_str(f.addr, &mut [0u8; 16])).s(") held by thread "),
        Wait::Join => l.s(" waits to join thread "),
    };
    l.u(ptid).s(", which was parked in ").s(what)
        .s(" because the interpreter was finalizing and will never run again; aborting (without gilgate this process would crash or hang here)");
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

    #[test]
    fn reads_own_memory_and_survives_bad_addresses() {
        let x: i32 = 0x1234_5678;
        assert_eq!(read_i32(&x as *const i32 as usize), Some(0x1234_5678));
        assert_eq!(read_i32(8), None);
    }
}
