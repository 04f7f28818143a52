//! `gilgate-check PROGRAM` (run as `gilgate-run --check PROGRAM`): reads PROGRAM's ELF file and
//! the shared libraries it needs (runs nothing) and says whether its calls into CPython will reach
//! a preloaded gilgate.
//!
//! Exit status: 0 covered; 1 not covered (the reason and the remedy are printed); 2 cannot tell
//! (not an ELF program, an unresolvable script interpreter, no CPython in sight, ...); 3 partially
//! covered (a statically linked interpreter whose kills are caught but whose API calls are not).
//!
//! What the files show, and what they cannot:
//! - a statically linked executable (no dynamic loader): LD_PRELOAD does nothing;
//! - an executable that defines CPython's API itself (a statically linked interpreter, e.g.
//!   Debian's /usr/bin/python3.11): its own definitions come first in the lookup order, so its API
//!   calls are not gated; but if it imports `pthread_exit`/`pause` (a PLT or GOT relocation against
//!   an undefined dynamic symbol, read from the relocation tables the loader itself reads), a
//!   preloaded gilgate's definitions are the ones bound, and the threads CPython kills or parks
//!   during finalization get gilgate's policy (park by default): partially covered (exit 3);
//! - setuid/setgid or file capabilities: the loader runs it in secure mode and ignores a
//!   LD_PRELOAD given by path, unless the program links gilgate itself;
//! - a program that links libpython (directly or through a library): covered;
//! - a program that does not link libpython but imports dlopen/dlsym: covered if it loads
//!   libpython with dlopen and resolves functions with dlsym (gilgate interposes dlsym), or loads
//!   libraries that link libpython. Not visible in the files: whether it passes RTLD_DEEPBIND
//!   (that library then binds to its own dependencies first) or loads libpython with dlmopen into
//!   another namespace (LD_PRELOAD'ed objects are not there);
//! - a libpython linked -Bsymbolic (DF_SYMBOLIC) binds CPython's own internal calls inside
//!   itself, which gilgate passes through anyway (like Debian's optimized libpython): covered.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

const CPYTHON_MARKERS: &[&str] = &["Py_IsInitialized", "PyGILState_Ensure"];
const INTERESTING: &[&str] = &[
    "Py_IsInitialized", "PyGILState_Ensure", "gilgate_version", "dlopen", "dlsym", "dlvsym", "dlmopen",
];

#[derive(Default, Debug)]
struct Elf {
    path: PathBuf,
    e_type: u16,
    machine: u16,
    interp: Option<String>,
    dynamic: bool,
    needed: Vec<String>,
    rpath: Option<String>,
    runpath: Option<String>,
    soname: Option<String>,
    symbolic: bool,
    /// Interesting names this object defines / imports (dynamic symbols).
    defines: HashSet<String>,
    imports: HashSet<String>,
    /// CPython's API defined in .symtab (an unexported static interpreter).
    symtab_cpython: bool,
    /// Dynamic relocations against an undefined `pthread_exit` / `pause` (bound by the loader in
    /// the global lookup scope, where a preload comes before libc): (name, relocation kind).
    kill_relocs: Vec<(String, String)>,
}

/// The libc functions through which CPython kills (3.8–3.13) or parks (3.14+) a thread.
const KILL_FUNCTIONS: &[&str] = &["pthread_exit", "pause"];

/// "PLT" for a jump-slot relocation, "GOT" for a GLOB_DAT one, else the relocation type number.
fn reloc_kind(machine: u16, ty: u32) -> String {
    match (machine, ty) {
        (62, 7) | (183, 1026) => "PLT".into(),  // R_X86_64_JUMP_SLOT, R_AARCH64_JUMP_SLOT
        (62, 6) | (183, 1025) => "GOT".into(),  // R_X86_64_GLOB_DAT, R_AARCH64_GLOB_DAT
        _ => format!("relocation type {ty}"),
    }
}

enum Parse {
    Ok(Box<Elf>),
    NotElf,
    Unsupported(String),
}

