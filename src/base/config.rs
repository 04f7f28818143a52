//! `GILGATE_*` environment variables, read once, without allocation (getenv + manual parsing):
//! the first reader may be an interposed function running inside CPython or libc.

use once_cell::sync::OnceCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub(crate) struct Config {
    pub verbose: bool,
    pub show_stats: bool,
    /// GILGATE_DLSYM=0: leave `dlsym` on a libpython handle alone (dlsym.rs), e.g. for a host
    /// that measures or wraps libpython's own functions.
    pub dlsym: bool,
    /// GILGATE_WATCHDOG=0: no deadlock watchdog after the first park (park.rs).
    pub watchdog: bool,
}

static CONFIG: OnceCell<Config> = OnceCell::new();
/// Settable by `gilgate_set_drain_timeout_ms`; u64::MAX means "not set yet: use the env/default".
static DRAIN_TIMEOUT_MS: AtomicU64 = AtomicU64::new(u64::MAX);
pub(crate) const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 2000;
/// The policy (see policy.rs), u32::MAX until first read.
pub(crate) static POLICY: AtomicU32 = AtomicU32::new(u32::MAX);

fn getenv(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: name is NUL-terminated; getenv's result is valid until the environment changes,
    // and we copy what we need out of it before returning to the caller's logic.
    unsafe {
        let p = libc::getenv(name.as_ptr() as *const libc::c_char);
        if p.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}

fn warn_bad(var: &str, val: &[u8], default: &str) {
    let mut l = crate::log::Line::new();
    l.s("warning: ignoring malformed ").s(var).s("=");
    l.s(std::str::from_utf8(&val[..val.len().min(64)]).unwrap_or("<non-utf8>"));
    l.s(" (using ").s(default).s(")");
    l.emit();
}

pub(crate) fn parse_bool(var: &str, default: bool) -> bool {
    let name = match var {
        "GILGATE_VERBOSE" => &b"GILGATE_VERBOSE\0"[..],
        "GILGATE_SHOW_STATS" => &b"GILGATE_SHOW_STATS\0"[..],
        "GILGATE_PEP788" => &b"GILGATE_PEP788\0"[..],
        "GILGATE_DLSYM" => &b"GILGATE_DLSYM\0"[..],
        "GILGATE_WATCHDOG" => &b"GILGATE_WATCHDOG\0"[..],
        _ => return default,
    };
    match getenv(name) {
        None => default,
        Some(b"" | b"0" | b"no" | b"false" | b"off") => false,
        Some(b"1" | b"yes" | b"true" | b"on") => true,
        Some(v) => {
            warn_bad(var, v, if default { "1" } else { "0" });
            default
        }
    }
}

pub(crate) fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 12 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |a, &b| a * 10 + (b - b'0') as u64))
}

pub(crate) fn get() -> &'static Config {
    CONFIG.get_or_init(|| Config {
        verbose: parse_bool("GILGATE_VERBOSE", false),
        show_stats: parse_bool("GILGATE_SHOW_STATS", false),
        dlsym: parse_bool("GILGATE_DLSYM", true),
        watchdog: parse_bool("GILGATE_WATCHDOG", true),
    })
}

pub(crate) fn drain_timeout_ms() -> u64 {
    let v = DRAIN_TIMEOUT_MS.load(Relaxed);
    if v != u64::MAX {
        return v;
    }
    let v = match getenv(b"GILGATE_DRAIN_TIMEOUT_MS\0") {
        None => DEFAULT_DRAIN_TIMEOUT_MS,
        Some(raw) => match parse_u64(raw) {
            Some(ms) if ms <= 3_600_000 => ms,
            _ => {
                warn_bad("GILGATE_DRAIN_TIMEOUT_MS", raw, "2000");
                DEFAULT_DRAIN_TIMEOUT_MS
            }
        },
    };
    let _ = DRAIN_TIMEOUT_MS.compare_exchange(u64::MAX, v, Relaxed, Relaxed);
    DRAIN_TIMEOUT_MS.load(Relaxed)
}

pub(crate) fn set_drain_timeout_ms(ms: u64) {
    DRAIN_TIMEOUT_MS.store(ms.min(3_600_000), Relaxed);
}

pub(crate) fn policy_env() -> Option<&'static [u8]> {
    getenv(b"GILGATE_ON_FINALIZE\0")
}

pub(crate) fn warn_bad_policy(raw: &[u8]) {
    warn_bad("GILGATE_ON_FINALIZE", raw, "park");
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_numbers_strictly() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"2500"), Some(2500));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"12ms"), None);
        assert_eq!(parse_u64(b"9999999999999999999999"), None);
    }
}
