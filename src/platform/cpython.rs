//! Finding the CPython that is already in the process, at run time. gilgate never links
//! libpython: the host (or the `python` executable) brought one, and we bind to it.
//!
//! gilgate exports some of CPython's own names (drop-in mode), so every lookup must skip our own
//! object: compare the defining object (`dladdr`), never the address, because through our own
//! GOT an address can already be libpython's.

use once_cell::sync::OnceCell;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

pub use crate::pytypes::{PyObj, PyThreadStateOpaque, TState};
use crate::boundary;
use crate::layout::FrameStyle;

#[repr(C)]
pub(crate) struct PyMethodDef {
    pub name: *const c_char,
    pub meth: Option<unsafe extern "C" fn(PyObj, PyObj) -> PyObj>,
    pub flags: c_int,
    pub doc: *const c_char,
}
// SAFETY: PyMethodDef is immutable static data shared with CPython.
unsafe impl Sync for PyMethodDef {}
pub(crate) const METH_NOARGS: c_int = 0x0004;

/// The CPython functions gilgate calls. Resolved once; all mandatory ones exist in 3.8+.
#[allow(non_snake_case, dead_code)] // some fields are only used in drop-in mode
pub(crate) struct Api {
    pub version: (u32, u32),
    pub Py_IsInitialized: unsafe extern "C" fn() -> c_int,
    /// `_Py_IsFinalizing` (3.7-3.12) or `Py_IsFinalizing` (3.13+). Readable without the GIL.
    pub is_finalizing: Option<unsafe extern "C" fn() -> c_int>,
    pub PyEval_RestoreThread: unsafe extern "C" fn(TState),
    pub PyEval_AcquireThread: unsafe extern "C" fn(TState),
    pub PyEval_SaveThread: unsafe extern "C" fn() -> TState,
    pub PyEval_ReleaseThread: unsafe extern "C" fn(TState),
    /// Removed in CPython 3.13.
    pub PyEval_AcquireLock: Option<unsafe extern "C" fn()>,
    pub PyEval_ReleaseLock: Option<unsafe extern "C" fn()>,
    pub PyGILState_Ensure: unsafe extern "C" fn() -> c_int,
    pub PyGILState_Release: unsafe extern "C" fn(c_int),
    pub PyGILState_Check: unsafe extern "C" fn() -> c_int,
    pub PyThreadState_New: unsafe extern "C" fn(*mut c_void) -> TState,
    pub PyThreadState_DeleteCurrent: Option<unsafe extern "C" fn()>,
    /// Exported by 3.9-3.12 (takes the current thread state), called by `DeleteCurrent` there.
    pub _PyThreadState_DeleteCurrent: Option<unsafe extern "C" fn(TState)>,
    pub PyThreadState_Swap: unsafe extern "C" fn(TState) -> TState,
    /// `_PyThreadState_UncheckedGet` (3.8-3.12) or `PyThreadState_GetUnchecked` (3.13+): the
    /// calling thread's attached thread state on 3.12+, but on 3.8-3.11 the runtime-wide one
    /// (whichever thread holds the GIL): use `holds_gil`.
    pub tstate_unchecked: unsafe extern "C" fn() -> TState,
    pub PyGILState_GetThisThreadState: unsafe extern "C" fn() -> TState,
    pub PyCapsule_New: unsafe extern "C" fn(*mut c_void, *const c_char, Option<unsafe extern "C" fn(PyObj)>) -> PyObj,
    pub Py_FinalizeEx: unsafe extern "C" fn() -> c_int,
    pub Py_Finalize: unsafe extern "C" fn(),
    pub Py_AtExit: unsafe extern "C" fn(unsafe extern "C" fn()) -> c_int,
    pub PyInterpreterState_Main: unsafe extern "C" fn() -> *mut c_void,
    pub PyInterpreterState_Get: unsafe extern "C" fn() -> *mut c_void,
    pub PyInterpreterState_Head: unsafe extern "C" fn() -> *mut c_void,
    pub PyInterpreterState_Next: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    pub PyImport_ImportModule: unsafe extern "C" fn(*const c_char) -> PyObj,
    pub PyObject_GetAttrString: unsafe extern "C" fn(PyObj, *const c_char) -> PyObj,
    pub PyObject_CallObject: unsafe extern "C" fn(PyObj, PyObj) -> PyObj,
    pub PyTuple_New: unsafe extern "C" fn(isize) -> PyObj,
    pub PyTuple_SetItem: unsafe extern "C" fn(PyObj, isize, PyObj) -> c_int,
    pub PyCFunction_NewEx: unsafe extern "C" fn(*const PyMethodDef, PyObj, PyObj) -> PyObj,
    pub Py_IncRef: unsafe extern "C" fn(PyObj),
    pub Py_DecRef: unsafe extern "C" fn(PyObj),
    pub PyErr_Fetch: unsafe extern "C" fn(*mut PyObj, *mut PyObj, *mut PyObj),
    pub PyErr_Restore: unsafe extern "C" fn(PyObj, PyObj, PyObj),
    pub none: PyObj,
    /// PEP 788 (CPython 3.15+): present only when the whole set is exported (see pep788.rs).
    pub pep788: Option<Pep788Api>,
}