fn u16le(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32le(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
}
fn u64le(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}
fn cstr(d: &[u8], o: usize) -> Option<&str> {
    let s = d.get(o..)?;
    let end = s.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&s[..end]).ok()
}

fn parse(path: &Path) -> Result<Parse, String> {
    let d = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if d.len() < 64 || &d[..4] != b"\x7fELF" {
        return Ok(Parse::NotElf);
    }
    if d[4] != 2 || d[5] != 1 {
        return Ok(Parse::Unsupported(format!(
            "{}: ELF class {} / data {}: only 64-bit little-endian ELF is read here",
            path.display(), d[4], d[5]
        )));
    }
    let bad = || format!("{}: truncated or malformed ELF", path.display());
    let mut e = Elf { path: path.to_path_buf(), ..Default::default() };
    e.e_type = u16le(&d, 16).ok_or_else(bad)?;
    e.machine = u16le(&d, 18).ok_or_else(bad)?;
    let (phoff, shoff) = (u64le(&d, 32).ok_or_else(bad)? as usize, u64le(&d, 40).ok_or_else(bad)? as usize);
    let (phentsize, phnum) = (u16le(&d, 54).ok_or_else(bad)? as usize, u16le(&d, 56).ok_or_else(bad)? as usize);
    let (shentsize, shnum) = (u16le(&d, 58).ok_or_else(bad)? as usize, u16le(&d, 60).ok_or_else(bad)? as usize);

    // Program headers: PT_INTERP, PT_DYNAMIC, PT_LOAD (to map addresses to file offsets).
    let mut loads = vec![];
    let mut dyn_off = None;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let (ty, off, vaddr, filesz) = (
            u32le(&d, o).ok_or_else(bad)?,
            u64le(&d, o + 8).ok_or_else(bad)?,
            u64le(&d, o + 16).ok_or_else(bad)?,
            u64le(&d, o + 32).ok_or_else(bad)?,
        );
        match ty {
            1 => loads.push((vaddr, off, filesz)),
            2 => dyn_off = Some((off as usize, filesz as usize)),
            3 => e.interp = cstr(&d, off as usize).map(String::from),
            _ => {}
        }
    }
    let to_off = |addr: u64| loads.iter().find(|&&(v, _, sz)| addr >= v && addr < v + sz).map(|&(v, o, _)| (addr - v + o) as usize);
    if let Some((off, size)) = dyn_off {
        e.dynamic = true;
        let mut entries = vec![];
        let mut o = off;
        while o + 16 <= off + size {
            let (tag, val) = (u64le(&d, o).ok_or_else(bad)?, u64le(&d, o + 8).ok_or_else(bad)?);
            if tag == 0 {
                break;
            }
            entries.push((tag, val));
            o += 16;
        }
        let strtab = entries.iter().find(|x| x.0 == 5).and_then(|x| to_off(x.1));
        let s = |v: u64| strtab.and_then(|st| cstr(&d, st + v as usize)).map(String::from);
        // The relocation tables the loader processes (DT_RELA/DT_RELASZ, DT_JMPREL/DT_PLTRELSZ
        // with DT_PLTREL; DT_REL/DT_RELSZ), against the dynamic symbol table (DT_SYMTAB).
        let get = |tag: u64| entries.iter().find(|x| x.0 == tag).map(|x| x.1);
        let symtab = get(6).and_then(to_off);
        let syment = get(11).unwrap_or(24) as usize;
        let pltrel_ent = if get(20) == Some(17) { 16 } else { 24 }; // DT_PLTREL: DT_REL or DT_RELA
        let tables = [
            (get(7).and_then(to_off), get(8).unwrap_or(0) as usize, 24usize),   // DT_RELA, DT_RELASZ
            (get(17).and_then(to_off), get(18).unwrap_or(0) as usize, 16),      // DT_REL, DT_RELSZ
            (get(23).and_then(to_off), get(2).unwrap_or(0) as usize, pltrel_ent), // DT_JMPREL, DT_PLTRELSZ
        ];
        if let (Some(symtab), Some(_)) = (symtab, strtab) {
            for (start, size, ent) in tables {
                let Some(start) = start else { continue };
                for k in 0..size / ent {
                    let Some(info) = u64le(&d, start + k * ent + 8) else { break };
                    let (sym, ty) = ((info >> 32) as usize, (info & 0xffff_ffff) as u32);
                    if sym == 0 {
                        continue;
                    }
                    let so = symtab + sym * syment;
                    let (Some(name), Some(shndx)) = (u32le(&d, so), u16le(&d, so + 6)) else { continue };
                    let Some(n) = s(name as u64) else { continue };
                    if shndx == 0 && KILL_FUNCTIONS.contains(&n.as_str()) && !e.kill_relocs.iter().any(|x| x.0 == n) {
                        e.kill_relocs.push((n, reloc_kind(e.machine, ty)));
                    }
                }
            }
        }
        for &(tag, val) in &entries {
            match tag {
                1 => e.needed.extend(s(val)),
                14 => e.soname = s(val),
                15 => e.rpath = s(val),
                29 => e.runpath = s(val),
                16 => e.symbolic = true,                             // DT_SYMBOLIC
                30 if val & 0x2 != 0 => e.symbolic = true,           // DT_FLAGS & DF_SYMBOLIC
                _ => {}
            }
        }
    }
    // Section headers: .dynsym (and .symtab when not stripped).
    for i in 0..shnum {
        let o = shoff + i * shentsize;
        let Some(ty) = u32le(&d, o + 4) else { break };
        if ty != 11 && ty != 2 {
            continue; // SHT_DYNSYM, SHT_SYMTAB
        }
        let (off, size, link, entsize) = (
            u64le(&d, o + 24).ok_or_else(bad)? as usize,
            u64le(&d, o + 32).ok_or_else(bad)? as usize,
            u32le(&d, o + 40).ok_or_else(bad)? as usize,
            u64le(&d, o + 56).ok_or_else(bad)? as usize,
        );
        let lo = shoff + link * shentsize;
        let stroff = u64le(&d, lo + 24).ok_or_else(bad)? as usize;
        if entsize < 24 {
            continue;
        }
        for k in 0..size / entsize {
            let so = off + k * entsize;
            let (Some(name), Some(info), Some(shndx)) = (u32le(&d, so), d.get(so + 4), u16le(&d, so + 6)) else { break };
            let bind = info >> 4;
            if bind == 0 && ty == 11 {
                continue; // STB_LOCAL
            }
            let Some(n) = cstr(&d, stroff + name as usize) else { continue };
            let n = n.split('@').next().unwrap_or(n);
            if !INTERESTING.contains(&n) {
                continue;
            }
            if ty == 2 {
                if shndx != 0 && CPYTHON_MARKERS.contains(&n) {
                    e.symtab_cpython = true;
                }
            } else if shndx == 0 {
                e.imports.insert(n.to_string());
            } else {
                e.defines.insert(n.to_string());
            }
        }
    }
    Ok(Parse::Ok(Box::new(e)))
}

