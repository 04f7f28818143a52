//! The module layering of src/ (lib.rs): every module uses only modules of its own layer or
//! the layers above it, and no two modules use each other, directly or through others.
//! Read from the sources (`crate::m` paths and `use crate::{..}` lists), so a new back edge
//! fails here with the line that made it.

use std::collections::{BTreeMap, BTreeSet};

const LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["status", "log", "config", "layout", "counters", "pytypes", "sync"]),
    ("platform", &["fastpath", "origin", "cpython"]),
    ("core", &["protocol", "gate"]),
    ("lifecycle", &["pep788", "guards", "park", "drain", "stats"]),
    ("edges", &["policy", "interpose", "dlsym", "dropin", "api", "pep788_compat"]),
    ("bindings", &["safe", "pyo3"]),
];

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&m))
}

/// Module -> (used module, line) for every `crate::x` in src/x.rs.
fn uses() -> BTreeMap<String, Vec<(String, String)>> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().map_or(true, |x| x != "rs") {
            continue;
        }
        let m = p.file_stem().unwrap().to_str().unwrap().to_string();
        if m == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut v = Vec::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            for prefix in ["crate::", "super::"] {
                for (i, _) in code.match_indices(prefix) {
                    let rest = &code[i + prefix.len()..];
                    let names: Vec<String> = if let Some(list) = rest.strip_prefix('{') {
                        let list = &list[..list.find('}').unwrap_or(list.len())];
                        list.split(',').map(|x| x.trim().split("::").next().unwrap().to_string()).collect()
                    } else {
                        vec![rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()]
                    };
                    for n in names {
                        if layer_of(&n).is_some() && n != m {
                            v.push((n, line.trim().to_string()));
                        }
                    }
                }
            }
        }
        out.insert(m, v);
    }
    out
}

#[test]
fn every_module_is_in_a_layer() {
    for m in uses().keys() {
        assert!(layer_of(m).is_some(), "src/{m}.rs is in no layer: add it to lib.rs's and this list");
    }
}

#[test]
fn no_module_uses_a_lower_layer() {
    let mut bad = Vec::new();
    for (m, v) in uses() {
        for (n, line) in v {
            if layer_of(&n) > layer_of(&m) {
                bad.push(format!("{m} ({}) uses {n} ({}): {line}", LAYERS[layer_of(&m).unwrap()].0, LAYERS[layer_of(&n).unwrap()].0));
            }
        }
    }
    assert!(bad.is_empty(), "back edges:\n{}", bad.join("\n"));
}

#[test]
fn no_import_cycle() {
    let u = uses();
    let g: BTreeMap<&str, BTreeSet<&str>> =
        u.iter().map(|(m, v)| (m.as_str(), v.iter().map(|(n, _)| n.as_str()).collect())).collect();
    // Depth-first search for a back edge.
    fn visit<'a>(m: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, path: &mut Vec<&'a str>,
                 done: &mut BTreeSet<&'a str>) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut c = path[i..].to_vec();
            c.push(m);
            return Some(c);
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for n in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(c) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", c.join(" -> "));
        }
    }
}