/// PEP 788's thread-state API (CPython 3.15+). Views, guards and tokens are opaque pointers.
#[allow(non_snake_case)]
pub(crate) struct Pep788Api {
    pub PyInterpreterView_FromMain: unsafe extern "C" fn() -> *mut c_void,
    pub PyInterpreterGuard_FromView: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    pub PyInterpreterGuard_Close: unsafe extern "C" fn(*mut c_void),
    pub PyThreadState_Ensure: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    pub PyThreadState_Release: unsafe extern "C" fn(*mut c_void),
    pub PyThreadState_GetUnchecked: unsafe extern "C" fn() -> TState,
    pub PyGILState_GetThisThreadState: unsafe extern "C" fn() -> TState,
}

// SAFETY: `none` is the address of CPython's immortal-for-our-purposes None object; Api is
// otherwise function pointers, immutable after resolution.
unsafe impl Send for Api {}
// SAFETY: as above.
unsafe impl Sync for Api {}

static API: OnceCell<Api> = OnceCell::new();

/// The CPython in this process, or None when there is none (yet: a host may dlopen it later,
/// so a miss is not cached).
#[inline]
pub(crate) fn api() -> Option<&'static Api> {
    if let Some(a) = API.get() {
        return Some(a);
    }
    // Published before the cell is set: the C fast paths call CPython's functions without a
    // NULL test once a thread could have entered (which needs the cell).
    API.get_or_try_init(|| {
        let a = resolve().ok_or(())?;
        publish(&a);
        Ok::<_, ()>(a)
    })
    .ok()
}

/// Hand CPython's functions to the C fast paths, once resolved.
fn publish(api: &Api) {
    boundary::publish_frame_offsets(frame_offsets(api.version));
    let p = |f: usize| f as *mut c_void;
    boundary::publish_py(boundary::PY_RESTORE, p(api.PyEval_RestoreThread as usize));
    boundary::publish_py(boundary::PY_ACQUIRE, p(api.PyEval_AcquireThread as usize));
    boundary::publish_py(boundary::PY_ENSURE, p(api.PyGILState_Ensure as usize));
    boundary::publish_py(boundary::PY_SAVE, p(api.PyEval_SaveThread as usize));
    boundary::publish_py(boundary::PY_RELEASE_THREAD, p(api.PyEval_ReleaseThread as usize));
    boundary::publish_py(boundary::PY_GILSTATE_RELEASE, p(api.PyGILState_Release as usize));
    // On the PEP 788 path (src/pep788.rs) gilgate_gilstate_ensure/_release reach their Rust
    // bodies (per-call guards) until pep788::hold_generation publishes the C fast path under the
    // generation guard (the drop-in pair keeps its own).
    let gil = |f: usize| if api.pep788_active().is_none() { p(f) } else { std::ptr::null_mut() };
    boundary::publish_py(boundary::PY_API_ENSURE, gil(api.PyGILState_Ensure as usize));
    boundary::publish_py(boundary::PY_API_GILSTATE_RELEASE, gil(api.PyGILState_Release as usize));
}

/// Only what was already resolved: never resolves (for paths that must not allocate).
#[inline]
pub(crate) fn api_if_resolved() -> Option<&'static Api> {
    API.get()
}

pub(crate) fn own_base() -> *mut c_void {
    static BASE: OnceCell<usize> = OnceCell::new();
    *BASE.get_or_init(|| object_base(own_base as *const c_void) as usize) as *mut c_void
}