impl Elf {
    /// CPython's API defined here (gilgate's drop-in exports do not count).
    fn defines_cpython(&self) -> bool {
        !self.defines.contains("gilgate_version") && CPYTHON_MARKERS.iter().any(|m| self.defines.contains(*m))
    }
    fn name(&self) -> String {
        self.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// Directories the loader searches after RPATH/LD_LIBRARY_PATH/RUNPATH: ld.so.conf (as the cache
/// would hold them) and the default system directories.
fn system_dirs() -> Vec<PathBuf> {
    fn conf(path: &Path, out: &mut Vec<PathBuf>, depth: u32) {
        let Ok(text) = std::fs::read_to_string(path) else { return };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pat) = line.strip_prefix("include") {
                let pat = pat.trim();
                let (dir, file) = pat.rsplit_once('/').unwrap_or((".", pat));
                let (pre, suf) = file.split_once('*').unwrap_or((file, ""));
                if let Ok(rd) = std::fs::read_dir(dir) {
                    let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
                    v.sort();
                    for p in v {
                        let n = p.file_name().unwrap_or_default().to_string_lossy().to_string();
                        if n.starts_with(pre) && n.ends_with(suf) && depth < 4 {
                            conf(&p, out, depth + 1);
                        }
                    }
                }
            } else if line.starts_with('/') {
                out.push(PathBuf::from(line));
            }
        }
    }
    let mut v = vec![];
    conf(Path::new("/etc/ld.so.conf"), &mut v, 0);
    for d in ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
              "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        v.push(PathBuf::from(d));
    }
    v
}

