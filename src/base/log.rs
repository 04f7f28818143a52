//! Diagnostics straight to fd 2: no allocation, no stdio lock (they may run inside CPython or
//! libc paths, or on a thread that is about to be parked or aborted).

/// A fixed-size line buffer; overlong lines are truncated, never allocated.
pub(crate) struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub(crate) fn new() -> Self {
        let mut l = Line { buf: [0; 512], len: 0 };
        l.s("gilgate: ");
        l
    }

    pub(crate) fn s(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len >= self.buf.len() - 1 {
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        self
    }

    pub(crate) fn u(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        // SAFETY: tmp[i..] holds ASCII digits only.
        self.s(unsafe { std::str::from_utf8_unchecked(&tmp[i..]) })
    }

    pub(crate) fn emit(&mut self) {
        self.buf[self.len] = b'\n';
        let mut off = 0;
        let total = self.len + 1;
        while off < total {
            // SAFETY: writes initialized bytes of our own buffer to fd 2.
            let n = unsafe {
                libc::write(2, self.buf[off..total].as_ptr() as *const libc::c_void, total - off)
            };
            if n <= 0 {
                if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            off += n as usize;
        }
    }
}

/// Out of line, so that entry points do not carry the line buffer in their frames.
#[cold]
#[inline(never)]
pub(crate) fn panic_caught() {
    Line::new().s("internal error: panic caught at the C boundary").emit();
}

/// The kernel thread id, for diagnostics a user can match with gdb/top.
pub(crate) fn tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_numbers_and_truncates() {
        let mut l = Line::new();
        l.s("x=").u(0).s(" y=").u(18446744073709551615);
        assert_eq!(&l.buf[..l.len], b"gilgate: x=0 y=18446744073709551615");
        let long = "a".repeat(2000);
        let mut l = Line::new();
        l.s(&long);
        assert_eq!(l.len, 511);
    }
}