pub(crate) fn object_base(addr: *const c_void) -> *mut c_void {
    // SAFETY: dladdr only reads loader data; info is a valid out-pointer.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 {
            return ptr::null_mut();
        }
        info.dli_fbase
    }
}

/// Resolve `name` to a definition that is not gilgate's own export.
pub(crate) fn lookup(name: &[u8], py_handle: *mut c_void) -> *mut c_void {
    debug_assert!(name.ends_with(b"\0"));
    let me = own_base();
    let n = name.as_ptr() as *const c_char;
    // SAFETY: dlsym with the special handles or a handle from dlopen(RTLD_NOLOAD), and a
    // NUL-terminated name.
    unsafe {
        if !py_handle.is_null() {
            let p = libc::dlsym(py_handle, n);
            if !p.is_null() && object_base(p) != me {
                return p;
            }
        }
        for h in [libc::RTLD_DEFAULT, libc::RTLD_NEXT] {
            let p = libc::dlsym(h, n);
            if !p.is_null() && object_base(p) != me {
                return p;
            }
        }
    }
    ptr::null_mut()
}

/// A handle on the object that defines `Py_IsInitialized`, found in the global scope or, for a
/// libpython loaded with RTLD_LOCAL, by walking the loaded objects.
fn python_handle() -> *mut c_void {
    // SAFETY: dlsym/dladdr/dlopen(RTLD_NOLOAD) only query the loader; dl_iterate_phdr's callback
    // reads the entries it is handed.
    unsafe {
        let p = libc::dlsym(libc::RTLD_DEFAULT, b"Py_IsInitialized\0".as_ptr() as *const c_char);
        if !p.is_null() {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(p, &mut info) != 0 && !info.dli_fname.is_null() {
                let h = libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
                if !h.is_null() {
                    return h;
                }
            }
            // The main executable (a statically linked python): RTLD_DEFAULT finds it first.
            return ptr::null_mut();
        }
        let mut found: *mut c_void = ptr::null_mut();
        unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
            // SAFETY: dl_iterate_phdr passes a valid entry and our own `data` (a `*mut *mut c_void`).
            unsafe {
                let name = (*info).dlpi_name;
                if name.is_null() {
                    return 0;
                }
                let s = std::ffi::CStr::from_ptr(name).to_bytes();
                let base = s.rsplit(|&b| b == b'/').next().unwrap_or(s);
                if base.starts_with(b"libpython3") {
                    let h = libc::dlopen(name, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
                    if !h.is_null()
                        && !libc::dlsym(h, b"Py_IsInitialized\0".as_ptr() as *const c_char).is_null()
                    {
                        *(data as *mut *mut c_void) = h;
                        return 1;
                    }
                }
                0
            }
        }
        libc::dl_iterate_phdr(Some(cb), &mut found as *mut *mut c_void as *mut c_void);
        found
    }
}

fn parse_version(v: &[u8]) -> (u32, u32) {
    let mut it = v.split(|&b| b == b'.' || b == b' ');
    let num = |s: Option<&[u8]>| -> u32 {
        s.map(|s| s.iter().take_while(|b| b.is_ascii_digit()).fold(0u32, |a, b| a * 10 + (b - b'0') as u32))
            .unwrap_or(0)
    };
    (num(it.next()), num(it.next()))
}

