//! Reporting: the result lines of target/test-results.tsv, case names and the GILGATE_CASE
//! filter, the pass/fail tally, the CPythons announced as run or absent.

use crate::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The names of the CPythons `discover` found (for attributing a result line to a CPython).
pub(crate) static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The suite a result line belongs to: GILGATE_RESULTS_SUITE, else this test binary's name
/// (cargo's `c_hosts-0123abcd` -> `c_hosts`).
pub fn suite_name() -> String {
    if let Ok(s) = std::env::var("GILGATE_RESULTS_SUITE") {
        if !s.is_empty() {
            return s;
        }
    }
    let a0 = std::env::args().next().unwrap_or_default();
    let stem = Path::new(&a0).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((a, h)) if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) => a.to_string(),
        _ => stem,
    }
}

/// Append one machine-readable result line `suite<TAB>cpython<TAB>case<TAB>outcome` to the file
/// named by GILGATE_RESULTS (set by test.sh; nothing when unset). Outcome: pass, fail or absent.
/// One write(2) per line on an O_APPEND file, so suites running one after another (or at once)
/// do not interleave within a line.
/// Under GILGATE_CASE a pass or fail of a case the pattern does not select is not written.
pub fn record(cpython: &str, case: &str, outcome: &str) {
    if (outcome == "pass" || outcome == "fail") && !selected(case) {
        return;
    }
    write_line(cpython, case, outcome);
}

fn write_line(cpython: &str, case: &str, outcome: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GILGATE_RESULTS") else { return };
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!("{}\t{}\t{}\t{}\n", clean(&suite_name()), clean(cpython), clean(case), outcome);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The CPython a case name starts with (the longest known name that prefixes it), else "-".
pub fn cpython_of(case: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.iter().filter(|n| case.starts_with(n.as_str()) && case[n.len()..].chars().next().map_or(true, |c| c == ' ' || c == ':'))
        .max_by_key(|n| n.len()).cloned().unwrap_or_else(|| "-".into())
}

/// Pass/fail bookkeeping for the custom test binaries; prints failures as they come and the
/// closing `N passed, N failed` line.
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

impl Default for Tally {
    /// Also where a suite that GILGATE_CASE does not select stops (`enter_suite`).
    fn default() -> Tally {
        enter_suite();
        Tally { passed: 0, failed: 0 }
    }
}

impl Tally {
    /// One case: recorded (result line), counted, its detail printed on failure. Under
    /// GILGATE_CASE a case the pattern does not select is neither (it is counted as unselected).
    pub fn case(&mut self, name: &str, ok: bool, detail: &str) {
        if !selected(name) {
            return;
        }
        write_line(&cpython_of(name), name, if ok { "pass" } else { "fail" });
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }
    pub fn finish(&self, started: Instant) -> ! {
        println!();
        println!("elapsed {:.1}s", started.elapsed().as_secs_f64());
        let filter_ok = filter_report();
        println!("{} passed, {} failed", self.passed, self.failed);
        std::process::exit(if self.failed == 0 && filter_ok { 0 } else { 1 });
    }
}

/// Print which CPythons will run and which are absent.
pub fn announce(title: &str, d: &Discovery) {
    println!("{title}");
    println!("CPython versions that will run:");
    for p in &d.found {
        println!("  {:28} {}", p.name, p.exe.display());
    }
    println!("CPython versions absent (not run, not counted):");
    for a in &d.absent {
        println!("  {a}");
        // "CPython 3.8: absent (...)" -> "CPython 3.8"; the whole line is the case.
        let label = a.split_once(": ").map(|x| x.0).unwrap_or(a);
        record(label, a, "absent");
    }
}

// ---- Case names and the GILGATE_CASE filter ----------------------------------------------
//
// Every case has a name, `<suite>/<case>`, where <case> is what the suite records (it starts
// with the CPython's name, e.g. `c_hosts/pyenv-3.12.1 seed c tstate workers=4 ...`,
// `dropin/debian-unstable-3.15.2 LD_PRELOAD seed gilstate policy=park seed=0`). The
// `case` column of target/test-results.tsv is <case>; the suite is the first column.
//
// GILGATE_CASE=PATTERN runs only the cases it selects: a glob (`*`, `?`) matched against the
// whole name, or, without glob characters, a substring of it; `A|B` selects what A or B
// selects (test.sh's arm64 lane: the seed host and api_edges). Before anything runs:
//   - a suite whose name cannot match (the part of PATTERN before its first `/`, when it has
//     one and that part has no glob character, is not the suite's name) stops at once;
//   - when PATTERN names CPythons (contains `pyenv-3.12.1`, `debian-unstable-3.15.2d`, ...),
//     only those are discovered (the others are recorded as skipped, never passed).
// Within the suite the cases are matched by name; the suites skip what they can before
// running it and never report an unselected case. A PATTERN that selects no case of a suite
// it names says so and fails that suite; in other suites it says so and passes (test.sh then
// fails when no case at all was selected).

static MATCHED: AtomicUsize = AtomicUsize::new(0);
static UNMATCHED: AtomicUsize = AtomicUsize::new(0);
static SAMPLES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// GILGATE_CASE, when set and not empty.
pub fn case_pattern() -> Option<String> {
    std::env::var("GILGATE_CASE").ok().filter(|s| !s.trim().is_empty())
}

/// `<suite>/<case>`: the name GILGATE_CASE is matched against.
pub fn case_name(case: &str) -> String {
    format!("{}/{}", suite_name(), case)
}

/// `*` any run of characters, `?` one character; anchored at both ends.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    pattern.split('|').any(|alt| {
        if alt.contains(['*', '?']) {
            glob_match(alt, name)
        } else {
            name.contains(alt)
        }
    })
}

