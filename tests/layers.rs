//! The layering of src/: each folder is a layer, in the order lib.rs declares them; every module
//! (file) uses only modules of its own folder or of the folders above it, no two modules of a
//! folder use each other (directly or through others), and docs/design.md's layer table lists
//! exactly the modules each folder holds. Read from the sources (`crate::x`, `crate::folder::x`,
//! `super::x` paths and `use` lists), so a back edge fails here with the line that made it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

struct Tree {
    /// Folders in lib.rs's order.
    layers: Vec<String>,
    /// Module (file stem) -> its folder.
    folder_of: BTreeMap<String, String>,
}

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

fn tree() -> Tree {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layers: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';').map(str::to_string))
        .filter(|m| src().join(m).is_dir())
        .collect();
    assert!(layers.len() >= 5, "lib.rs declares the layer folders: {layers:?}");
    let mut folder_of = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.is_dir() && name != "c" {
            assert!(layers.contains(&name), "src/{name}/ is not declared as a layer in lib.rs");
        } else if p.extension().is_some_and(|x| x == "rs") {
            assert_eq!(name, "lib.rs", "src/{name}: every module lives in a layer folder");
        }
    }
    for l in &layers {
        for e in std::fs::read_dir(src().join(l)).unwrap() {
            let p = e.unwrap().path();
            assert!(!p.is_dir(), "{}: layers are flat folders", p.display());
            let m = p.file_stem().unwrap().to_str().unwrap().to_string();
            if p.extension().is_some_and(|x| x == "rs") && m != "mod" {
                let prev = folder_of.insert(m.clone(), l.clone());
                assert!(prev.is_none(), "module name {m} is used in two folders");
            }
        }
    }
    Tree { layers, folder_of }
}

impl Tree {
    fn layer(&self, folder: &str) -> usize {
        self.layers.iter().position(|l| l == folder).unwrap()
    }
}

/// A use of another module: the module (None: a folder's facade, its mod.rs), its folder, the line.
struct Use {
    module: Option<String>,
    folder: String,
    line: String,
}

/// Module -> its uses of other modules.
fn uses(t: &Tree) -> BTreeMap<String, Vec<Use>> {
    let mut out = BTreeMap::new();
    for (m, f) in &t.folder_of {
        let text = std::fs::read_to_string(src().join(f).join(format!("{m}.rs"))).unwrap();
        let mut v = Vec::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            for prefix in ["crate::", "super::"] {
                for (i, _) in code.match_indices(prefix) {
                    let rest = &code[i + prefix.len()..];
                    let paths: Vec<Vec<String>> = if let Some(list) = rest.strip_prefix('{') {
                        let list = &list[..list.find('}').unwrap_or(list.len())];
                        list.split(',').map(|x| x.trim().split("::").map(|s| s.trim().to_string()).collect()).collect()
                    } else {
                        let p: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
                        vec![p.split("::").map(str::to_string).collect()]
                    };
                    for p in paths {
                        let first = p.first().cloned().unwrap_or_default();
                        let u = if prefix == "super::" {
                            // Inside a file's own `mod tests`, `super::x` is that file's item.
                            t.folder_of.get(&first).filter(|ff| *ff == f).map(|_| Use { module: Some(first.clone()), folder: f.clone(), line: line.trim().into() })
                        } else if t.layers.contains(&first) {
                            let sub = p.get(1).filter(|s| t.folder_of.get(*s) == Some(&first)).cloned();
                            Some(Use { module: sub, folder: first.clone(), line: line.trim().into() })
                        } else {
                            t.folder_of.get(&first).map(|ff| Use { module: Some(first.clone()), folder: ff.clone(), line: line.trim().into() })
                        };
                        if let Some(u) = u {
                            if u.module.as_deref() != Some(m.as_str()) {
                                v.push(u);
                            }
                        }
                    }
                }
            }
        }
        out.insert(m.clone(), v);
    }
    out
}

#[test]
fn no_module_uses_a_lower_layer() {
    let t = tree();
    let mut bad = Vec::new();
    for (m, v) in uses(&t) {
        let f = &t.folder_of[&m];
        for u in v {
            if t.layer(&u.folder) > t.layer(f) {
                bad.push(format!("{f}/{m} uses {}/{}: {}", u.folder, u.module.as_deref().unwrap_or("mod"), u.line));
            }
        }
    }
    assert!(bad.is_empty(), "back edges:\n{}", bad.join("\n"));
}

#[test]
fn no_import_cycle_inside_a_layer() {
    let t = tree();
    let u = uses(&t);
    let g: BTreeMap<&str, BTreeSet<&str>> = u
        .iter()
        .map(|(m, v)| {
            let f = &t.folder_of[m];
            (m.as_str(), v.iter().filter(|x| &x.folder == f).filter_map(|x| x.module.as_deref()).collect())
        })
        .collect();
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

/// docs/design.md's table (`| \`folder\` | \`m1\`, \`m2\` | what |`) lists each layer, in order,
/// with exactly its modules.
#[test]
fn design_doc_lists_the_layers() {
    let t = tree();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/design.md")).unwrap();
    let mut rows = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Some(folder) = cells[1].strip_prefix("`src/").and_then(|c| c.strip_suffix("/`")) else { continue };
        let mods: BTreeSet<String> = cells[2].split(',').map(|x| x.trim().trim_matches('`').to_string()).filter(|x| !x.is_empty()).collect();
        rows.push((folder.to_string(), mods));
    }
    let want: Vec<(String, BTreeSet<String>)> = t
        .layers
        .iter()
        .map(|l| (l.clone(), t.folder_of.iter().filter(|(_, f)| *f == l).map(|(m, _)| m.clone()).collect()))
        .collect();
    assert_eq!(rows, want, "docs/design.md's layer table (rows `| `src/<folder>/` | `module`, ... | what |`) vs src/");
}