fn resolve() -> Option<Api> {
    let h = python_handle();
    // SAFETY: each symbol is looked up by CPython's exported name and transmuted to the
    // signature that CPython declares for it in every supported version (3.8+).
    unsafe {
        macro_rules! opt {
            ($name:literal) => {{
                let p = lookup(concat!($name, "\0").as_bytes(), h);
                if p.is_null() { None } else { Some(std::mem::transmute(p)) }
            }};
        }
        macro_rules! req {
            ($name:literal) => {{
                let p = lookup(concat!($name, "\0").as_bytes(), h);
                if p.is_null() {
                    return None;
                }
                std::mem::transmute(p)
            }};
        }
        let get_version: unsafe extern "C" fn() -> *const c_char = req!("Py_GetVersion");
        let is_init = lookup(b"Py_IsInitialized\0", h);
        if is_init.is_null() {
            return None;
        }
        crate::origin::set_cpython_object(is_init as usize);
        let v = std::ffi::CStr::from_ptr(get_version()).to_bytes();
        let version = parse_version(v);
        if version < (3, 8) {
            return None;
        }
        let is_finalizing = if version >= (3, 13) { opt!("Py_IsFinalizing") } else { opt!("_Py_IsFinalizing") };
        let none = lookup(b"_Py_NoneStruct\0", h);
        if none.is_null() {
            return None;
        }
        // PEP 788: PyThreadState_EnsureFromView marks a CPython that has it (3.15+); gilgate
        // uses its two halves (GuardFromView + Ensure) so that the drain can own the guard.
        let pep788 = (|| -> Option<Pep788Api> {
            let _marker: unsafe extern "C" fn(*mut c_void) -> *mut c_void = opt!("PyThreadState_EnsureFromView")?;
            Some(Pep788Api {
                PyInterpreterView_FromMain: opt!("PyInterpreterView_FromMain")?,
                PyInterpreterGuard_FromView: opt!("PyInterpreterGuard_FromView")?,
                PyInterpreterGuard_Close: opt!("PyInterpreterGuard_Close")?,
                PyThreadState_Ensure: opt!("PyThreadState_Ensure")?,
                PyThreadState_Release: opt!("PyThreadState_Release")?,
                PyThreadState_GetUnchecked: opt!("PyThreadState_GetUnchecked")?,
                PyGILState_GetThisThreadState: opt!("PyGILState_GetThisThreadState")?,
            })
        })();
        Some(Api {
            version,
            Py_IsInitialized: req!("Py_IsInitialized"),
            is_finalizing,
            PyEval_RestoreThread: req!("PyEval_RestoreThread"),
            PyEval_AcquireThread: req!("PyEval_AcquireThread"),
            PyEval_SaveThread: req!("PyEval_SaveThread"),
            PyEval_ReleaseThread: req!("PyEval_ReleaseThread"),
            PyEval_AcquireLock: opt!("PyEval_AcquireLock"),
            PyEval_ReleaseLock: opt!("PyEval_ReleaseLock"),
            PyGILState_Ensure: req!("PyGILState_Ensure"),
            PyGILState_Release: req!("PyGILState_Release"),
            PyGILState_Check: req!("PyGILState_Check"),
            PyThreadState_New: req!("PyThreadState_New"),
            PyThreadState_DeleteCurrent: opt!("PyThreadState_DeleteCurrent"),
            _PyThreadState_DeleteCurrent: if (3, 9) <= version && version <= (3, 12) {
                opt!("_PyThreadState_DeleteCurrent")
            } else {
                None
            },
            PyThreadState_Swap: req!("PyThreadState_Swap"),
            tstate_unchecked: match opt!("PyThreadState_GetUnchecked") {
                Some(f) => f,
                None => req!("_PyThreadState_UncheckedGet"),
            },
            PyCapsule_New: req!("PyCapsule_New"),
            PyGILState_GetThisThreadState: req!("PyGILState_GetThisThreadState"),
            Py_FinalizeEx: req!("Py_FinalizeEx"),
            Py_Finalize: req!("Py_Finalize"),
            Py_AtExit: req!("Py_AtExit"),
            PyInterpreterState_Main: req!("PyInterpreterState_Main"),
            PyInterpreterState_Head: req!("PyInterpreterState_Head"),
            PyInterpreterState_Next: req!("PyInterpreterState_Next"),
            // 3.8 only has the underscored name.
            PyInterpreterState_Get: match opt!("PyInterpreterState_Get") {
                Some(f) => f,
                None => req!("_PyInterpreterState_Get"),
            },
            PyImport_ImportModule: req!("PyImport_ImportModule"),
            PyObject_GetAttrString: req!("PyObject_GetAttrString"),
            PyObject_CallObject: req!("PyObject_CallObject"),
            PyTuple_New: req!("PyTuple_New"),
            PyTuple_SetItem: req!("PyTuple_SetItem"),
            PyCFunction_NewEx: req!("PyCFunction_NewEx"),
            Py_IncRef: req!("Py_IncRef"),
            Py_DecRef: req!("Py_DecRef"),
            PyErr_Fetch: req!("PyErr_Fetch"),
            PyErr_Restore: req!("PyErr_Restore"),
            none,
            pep788,
        })
    }
}