fn expand(dirs: &str, origin: &Path) -> Vec<PathBuf> {
    dirs.split(':').filter(|s| !s.is_empty()).map(|s| {
        let o = origin.display().to_string();
        PathBuf::from(s.replace("${ORIGIN}", &o).replace("$ORIGIN", &o)
            .replace("${LIB}", "lib64").replace("$LIB", "lib64")
            .replace("${PLATFORM}", std::env::consts::ARCH).replace("$PLATFORM", std::env::consts::ARCH))
    }).collect()
}

/// Where the loader would find `name` for `from` (an approximation of glibc's search order).
fn find_lib(name: &str, from: &Elf, exe: &Elf, secure: bool, sys: &[PathBuf]) -> Option<(PathBuf, Box<Elf>)> {
    let origin = |e: &Elf| std::fs::canonicalize(&e.path).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    let mut dirs = vec![];
    if name.contains('/') {
        dirs.push(PathBuf::new());
    } else {
        if from.runpath.is_none() {
            for e in [from, exe] {
                if let Some(r) = &e.rpath {
                    dirs.extend(expand(r, &origin(e)));
                }
            }
        }
        if !secure {
            if let Ok(l) = std::env::var("LD_LIBRARY_PATH") {
                dirs.extend(expand(&l, Path::new(".")));
            }
        }
        if let Some(r) = &from.runpath {
            dirs.extend(expand(r, &origin(from)));
        }
        dirs.extend(sys.iter().cloned());
    }
    for d in dirs {
        let p = if d.as_os_str().is_empty() { PathBuf::from(name) } else { d.join(name) };
        if !p.is_file() {
            continue;
        }
        if let Ok(Parse::Ok(e)) = parse(&p) {
            if e.machine == exe.machine {
                return Some((p, e));
            }
        }
    }
    None
}

fn resolve_program(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Path::new(prog).exists().then(|| PathBuf::from(prog));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':').map(|d| Path::new(if d.is_empty() { "." } else { d }).join(prog)).find(|p| p.is_file())
}

extern "C" {
    fn getxattr(path: *const std::os::raw::c_char, name: *const std::os::raw::c_char, value: *mut std::os::raw::c_void, size: usize) -> isize;
}

extern "C" {
    fn getuid() -> u32;
    fn getgid() -> u32;
}