/// Does GILGATE_CASE select this case of this suite (always, when unset)? Counts the answer
/// for `filter_report`.
pub fn selected(case: &str) -> bool {
    let Some(pat) = case_pattern() else { return true };
    let full = case_name(case);
    if pattern_matches(&pat, &full) {
        MATCHED.fetch_add(1, Ordering::Relaxed);
        true
    } else {
        UNMATCHED.fetch_add(1, Ordering::Relaxed);
        let mut s = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 5 {
            s.push(full);
        }
        false
    }
}

/// Would `selected` answer yes for this case name? (No counting: for skipping a job before
/// it runs; its result is still passed through `selected`/`Tally::case`.)
pub fn wanted(case: &str) -> bool {
    let Some(pat) = case_pattern() else { return true };
    let full = case_name(case);
    let w = pattern_matches(&pat, &full);
    if !w {
        let mut s = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 5 {
            s.push(full);
        }
    }
    w
}

/// Is a run that is no case of its own (a comparison column, a raw run shown but not asserted)
/// to be run? Only without GILGATE_CASE.
pub fn unfiltered() -> bool {
    case_pattern().is_none()
}

/// The suite a GILGATE_CASE alternative names explicitly (its part before the first `/`,
/// without glob characters), if any.
fn named_suite(alt: &str) -> Option<&str> {
    let (suite, _) = alt.split_once('/')?;
    (!suite.contains(['*', '?']) && !suite.is_empty()).then_some(suite)
}

/// Can GILGATE_CASE select anything in this suite (can any of its alternatives)?
pub fn suite_selected() -> bool {
    let Some(pat) = case_pattern() else { return true };
    let me = suite_name();
    pat.split('|').any(|alt| named_suite(alt).is_none_or(|s| s == me))
}

/// A suite's first step (called by `discover` and `Tally::default`): under a GILGATE_CASE that
/// cannot select any of its cases, say so and exit 0 before building or running anything.
pub fn enter_suite() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        if !suite_selected() {
            println!("GILGATE_CASE={:?}: names another suite; {} not run", case_pattern().unwrap_or_default(), suite_name());
            std::process::exit(0);
        }
    });
}