/// Where a thread state says which Python frame it is executing: the offset of a pointer in
/// `struct _ts`, and the offset of a word in what it points to, or `layout::NO_CFRAME`:
/// - 3.8-3.10 `frame`, 3.13-3.14 `current_frame`: NULL at the host's level (no Python code
///   running on the thread), else the frame;
/// - 3.11, 3.12 `cframe`, then its `current_frame`;
/// - 3.15+ `current_frame`, which at the host's level points at the thread's base frame, the only
///   frame whose `previous` (second word) is NULL (`FrameStyle::Sentinel`).
/// Read from each version's headers and checked by experiment on every CPython here.
pub(crate) fn frame_offsets(version: (u32, u32)) -> (u32, u32, FrameStyle) {
    match version {
        (3, 8..=10) => (24, crate::layout::NO_CFRAME, FrameStyle::Direct), // PyFrameObject *frame
        (3, 11) => (56, 8, FrameStyle::CFrame),                          // _PyCFrame *cframe
        (3, 12) => (56, 0, FrameStyle::CFrame),
        (3, 13..=14) => (72, crate::layout::NO_CFRAME, FrameStyle::Direct), // current_frame
        _ => (72, 8, FrameStyle::Sentinel),
    }
}


static PEP788_ENABLED: OnceCell<bool> = OnceCell::new();

impl Api {
    /// The PEP 788 functions, if this CPython has them and `GILGATE_PEP788` is not 0.
    pub(crate) fn pep788_active(&self) -> Option<&Pep788Api> {
        let on = *PEP788_ENABLED.get_or_init(|| crate::config::parse_bool("GILGATE_PEP788", true));
        self.pep788.as_ref().filter(|_| on)
    }

    /// Whether the calling thread holds the GIL with a thread state attached (no GIL needed).
    /// 3.12+: its own attached state. 3.8-3.11 only know the runtime-wide current state, so
    /// this is "the current state is this thread's gilstate state" (a thread that holds the GIL
    /// with another state of its own reads as not holding it: the caller then takes the gated
    /// path, which is always safe).
    pub(crate) fn holds_gil(&self) -> bool {
        // SAFETY: both read thread-local or runtime fields; callable without the GIL.
        unsafe {
            let cur = (self.tstate_unchecked)();
            !cur.is_null() && (self.version >= (3, 12) || cur == (self.PyGILState_GetThisThreadState)())
        }
    }

    /// Advisory only (racy without the GIL), used on slow paths.
    pub(crate) fn runtime_alive(&self) -> Result<(), crate::status::gilgate_status> {
        use crate::status::*;
        // SAFETY: both functions read runtime fields and are documented callable without the GIL.
        unsafe {
            // During finalization Py_IsInitialized() is already 0 while the finalizing pointer
            // is set (and it stays set after Py_FinalizeEx until the next Py_Initialize): the
            // gate's own state tells "finalized" apart, this hint cannot.
            if let Some(f) = self.is_finalizing {
                if f() != 0 {
                    return Err(GILGATE_ERR_FINALIZING);
                }
            }
            if (self.Py_IsInitialized)() == 0 {
                return Err(GILGATE_ERR_NOT_INITIALIZED);
            }
        }
        Ok(())
    }

    /// Whether `tstate` belongs to one of this runtime's live interpreters. `interp` is the
    /// third pointer of `struct _ts` in CPython 3.8-3.15. The interpreter list is read without
    /// CPython's HEAD_LOCK (not exported): a subinterpreter ended concurrently could be read
    /// after it is freed; ending an interpreter while one of its thread states is being
    /// restored is a host bug in CPython's terms already.
    pub(crate) fn interp_is_live(&self, tstate: TState) -> bool {
        // SAFETY: the caller's live thread state (CPython's contract for every restore); the
        // list functions read runtime fields.
        unsafe {
            let interp = *(tstate as *const *mut c_void).add(2);
            let mut i = (self.PyInterpreterState_Head)();
            let mut n = 0;
            while !i.is_null() && n < 1 << 16 {
                if i == interp {
                    return true;
                }
                i = (self.PyInterpreterState_Next)(i);
                n += 1;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_versions() {
        assert_eq!(super::parse_version(b"3.12.1 (main, May 9 2026)"), (3, 12));
        assert_eq!(super::parse_version(b"3.8.18"), (3, 8));
        assert_eq!(super::parse_version(b"3.15.0a1+ (x)"), (3, 15));
        assert_eq!(super::parse_version(b""), (0, 0));
    }
}