/// setuid/setgid bits (for a user other than the owner) or file capabilities: the loader's
/// secure-execution mode (AT_SECURE).
fn secure_reason(p: &Path, r: &mut Report) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::metadata(p).ok()?;
    let mode = md.permissions().mode();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (getuid(), getgid()) };
    if mode & 0o4000 != 0 {
        if md.uid() != uid {
            return Some(format!("setuid (owner uid {}, you are uid {uid})", md.uid()));
        }
        r.fact("setuid, owned by you: for other users the loader ignores LD_PRELOAD");
    }
    if mode & 0o2000 != 0 && mode & 0o010 != 0 {
        if md.gid() != gid {
            return Some(format!("setgid (group {}, yours is {gid})", md.gid()));
        }
        r.fact("setgid to your own group: for other users the loader ignores LD_PRELOAD");
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: NUL-terminated path and attribute name; a size query (NULL buffer, size 0).
    let n = unsafe { getxattr(c.as_ptr(), c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
    (n > 0).then(|| "file capabilities (security.capability)".into())
}

struct Report {
    lines: Vec<String>,
}
impl Report {
    fn fact(&mut self, s: impl Into<String>) {
        self.lines.push(format!("  {}", s.into()));
    }
    fn end(self, code: i32, verdict: &str, remedy: Option<&str>) -> ! {
        for l in &self.lines {
            println!("{l}");
        }
        println!("{verdict}");
        if let Some(r) = remedy {
            println!("  remedy: {r}");
        }
        std::process::exit(code)
    }
}

const REMEDY_STATIC_PY: &str = "run a CPython whose executable links a shared libpython (built with --enable-shared; pyenv: \
PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.X), or call the gilgate_* API from the host code";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prog = match args.as_slice() {
        [p, ..] if p != "-h" && p != "--help" => p.clone(),
        _ => {
            eprintln!("usage: gilgate-run --check PROGRAM   (exit 0 covered, 1 not covered, 2 cannot tell, 3 partially covered)");
            std::process::exit(2);
        }
    };
    println!("gilgate-run --check {prog}");
    let mut r = Report { lines: vec![] };
    let Some(mut path) = resolve_program(&prog) else {
        r.end(2, "cannot tell: PROGRAM not found (not a path, not on PATH)", None)
    };
    // A script: its interpreter is what the loader runs (followed once).
    let head = std::fs::read(&path).map(|d| d[..d.len().min(256)].to_vec()).unwrap_or_default();
    if head.starts_with(b"#!") {
        let line = String::from_utf8_lossy(&head[2..]).lines().next().unwrap_or("").trim().to_string();
        let mut words = line.splitn(2, char::is_whitespace);
        let interp = words.next().unwrap_or("").to_string();
        let arg = words.next().unwrap_or("").trim().to_string();
        let target = if Path::new(&interp).file_name().is_some_and(|n| n == "env") {
            arg.split_whitespace().find(|w| !w.starts_with('-') && !w.contains('=')).map(String::from)
        } else {
            Some(interp.clone())
        };
        let resolved = target.as_deref().and_then(resolve_program);
        let Some(ip) = resolved else {
            r.fact(format!("{} is a script (#!{line})", path.display()));
            r.end(2, "cannot tell: the script's interpreter cannot be resolved", None)
        };
        if std::fs::read(&ip).is_ok_and(|d| d.starts_with(b"#!")) {
            r.fact(format!("{} is a script run by {} (itself a script)", path.display(), ip.display()));
            r.end(2, "cannot tell: the script's interpreter is a script too (followed once only)", None)
        }
        r.fact(format!("{} is a script run by {}: checking the interpreter", path.display(), ip.display()));
        path = ip;
    }
    let exe = match parse(&path) {
        Ok(Parse::Ok(e)) => e,
        Ok(Parse::NotElf) => r.end(2, &format!("cannot tell: {} is not an ELF file", path.display()), None),
        Ok(Parse::Unsupported(why)) => r.end(2, &format!("cannot tell: {why}"), None),
        Err(why) => r.end(2, &format!("cannot tell: {why}"), None),
    };
    let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
    if real != path {
        r.fact(format!("{} -> {}", path.display(), real.display()));
    }
    if exe.e_type != 2 && exe.e_type != 3 {
        r.end(2, "cannot tell: not an executable or shared object ELF file", None)
    }
    let static_cpython = exe.defines_cpython() || (exe.symtab_cpython && !exe.defines.contains("gilgate_version"));
    if exe.interp.is_none() {
        if exe.e_type == 3 && exe.soname.is_some() {
            r.end(2, &format!("cannot tell: {} is a shared library, not a program", path.display()), None)
        }
        r.fact("statically linked: no dynamic loader runs, so LD_PRELOAD has no effect");
        if static_cpython {
            r.fact("it contains CPython itself");
        }
        r.end(1, "NOT covered: a statically linked executable never loads gilgate",
              Some("use a dynamically linked program with a shared libpython, or link gilgate into it and call the gilgate_* API"))
    }
    r.fact(format!("dynamically linked (loader {})", exe.interp.as_deref().unwrap_or("?")));

    // The objects in load order (breadth-first over DT_NEEDED, as the loader does).
    let secure = secure_reason(&real, &mut r);
    let sys = system_dirs();
    let mut objs: Vec<Box<Elf>> = vec![];
    let mut missing = vec![];
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(String, usize)> = exe.needed.iter().map(|n| (n.clone(), 0)).collect();
    let exe_ref: &Elf = &exe;
    while let Some((name, from)) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let from_elf: &Elf = if from == 0 { exe_ref } else { &objs[from - 1] };
        match find_lib(&name, from_elf, exe_ref, secure.is_some(), &sys) {
            Some((_, e)) => {
                let idx = objs.len() + 1;
                for n in &e.needed {
                    queue.push_back((n.clone(), idx));
                }
                if let Some(so) = &e.soname {
                    seen.insert(so.clone());
                }
                objs.push(e);
            }
            None => missing.push(name),
        }
    }
    for m in &missing {
        r.fact(format!("needed library not found here: {m} (the loader may find it through LD_LIBRARY_PATH or its cache)"));
    }
    let is_libc = |e: &Elf| {
        let n = e.name();
        n.starts_with("libc.so") || n.starts_with("libdl.so") || n.starts_with("ld-linux") || n.starts_with("ld64.so")
    };
    let gilgate_pos = objs.iter().position(|e| e.defines.contains("gilgate_version"));
    let cpython_pos = objs.iter().position(|e| e.defines_cpython());
    let libc_pos = objs.iter().position(|e| is_libc(e));
    let linked_ahead = match gilgate_pos {
        Some(g) => cpython_pos.is_none_or(|c| g < c) && libc_pos.is_none_or(|c| g < c),
        None => false,
    };
    if let Some(g) = gilgate_pos {
        r.fact(format!("links gilgate ({}){}", objs[g].path.display(),
            if linked_ahead { ", ahead of libpython and libc" } else { ", but after libpython or libc (the preload still comes first)" }));
    }

    if static_cpython {
        r.fact(format!("the executable itself defines CPython's API ({}): a statically linked interpreter",
            if exe.defines_cpython() { "exported dynamic symbols" } else { "its symbol table" }));
        r.fact("its own definitions come first in the lookup order (the executable precedes any preload), so \
neither a preload nor a linked gilgate receives the calls into CPython's thread-state API, the program's, its \
extension modules' or ctypes callbacks': no fallible entries, no gate, no drain");
        if let Some(why) = &secure {
            r.fact(format!("{why}: the loader runs it in secure-execution mode and ignores LD_PRELOAD entries given by path"));
            r.end(1, "NOT covered: statically linked CPython interpreter, and LD_PRELOAD is ignored for this program",
                  Some(REMEDY_STATIC_PY))
        }
        if exe.kill_relocs.is_empty() {
            r.fact("it has no dynamic relocation against pthread_exit or pause: gilgate cannot catch CPython's kills either");
            r.end(1, "NOT covered: statically linked CPython interpreter", Some(REMEDY_STATIC_PY))
        }
        // "pthread_exit, pause via PLT" (in KILL_FUNCTIONS order, grouped by relocation kind).
        let mut kr = exe.kill_relocs.clone();
        kr.sort_by_key(|(n, _)| KILL_FUNCTIONS.iter().position(|f| f == n));
        let mut groups: Vec<(String, Vec<String>)> = vec![];
        for (n, k) in kr {
            match groups.iter_mut().find(|g| g.0 == k) {
                Some(g) => g.1.push(n),
                None => groups.push((k, vec![n])),
            }
        }
        let relocs = groups.iter().map(|(k, ns)| format!("{} via {k}", ns.join(", "))).collect::<Vec<_>>().join("; ");
        r.fact(format!("it imports {relocs} (dynamic relocations against undefined symbols, bound in the global \
lookup scope, where a preloaded gilgate comes before libc): it calls gilgate's definitions (pthread_exit: \
CPython 3.8–3.13's kill; pause: 3.14+'s park)"));
        r.fact("so a thread that CPython kills or parks during finalization, a host thread (e.g. a library's native \
thread running a ctypes callback) or one of its own daemon threads, is parked by default (it waits silently until \
the process exits: no crash, no forced unwind; a later wait on it by the main thread is named by gilgate's \
watchdog); GILGATE_ON_FINALIZE=abort|exit apply to host threads only, CPython's own threads then get CPython's \
behaviour");
        r.end(3, &format!("partially covered: finalization kills parked ({relocs}), API calls not gated"), Some(REMEDY_STATIC_PY))
    }
    if let Some(why) = &secure {
        r.fact(format!("{why}: the loader runs it in secure-execution mode and ignores LD_PRELOAD entries given by path"));
        if linked_ahead {
            r.end(0, "covered: gilgate is linked ahead of libpython and libc (no preload needed)", None)
        }
        r.end(1, "NOT covered: LD_PRELOAD is ignored for this program",
              Some("link gilgate ahead of libpython (-lgilgate -lpython3.X), or run a copy without the setuid/setgid bit or capabilities"))
    }
    // The program's own objects: the executable and libraries outside the system directories
    // (system libraries such as libselinux load their own plugins, not Python).
    let in_sys = |e: &Elf| e.path.parent().is_some_and(|d| sys.iter().any(|s| s == d));
    let importers: Vec<&Elf> = std::iter::once(exe_ref).chain(objs.iter().map(|b| &**b).filter(|e| !in_sys(e)))
        .filter(|e| !is_libc(e) && !e.defines_cpython() && !e.defines.contains("gilgate_version"))
        .filter(|e| e.imports.contains("dlopen") || e.imports.contains("dlmopen"))
        .collect();
    let dlmopen = importers.iter().any(|e| e.imports.contains("dlmopen"));
    let deepbind_note = "not visible in the files: a dlopen with RTLD_DEEPBIND (that library binds to its own \
dependencies first) or a dlmopen into another namespace (where the preload is absent) would bypass gilgate";

    if let Some(c) = cpython_pos {
        let py = &objs[c];
        r.fact(format!("links CPython: {}", py.path.display()));
        let n = py.name();
        if !n.starts_with("libpython") {
            r.fact(format!("{n} contains CPython but is not a libpython: calls made by its own (non-CPython) code \
count as CPython's own and are not gated"));
            r.end(2, "cannot tell: CPython is embedded in a library that may also hold the host's code",
                  Some("link the host code against a shared libpython, or call the gilgate_* API"))
        }
        if py.symbolic {
            r.fact(format!("{n} is linked -Bsymbolic (DF_SYMBOLIC): CPython's internal calls bind inside it, which \
gilgate passes through anyway; calls from the program and extension modules still reach gilgate"));
        }
        if !importers.is_empty() {
            r.fact(format!("also loads libraries at run time (imports dlopen: {}); {deepbind_note}",
                importers.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")));
        }
        r.end(0, "covered: its calls into CPython's thread-state functions reach gilgate's exports first", None)
    }
    if missing.iter().any(|m| m.starts_with("libpython")) {
        r.end(0, "covered: it links libpython (not found here; it will not start until the loader can find it)", None)
    }
    if !importers.is_empty() {
        let names = importers.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ");
        let dlsym = importers.iter().any(|e| e.imports.contains("dlsym") || e.imports.contains("dlvsym"));
        r.fact(format!("does not link libpython; loads libraries at run time (imports dlopen{}: {names})",
            if dlsym { "/dlsym" } else { "" }));
        let names_py = importers.iter().any(|e| std::fs::read(&e.path).is_ok_and(|d| d.windows(9).any(|w| w == b"libpython")));
        r.fact(if names_py { "it names libpython (the string is in its files)" }
               else { "nothing in its files names libpython (it may take the path from its arguments or configuration)" });
        r.fact("if it loads libpython, the functions it resolves with dlsym on that handle are gilgate's \
(gilgate interposes dlsym), and libraries it loads that link libpython call gilgate's exports");
        r.fact(deepbind_note);
        if dlmopen {
            r.fact("it imports dlmopen: a libpython loaded into a new namespace does not see the preloaded gilgate");
        }
        r.end(0, "covered via dlsym interposition, if it loads CPython at run time", None)
    }
    r.end(2, "cannot tell: no CPython in sight (it neither links libpython nor defines CPython's API nor loads \
libraries at run time itself); if it starts another program that uses Python, check that one (LD_PRELOAD is \
inherited)", None)
}
