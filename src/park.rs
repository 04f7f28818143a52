//! Parking a thread that cannot be told (CPython 3.14's own answer, gh-87135, given to every
//! version), and the watchdog that names a deadlock on a parked thread instead of hanging.
//!
//! A parked thread never returns and never unwinds: it holds whatever its callers held, so a
//! thread that later waits for one of those (a host mutex, a join) waits forever. Raw 3.14 hangs
//! silently there when that thread is the main one. The first parked thread becomes the
//! watchdog: every `POLL_MS`, it reads what each other thread is blocked in
//! (`/proc/self/task/*/syscall`) and recognizes, from the futex word alone, untimed waits that
//! name the thread they wait for: a `pthread_mutex_lock` (its owner: glibc's `__owner`, the
//! third int of the mutex; the word itself for PI mutexes) and a `pthread_join` (a word inside
//! the joined thread's own descriptor, at the top of its stack mapping: its `tid` up to glibc
//! 2.40, a join state in 2.43; `/proc/self/maps` tells whose stack holds it). When
//! the main thread's wait leads, through such waits, to a parked thread, the process can never
//! end: seen twice in a row, one line names it and the process aborts. A worker blocked forever
//! does not keep the process alive (raw 3.14 exits over it): not reported. Waits it cannot
//! attribute (condition variables, semaphores, Python locks, timed waits) stay silent, as 3.14.
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

/// Thread `waiter` is blocked, without a timeout, until thread `on` does something.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Edge {
    waiter: i32,
    on: i32,
    addr: usize,
    wait: Wait,
}

/// The main thread's wait that can never end: the main thread (whose return or `exit` ends the
/// process) waits on a chain of threads that ends at a parked one. A worker blocked forever on a
/// parked thread is no deadlock of the process (raw 3.14 exits over it): not reported.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Finding {
    first: Edge, // the main thread's own wait
    parked: usize, // index into PARKED: the end of the chain
    hops: u32,
}

// Threads read per scan (the main thread, listed first, always among them); ~9 KB of the parked
// thread's stack.
const EDGES: usize = 128;

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

/// What one thread was doing at the scan (`/proc/self/task/T/syscall`).
#[derive(Clone, Copy, Default)]
struct Task {
    tid: i32,
    /// An untimed futex wait: (address, op without flags, expected value); op 0 = none.
    futex: Option<(usize, usize, i32)>,
    /// Its stack pointer in the syscall (0: unknown), and the start of the mapping holding it.
    sp: usize,
    sp_map: usize,
    /// The start of the mapping holding the futex address.
    futex_map: usize,
}

/// One pass over the process's threads: every untimed wait on another thread, then whether the
/// main thread's leads to a parked thread.
fn scan(me: i32) -> Option<Finding> {
    let mut tasks = [Task::default(); EDGES];
    let mut nt = 0usize;
    // SAFETY: open/getdents64/close on a path we own; buffers are on this stack.
    unsafe {
        let fd = libc::open(b"/proc/self/task\0".as_ptr() as *const _, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut buf = [0u8; 2048];
        'dir: loop {
            let n = libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off + 19 < n as usize {
                // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen < 20 || off + reclen > n as usize {
                    break;
                }
                let name = &buf[off + 19..off + reclen];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                off += reclen;
                let Some(tid) = crate::config::parse_u64(name) else { continue };
                if nt >= EDGES {
                    break 'dir;
                }
                tasks[nt] = read_task(tid as i32);
                nt += 1;
            }
        }
        libc::close(fd);
    }
    let tasks = &mut tasks[..nt];
    locate_mappings(tasks);
    // SAFETY: getpid has no preconditions.
    let main = unsafe { libc::getpid() };
    let mut cur = edge_of(tasks, main, me)?;
    let first = cur;
    for hops in 0..EDGES as u32 {
        if let Some(i) = parked_index(cur.on) {
            return Some(Finding { first, parked: i, hops });
        }
        if cur.on == main {
            return None;
        }
        cur = edge_of(tasks, cur.on, me)?;
    }
    None
}

fn parked_index(tid: i32) -> Option<usize> {
    (0..COUNT.load(Acquire).min(MAX)).find(|&i| PARKED[i].tid.load(Acquire) == tid)
}

