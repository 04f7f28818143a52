//! Status codes returned by every fallible gilgate call. Numbers are ABI: never renumber.

use std::os::raw::c_char;

/// Result of a gilgate call. `GILGATE_OK` is 0 so `if (rc)` tests for failure.
///
/// More codes may be added in later versions; existing ones are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum gilgate_status {
    /// Success: for entry calls, the thread now holds the GIL and the runtime is not finalizing.
    GILGATE_OK = 0,
    /// The interpreter is finalizing (or gilgate closed its gate to drain before finalization).
    /// The thread holds no GIL and owes no release call.
    GILGATE_ERR_FINALIZING = 1,
    /// CPython is loaded but not initialized: before `Py_Initialize`, or after `Py_FinalizeEx`.
    GILGATE_ERR_NOT_INITIALIZED = 2,
    /// No CPython runtime was found in this process.
    GILGATE_ERR_NO_PYTHON = 3,
    /// A required pointer argument was NULL.
    GILGATE_ERR_NULL_ARGUMENT = 4,
    /// A bug in gilgate (for example a caught panic). Nothing was acquired.
    GILGATE_ERR_INTERNAL = 5,
    /// An argument is out of its documented range (for example an unknown policy value).
    GILGATE_ERR_INVALID_ARGUMENT = 6,
}

pub use gilgate_status::*;

/// cbindgen renames this to `gilgate_status` in the header: C may pass any int, and a Rust enum
/// holding a value outside its variants would be undefined behaviour.
#[allow(non_camel_case_types)]
pub type gilgate_status_in = std::os::raw::c_int;

pub(crate) fn status_cstr(code: gilgate_status_in) -> *const c_char {
    let s: &'static [u8] = match code {
        0 => b"GILGATE_OK: success\0",
        1 => b"GILGATE_ERR_FINALIZING: the Python interpreter is finalizing\0",
        2 => b"GILGATE_ERR_NOT_INITIALIZED: the Python runtime is not initialized (before Py_Initialize or after Py_FinalizeEx)\0",
        3 => b"GILGATE_ERR_NO_PYTHON: no CPython runtime found in this process\0",
        4 => b"GILGATE_ERR_NULL_ARGUMENT: a required pointer argument was NULL\0",
        5 => b"GILGATE_ERR_INTERNAL: internal error in gilgate\0",
        6 => b"GILGATE_ERR_INVALID_ARGUMENT: an argument is out of its documented range\0",
        _ => b"GILGATE_ERR_UNKNOWN: unknown gilgate status code\0",
    };
    s.as_ptr() as *const c_char
}

pub(crate) fn status_name(s: gilgate_status) -> &'static str {
    match s {
        GILGATE_OK => "OK",
        GILGATE_ERR_FINALIZING => "FINALIZING",
        GILGATE_ERR_NOT_INITIALIZED => "NOT_INITIALIZED",
        GILGATE_ERR_NO_PYTHON => "NO_PYTHON",
        GILGATE_ERR_NULL_ARGUMENT => "NULL_ARGUMENT",
        GILGATE_ERR_INTERNAL => "INTERNAL",
        GILGATE_ERR_INVALID_ARGUMENT => "INVALID_ARGUMENT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_code_has_a_distinct_message_and_unknown_is_safe() {
        let mut seen = std::collections::HashSet::new();
        for code in 0..=6 {
            // SAFETY: status_cstr returns pointers to static NUL-terminated byte strings.
            let s = unsafe { CStr::from_ptr(status_cstr(code)) }.to_str().unwrap();
            assert!(s.starts_with("GILGATE_"), "{s}");
            assert!(seen.insert(s));
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(status_cstr(-7)) }.to_str().unwrap();
        assert!(unknown.contains("UNKNOWN"));
        assert_eq!(GILGATE_ERR_INTERNAL as i32, 5);
    }
}

// The numbers the C fast paths return (layout.rs, written for C by build.rs).
const _: () = {
    assert!(GILGATE_OK as i32 == crate::layout::STATUS_OK);
    assert!(GILGATE_ERR_FINALIZING as i32 == crate::layout::STATUS_ERR_FINALIZING);
    assert!(GILGATE_ERR_NO_PYTHON as i32 == crate::layout::STATUS_ERR_NO_PYTHON);
};
