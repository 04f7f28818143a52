//! CPython's opaque types as gilgate's C API names them (a leaf: no logic).

use std::ffi::c_void;

/// CPython's `PyThreadState`: opaque, `struct _ts` in every CPython version.
/// cbindgen writes it as `struct _ts` so hosts that include Python.h need no cast.
#[repr(C)]
pub struct PyThreadStateOpaque {
    _private: [u8; 0],
}
pub type TState = *mut PyThreadStateOpaque;
pub type PyObj = *mut c_void;