/// Read thread `tid`'s current syscall: "NR a0 a1 a2 a3 a4 a5 sp pc" (hex), "running", or
/// "-1 sp pc" (blocked outside a syscall).
fn read_task(tid: i32) -> Task {
    let mut t = Task { tid, ..Default::default() };
    let mut path = [0u8; 64];
    let mut p = 0;
    for part in [&b"/proc/self/task/"[..], itoa(tid as u64, &mut [0u8; 20]), b"/syscall\0"] {
        path[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    let mut text = [0u8; 256];
    let Some(n) = read_file(&path, &mut text) else { return t };
    let mut f = [0usize; 9];
    let mut k = 0;
    let mut nr: Option<u64> = None;
    for (i, w) in text[..n].split(|&b| b == b' ' || b == b'\n').filter(|w| !w.is_empty()).enumerate() {
        if i == 0 {
            nr = crate::config::parse_u64(w);
            if nr.is_none() {
                return t; // "running", or "-1 ...": not in a syscall
            }
        } else if k < f.len() {
            match hex(w) {
                Some(v) => f[k] = v,
                None => return t,
            }
            k += 1;
        }
    }
    if k < 8 {
        return t;
    }
    t.sp = f[6];
    // Minus FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME; a timed wait ends by itself: not ours.
    let op = f[1] & !(128 | 256);
    if nr == Some(libc::SYS_futex as u64) && matches!(op, 0 | 6 | 9 | 13) && f[3] == 0 && tid != 0 {
        t.futex = Some((f[0], op, f[2] as u32 as i32));
    }
    t
}

/// Fill `sp_map`/`futex_map` with the start of the mapping that holds each address, in one pass
/// over `/proc/self/maps` (a thread's stack mapping also holds its descriptor, where a join waits).
fn locate_mappings(tasks: &mut [Task]) {
    let fd = {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::open(b"/proc/self/maps\0".as_ptr() as *const _, libc::O_RDONLY | libc::O_CLOEXEC) }
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut have = 0usize;
    loop {
        // SAFETY: reading into the unused tail of our buffer.
        let n = unsafe { libc::read(fd, buf[have..].as_mut_ptr() as *mut _, buf.len() - have) };
        if n <= 0 {
            break;
        }
        have += n as usize;
        let mut start = 0;
        while let Some(nl) = buf[start..have].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            // "lo-hi perms ..."
            let range = line.split(|&b| b == b' ').next().unwrap_or(b"");
            let mut it = range.split(|&b| b == b'-');
            let lo = it.next().and_then(hex_plain);
            let hi = it.next().and_then(hex_plain);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                for t in tasks.iter_mut() {
                    if t.sp >= lo && t.sp < hi {
                        t.sp_map = lo;
                    }
                    if let Some((a, ..)) = t.futex {
                        if a >= lo && a < hi {
                            t.futex_map = lo;
                        }
                    }
                }
            }
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            have = 0; // an absurd line: drop it
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
}

/// The thread that `waiter`'s untimed futex wait waits for, if the futex word names it: a join
/// (a word of the joined thread's descriptor, which glibc keeps at the top of its stack mapping:
/// its `tid` up to glibc 2.40, a join state in 2.43) or a glibc mutex (its `__owner`, the third
/// int; the word itself for PI mutexes), whose owner must be a live thread.
fn edge_of(tasks: &[Task], waiter: i32, me: i32) -> Option<Edge> {
    let w = tasks.iter().find(|t| t.tid == waiter)?;
    let (uaddr, op, val) = w.futex?;
    let edge = |on, wait| Some(Edge { waiter, on, addr: uaddr, wait });
    let live = |tid: i32| tid > 0 && tid != waiter && tasks.iter().any(|t| t.tid == tid);
    if matches!(op, 6 | 13) {
        let owner = read_i32(uaddr)? & 0x3fff_ffff;
        return if live(owner) { edge(owner, Wait::Mutex) } else { None };
    }
    // Joins of a parked thread: its descriptor is known exactly.
    for i in 0..COUNT.load(Acquire).min(MAX) {
        let base = PARKED[i].pthread.load(Relaxed);
        let ptid = PARKED[i].tid.load(Acquire);
        if ptid != 0 && uaddr >= base && uaddr < base + 4096 {
            return edge(ptid, Wait::Join);
        }
    }
    let word = read_i32(uaddr)?;
    // Mutexes wait for 2, condition variables and semaphores for 0; a join on glibc <= 2.40
    // expects the joined thread's tid.
    if val > 2 && word == val && live(val) {
        return edge(val, Wait::Join);
    }
    if word != 0 {
        if let Some(owner) = read_i32(uaddr + 8) {
            if live(owner) {
                return edge(owner, Wait::Mutex);
            }
        }
    }
    // A word inside another thread's stack mapping, above its stack pointer: its descriptor.
    if w.futex_map != 0 {
        if let Some(t) = tasks.iter().find(|t| t.tid != waiter && t.tid != me && t.sp_map == w.futex_map && t.sp != 0 && uaddr > t.sp) {
            return edge(t.tid, Wait::Join);
        }
    }
    None
}

fn hex_plain(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0usize, |a, &b| Some(a * 16 + (b as char).to_digit(16)? as usize))
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
    l.s("deadlock: thread ").u(f.first.waiter as u64);
    let mut comm = [0u8; 32];
    if let Some(c) = thread_name(f.first.waiter, &mut comm) {
        l.s(" (").s(c).s(")");
    }
    match f.first.wait {
        Wait::Mutex => l.s(" waits for a mutex (0x").s(hex_str(f.first.addr, &mut [0u8; 16])).s(") held by thread "),
        Wait::Join => l.s(" waits to join thread "),
    };
    l.u(f.first.on as u64);
    if f.hops > 0 {
        l.s(", which waits (").u(f.hops as u64).s(" step(s)) for thread ").u(ptid);
    }
    l.s(", which was parked in ").s(what)
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
