//! The shape of the source tree, checked on every test run: no file in `src/` over 800 lines,
//! and no circle in the graph of which module names which (`crate::…` and `super::…` paths,
//! in `use` declarations or inline). A module naming its own parent or child is nesting, not an
//! edge; everything else must point one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src/ is readable")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// `src/a/b.rs` → `["a", "b"]`; `src/a/mod.rs` → `["a"]`; `src/lib.rs` → `[]`.
fn module_of(path: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).expect("under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and string literals (so paths in docs do not count).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i..].starts_with(b"r#\"") {
            i += 3;
            while i < b.len() && !b[i..].starts_with(b"\"#") {
                i += 1;
            }
            i += 2;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\'', '\\'); lifetimes ('a) pass through.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every module path a file names: `crate::a::b…`, `super::…` (resolved), and the paths inside
/// `use crate::a::{b, c::d}` groups.
fn named_paths(code: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let at_word_start = i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == ':');
        if at_word_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            // The base module: the crate root, or this file's parent (a `mod.rs` is its
            // module, so its `super` is one level further up).
            let mut base: Vec<String> = Vec::new();
            let mut j = i;
            if rest.starts_with("super::") {
                base = module.to_vec();
                if !is_mod_file || module.is_empty() {
                    base.pop();
                }
                while bytes[j..].iter().take(7).collect::<String>() == "super::" {
                    j += 7;
                    if bytes[j..].iter().take(7).collect::<String>() == "super::" {
                        base.pop();
                    }
                }
            } else {
                j += 7;
            }
            // Segments up to a group, a non-path character or the end.
            let mut path = base.clone();
            loop {
                let start = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                if j > start {
                    path.push(bytes[start..j].iter().collect());
                }
                if bytes[j..].iter().take(2).collect::<String>() == "::" {
                    j += 2;
                    if j < bytes.len() && bytes[j] == '{' {
                        // A group: each item is a path relative to `path`.
                        let close = matching_brace(&bytes, j);
                        let inner: String = bytes[j + 1..close].iter().collect();
                        for item in split_top(&inner) {
                            let mut p = path.clone();
                            p.extend(
                                item.split("::")
                                    .map(|s| s.split_whitespace().next().unwrap_or(""))
                                    .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                                    .map(str::to_string),
                            );
                            found.push(p);
                        }
                        j = close;
                        break;
                    }
                    continue;
                }
                break;
            }
            found.push(path);
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

fn matching_brace(b: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (k, c) in b.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    b.len() - 1
}

fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if depth == 0 && c != '}' {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_module_graph_has_no_circle() {
    let files = sources();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|p| module_of(p)).collect();
    // The longest module (file) a path names.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
        let text = std::fs::read_to_string(file).expect("readable");
        // Tests may reach anywhere; the graph is of the library's code.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for path in named_paths(&code_only(text), &from, is_mod_file) {
            let Some(to) = resolve(&path) else { continue };
            let nested = to.starts_with(&from) || from.starts_with(&to);
            if !nested {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.len() > 20,
        "the scan finds the crate's imports ({} modules with edges)",
        edges.len()
    );
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut circle: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
            circle.push(m.join("::"));
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.clone());
        None
    }
    let (mut stack, mut done) = (Vec::new(), BTreeSet::new());
    for m in edges.keys() {
        if let Some(circle) = visit(m, &edges, &mut stack, &mut done) {
            panic!(
                "modules name each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}
