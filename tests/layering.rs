//! The crate's structure, measured from its own imports: no import circle between top-level
//! modules or between the parts of `node/`, no arrow from a core up to a shell (`algo`, `data`,
//! `heterogeneity` import nothing of lagom's; `proto` only the decentralized cores' wire types;
//! `decen` only `algo`), no command-line crate below the binary's layers, no file under `node/`
//! over 350 lines, and no blocking channel or sleep on the actix threads of `node/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The unit a file belongs to: its top-level module, or `node::<part>` inside `node/`.
fn unit_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [file] if file == "lib" || file == "main" => None,
        [top] => Some(top.clone()),
        [node, part, ..] if node == "node" && part != "mod" => Some(format!("node::{part}")),
        [top, ..] => Some(top.clone()),
        [] => None,
    }
}

/// Every `crate::a` (and `crate::node::b`) path a file names, as units.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        if name == "node" {
            let sub = &rest["node::".len().min(rest.len())..];
            let part: String = sub
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !part.is_empty() && rest.starts_with("node::") {
                out.insert(format!("node::{part}"));
                continue;
            }
        }
        out.insert(name);
    }
    out
}

/// The dependency graph between units, without self-arrows; `node/mod.rs` is left out (it only
/// re-exports its parts).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(unit) = unit_of(&f) else { continue };
        if unit == "node" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("source is readable");
        let deps = g.entry(unit.clone()).or_default();
        for d in imports(&text) {
            if d != unit && d != "simd_fn" {
                deps.insert(d);
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == n) {
            let mut c = stack[pos..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_import_graph_has_no_circle() {
    let g = graph();
    assert!(
        g.contains_key("node::server") && g.contains_key("algo"),
        "{g:?}"
    );
    if let Some(c) = cycle(&g) {
        panic!("import circle: {}", c.join(" -> "));
    }
}

#[test]
fn the_cores_import_nothing_above_them() {
    let g = graph();
    let allowed: &[(&str, &[&str])] = &[
        ("algo", &[]),
        ("data", &[]),
        ("heterogeneity", &[]),
        ("decen", &["algo"]),
        ("server", &["algo"]),
        ("kernels", &[]),
        // The wire's bf16/f16 conversions are the kernels' vectorized ones.
        ("proto", &["decen", "kernels"]),
        ("compress", &["proto"]),
    ];
    for (unit, may) in allowed {
        let deps = g.get(*unit).cloned().unwrap_or_default();
        let extra: Vec<&String> = deps.iter().filter(|d| !may.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{unit} imports {extra:?}");
    }
}

#[test]
fn no_command_line_crate_below_the_binary_and_no_blocking_call_in_the_shells() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("source is readable");
        let rel = f
            .strip_prefix(src())
            .expect("under src")
            .to_string_lossy()
            .to_string();
        for core in ["algo/", "decen/", "server/", "proto/", "data/"] {
            if rel.starts_with(core) {
                assert!(!text.contains("clap"), "{rel} names clap");
            }
        }
        if rel.starts_with("node/") {
            let lines = text.lines().count();
            assert!(
                lines <= 350,
                "{rel} has {lines} lines (at most 350 under node/)"
            );
            // compute.rs and eval.rs are SyncArbiter actors on threads of their own: there a
            // sleep (the `delay` slowdown) blocks nobody else.
            let sync_thread = text.contains("SyncContext<Self>");
            for blocking in ["std::sync::mpsc", "std::thread::sleep", ".blocking_recv()"] {
                let allowed = sync_thread && blocking == "std::thread::sleep";
                assert!(
                    allowed || !text.contains(blocking),
                    "{rel} uses {blocking} on an async thread"
                );
            }
        }
    }
}

#[test]
fn the_checks_see_what_they_check() {
    // The parser finds what it must (a check that found nothing would pass vacuously).
    let deps = imports("use crate::algo::Real;\nuse crate::node::hello::X; crate::net::send(");
    let want: BTreeSet<String> = ["algo", "node::hello", "net"].map(String::from).into();
    assert_eq!(deps, want);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert!(cycle(&g).is_some());
}
