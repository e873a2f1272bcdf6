//! The kernel's modules form layers, and no import cycle: arch → services → memory → objects
//! → the `Kernel` root → the entries (syscalls, interrupts) → boot. A module may use its own
//! layer's modules and lower ones'; an edge up a layer, or one closing a cycle inside a
//! layer, must be one of the [`ALLOWED`] edges still to be removed, each with its reason.
//! The list only shrinks: an allowed edge the code no longer has fails the test too, so it
//! is struck from the list when it goes.
//!
//! Edges are read from the source, not the compiler: every `crate::name` path (in `use`
//! lines and in code, `crate::{a, b}` groups included) and every use of a macro the kernel
//! exports (`kprintln!`, which lives in `log`), per file, at the level of the top-level
//! module the file belongs to. Comments are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules in each.
const LAYERS: &[(&str, &[&str])] = &[
    ("the CPU", &["arch"]),
    (
        "kernel services",
        &["log", "heap", "table", "id", "multiboot"],
    ),
    ("memory", &["mm", "clock"]),
    // Meant in this order too: threads, ports, capabilities, processes, devices.
    ("objects", &["sched", "ipc", "cap", "proc", "device"]),
    ("the root that ties the objects together", &["kernel"]),
    (
        "entries from user space and the CPU",
        &["syscall", "interrupt"],
    ),
    ("boot", &["main"]),
];

/// Edges against the layering still in the code: (from, to, why it is still there). None
/// are left; a new one must say why here.
const ALLOWED: &[(&str, &str, &str)] = &[];

fn kernel_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("kernel/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file belongs to: `ipc` for `ipc/port.rs`, `log` for `log.rs`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).expect("file under kernel/src");
    let first = relative.components().next().expect("a path component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// `source` without its comments (line, doc and block comments).
fn without_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else {
            let next = rest.chars().next().expect("not empty");
            out.push(next);
            rest = &rest[next.len_utf8()..];
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after each `crate::`, including every top-level item of a
/// `crate::{...}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in a macro body is the same crate.
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && is_ident(c) => {
                        let name: String =
                            group[i..].chars().take_while(|&c| is_ident(c)).collect();
                        names.insert(name);
                        start = false;
                    }
                    c if !c.is_whitespace() => start = false,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Macros the kernel exports (`#[macro_export] macro_rules! name`) and the module of each.
fn exported_macros(files: &[(String, String)]) -> BTreeMap<String, String> {
    let mut macros = BTreeMap::new();
    for (module, code) in files {
        for (at, _) in code.match_indices("#[macro_export]") {
            let rest = code[at..]
                .trim_start_matches("#[macro_export]")
                .trim_start();
            if let Some(rest) = rest.strip_prefix("macro_rules!") {
                let name: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|&c| is_ident(c))
                    .collect();
                macros.insert(name, module.clone());
            }
        }
    }
    macros
}

/// Whether `code` invokes macro `name` (`name!`, not as part of a longer identifier).
fn invokes(code: &str, name: &str) -> bool {
    let call = format!("{name}!");
    code.match_indices(&call)
        .any(|(at, _)| !code[..at].chars().next_back().is_some_and(is_ident))
}

/// The kernel's import graph between top-level modules: module → modules it uses.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = kernel_src();
    let mut paths = Vec::new();
    sources(&root, &mut paths);
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|path| {
            let source = fs::read_to_string(path).expect("source is readable");
            (module_of(&root, path), without_comments(&source))
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let macros = exported_macros(&files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (module, code) in &files {
        let mut used = crate_paths(code);
        used.extend(macros.keys().filter(|name| invokes(code, name)).cloned());
        for name in used {
            let target = match macros.get(&name) {
                Some(home) => home.clone(),
                None if modules.contains(&name) => name,
                // An item of the crate root (main.rs).
                None => "main".to_string(),
            };
            if &target != module {
                graph.get_mut(module).expect("known module").insert(target);
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn is_allowed(from: &str, to: &str) -> bool {
    ALLOWED.iter().any(|&(f, t, _)| f == from && t == to)
}

/// A cycle in `graph` (as the modules along it, first repeated last), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::OnPath);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::OnPath => {
                    let start = path.iter().position(|n| n == next).expect("on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn every_kernel_module_has_a_layer() {
    let unplaced: Vec<String> = import_graph()
        .into_keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "kernel modules in no layer (add them to LAYERS in {}): {unplaced:?}",
        file!()
    );
}

#[test]
fn no_kernel_module_uses_a_higher_layer_beyond_the_allowed_edges() {
    let graph = import_graph();
    let mut new = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            let (Some(low), Some(high)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            if high > low && !is_allowed(from, to) {
                new.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[low].0, LAYERS[high].0
                ));
            }
        }
    }
    assert!(
        new.is_empty(),
        "new imports up the layers (arch -> services -> memory -> objects -> kernel -> \
         entries):\n  {}",
        new.join("\n  ")
    );
}

#[test]
fn the_kernel_has_no_import_cycle_beyond_the_allowed_edges() {
    let mut graph = import_graph();
    for (from, targets) in graph.iter_mut() {
        targets.retain(|to| !is_allowed(from, to));
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle among the kernel's modules: {}\n(break it, or, if it must stay for \
             now, allow one of its edges in ALLOWED with the reason)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn every_allowed_edge_is_still_in_the_code() {
    let graph = import_graph();
    let gone: Vec<String> = ALLOWED
        .iter()
        .filter(|(from, to, _)| !graph.get(*from).is_some_and(|t| t.contains(*to)))
        .map(|(from, to, _)| format!("{from} -> {to}"))
        .collect();
    assert!(
        gone.is_empty(),
        "allowed edges the kernel no longer has: strike them from ALLOWED: {gone:?}"
    );
}

#[test]
fn the_reader_finds_paths_groups_and_macros() {
    let code = without_comments(
        "use crate::{arch::x, mm::{a, b}, log};\n// crate::ipc\nlet _ = crate::cap::f(); kprintln!();",
    );
    let names = crate_paths(&code);
    let expected: BTreeSet<String> = ["arch", "mm", "log", "cap"].map(String::from).into();
    assert_eq!(names, expected);
    assert!(invokes(&code, "kprintln"));
    assert!(!invokes("my_kprintln!()", "kprintln"));
}