/// The CPythons a GILGATE_CASE pattern names (the found names it contains, the longest when
/// one contains another); empty when it names none (every CPython can then match).
pub fn pattern_pythons(names: &[String]) -> Vec<String> {
    let Some(pat) = case_pattern() else { return vec![] };
    let hit: Vec<&String> = names.iter().filter(|n| pat.contains(n.as_str())).collect();
    hit.iter().filter(|n| !hit.iter().any(|m| m.len() > n.len() && m.contains(n.as_str()))).map(|n| n.to_string()).collect()
}

/// Under GILGATE_CASE: prints how many of this suite's cases the pattern selected. Returns
/// false when it selected none in a suite it names (the suite then fails: a filter that
/// matches nothing must not pass silently); elsewhere a no-match is printed and recorded as
/// absent.
pub fn filter_report() -> bool {
    let Some(pat) = case_pattern() else { return true };
    let (m, u) = (MATCHED.load(Ordering::Relaxed), UNMATCHED.load(Ordering::Relaxed));
    if m > 0 {
        println!("GILGATE_CASE={pat:?}: {m} result(s) of selected cases in {}, {u} of other cases not reported", suite_name());
        return true;
    }
    let samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("GILGATE_CASE={pat:?}: NO case of suite {} matched ({u} cases ran or were considered{})", suite_name(),
        if samples.is_empty() { String::new() } else { format!("; their names look like: {}", samples.join(" | ")) });
    record("-", &format!("GILGATE_CASE={pat}: no case of suite {} matched", suite_name()), "absent");
    let me = suite_name();
    !pat.split('|').any(|alt| named_suite(alt).is_some_and(|s| s == me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_whole_names() {
        assert!(glob_match("dropin/pyenv-3.12.1*", "dropin/pyenv-3.12.1 LD_PRELOAD seed gilstate policy=park seed=0"));
        assert!(glob_match("*policy=park seed=?", "dropin/pyenv-3.12.1 LD_PRELOAD seed gilstate policy=park seed=0"));
        assert!(!glob_match("*policy=park seed=?", "dropin/pyenv-3.12.1 LD_PRELOAD seed gilstate policy=park seed=10"));
        assert!(!glob_match("dropin/pyenv-3.12.1", "dropin/pyenv-3.12.1 LD_PRELOAD")); // anchored
        assert!(glob_match("c_hosts/*seed*cxx-exc*", "c_hosts/pyenv-3.8.18 seed cxx-exc tstate workers=2"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn substring_without_glob_characters() {
        assert!(pattern_matches("3.12.1 LD_PRELOAD", "dropin/pyenv-3.12.1 LD_PRELOAD seed"));
        assert!(!pattern_matches("3.12.2", "dropin/pyenv-3.12.1 LD_PRELOAD seed"));
        assert!(!pattern_matches("dropin/x*", "dropin/pyenv-3.12.1"));
    }

    #[test]
    fn alternatives_select_what_either_selects() {
        let p = "c_hosts/arm64-* seed *|c_hosts/arm64-* api-edges*";
        assert!(pattern_matches(p, "c_hosts/arm64-debian-unstable-3.13.18 seed c gilstate workers=2"));
        assert!(pattern_matches(p, "c_hosts/arm64-debian-unstable-3.13.18 api-edges (before init)"));
        assert!(!pattern_matches(p, "c_hosts/arm64-debian-unstable-3.13.18 late dlopen of gilgate"));
        assert!(!pattern_matches(p, "c_hosts/pyenv-3.12.1 seed c gilstate"));
        assert!(pattern_matches("3.12.2|3.12.1 LD", "dropin/pyenv-3.12.1 LD_PRELOAD seed"));
    }

    #[test]
    fn a_suite_is_named_only_without_glob() {
        assert_eq!(named_suite("dropin/pyenv-3.12.1*"), Some("dropin"));
        assert_eq!(named_suite("c_hosts-portable/x"), Some("c_hosts-portable"));
        assert_eq!(named_suite("*/pyenv-3.12.1*"), None);
        assert_eq!(named_suite("pyenv-3.12.1 seed"), None);
    }
}
