//! The shape of the source tree, checked: no import cycles between files, and no file far
//! past 500 lines. Both keep the code readable for a newcomer (docs/ARCHITECTURE.md).
//!
//! Dependencies are read from the text of `src/`: every `crate::…`, `super::…` and
//! `self::…` path outside comments and outside a file's `#[cfg(test)] mod tests` (tests
//! may reach anywhere), and every `use child::…` of a module file's own children. A path
//! resolves to the deepest module file it names; a name that a module file re-exports from
//! one of its children (`pub use child::Name`) resolves to that child. Declaring a child
//! (`mod child;`) and re-exporting it are structure, not use, and are not counted; a
//! parent that uses its child and a child that uses its parent are a cycle like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a source file may have: "about 500", with room for a doc comment or two.
const MAX_LINES: usize = 520;

/// A module path (`["node", "event_loop", "net"]`), `[]` for the crate root.
type ModPath = Vec<String>;

#[derive(Debug)]
struct Tree {
    root: PathBuf,
    /// Every non-test module file, by module path.
    files: BTreeMap<ModPath, PathBuf>,
}

impl Tree {
    fn read(root: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && let Some(m) = mod_path(root, &path)
                {
                    files.insert(m, path);
                }
            }
        }
        Self { root: root.to_path_buf(), files }
    }

    /// The file a path (already made absolute) depends on.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let mut m: ModPath = Vec::new();
        let mut rest = segments.iter();
        for s in rest.by_ref() {
            let mut next = m.clone();
            next.push(s.clone());
            if self.files.contains_key(&next) {
                m = next;
            } else {
                // `s` is an item of `m`: maybe one that `m` re-exports from a child.
                if let Some(child) = self.reexport(&m, s) {
                    m.push(child);
                }
                break;
            }
        }
        self.files.contains_key(&m).then_some(m)
    }

    /// The child module of `m` that `m` re-exports `name` from, if any.
    fn reexport(&self, m: &ModPath, name: &str) -> Option<String> {
        let text = code_of(&std::fs::read_to_string(self.files.get(m)?).ok()?);
        for stmt in text.split(';') {
            let stmt = stmt.trim();
            let Some(body) = stmt.strip_prefix("pub use ").or_else(|| stmt.strip_prefix("pub(crate) use ")) else {
                continue;
            };
            let Some((child, names)) = body.split_once("::") else { continue };
            let mut child_path = m.clone();
            child_path.push(child.to_string());
            if !self.files.contains_key(&child_path) {
                continue;
            }
            let names = names.trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c));
            if names.split(',').any(|n| n.trim().rsplit("::").next() == Some(name)) {
                return Some(child.to_string());
            }
        }
        None
    }

    /// Every name a module file re-exports from one of its children, with that child.
    fn reexports(&self, m: &ModPath) -> Vec<(String, String)> {
        let Some(path) = self.files.get(m) else { return Vec::new() };
        let text = code_of(&std::fs::read_to_string(path).unwrap_or_default());
        let mut out = Vec::new();
        for stmt in text.split(';') {
            let stmt = stmt.trim();
            let Some(body) = stmt.strip_prefix("pub use ").or_else(|| stmt.strip_prefix("pub(crate) use ")) else {
                continue;
            };
            let Some((child, names)) = body.split_once("::") else { continue };
            if !self.files.contains_key(&[m.clone(), vec![child.to_string()]].concat()) {
                continue;
            }
            let names = names.trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c));
            for n in names.split(',') {
                if let Some(last) = n.trim().rsplit("::").next().filter(|l| !l.is_empty() && *l != "self") {
                    out.push((last.to_string(), child.to_string()));
                }
            }
        }
        out
    }

    /// Each file's dependencies on other files.
    fn edges(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut out = BTreeMap::new();
        for (m, path) in &self.files {
            let full = code_of(&std::fs::read_to_string(path).unwrap());
            let code = without_reexports(&full);
            let mut deps = BTreeSet::new();
            // Names a module file re-exports from its children and then uses itself.
            for (name, child) in self.reexports(m) {
                if uses_word(&code, &name) {
                    deps.insert([m.clone(), vec![child]].concat());
                }
            }
            for segments in
                paths_in(&code, m, |child| self.files.contains_key(&[m.clone(), vec![child.into()]].concat()))
            {
                if let Some(dep) = self.resolve(&segments)
                    && dep != *m
                {
                    deps.insert(dep);
                }
            }
            out.insert(m.clone(), deps);
        }
        out
    }

    fn name(&self, m: &ModPath) -> String {
        self.files[m].strip_prefix(&self.root).unwrap().display().to_string()
    }
}

/// The module path of a source file, or None for files that are not modules of the
/// crate proper (the binary, test-only modules).
fn mod_path(root: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(root).ok()?;
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    match last.as_str() {
        "main.rs" | "tests.rs" => None,
        "lib.rs" | "mod.rs" => Some(parts),
        f => {
            parts.push(f.strip_suffix(".rs")?.to_string());
            Some(parts)
        }
    }
}

/// A file's code: without comments, string contents and its trailing test module.
pub(super) fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    // A string continued on the next line with a trailing `\` goes on there.
    let mut continued = false;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("//") && !continued {
            continue;
        }
        let mut in_str = continued;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                if c == '/' && prev == '/' {
                    out.pop();
                    break;
                }
                out.push(c);
            }
            prev = c;
        }
        continued = in_str && line.trim_end().ends_with('\\');
        out.push('\n');
    }
    out
}

/// Whether `word` appears in `code` as a whole identifier.
fn uses_word(code: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// `code` without the statements that only declare or re-export child modules.
fn without_reexports(code: &str) -> String {
    code.split_inclusive(';')
        .filter(|stmt| {
            let s = stmt.trim_start();
            let s = s.strip_prefix("pub(crate) ").or_else(|| s.strip_prefix("pub ")).unwrap_or(s);
            !(s.starts_with("mod ")
                || (stmt.trim_start().starts_with("pub")
                    && s.starts_with("use ")
                    && !s.starts_with("use crate")
                    && !s.starts_with("use super")))
        })
        .collect()
}

/// Every `crate::`, `super::` and `self::` path in `code`, and every path into one of the
/// file's own child modules (`is_child`), made absolute, with `use` groups (`use
/// super::{a::B, c}`) expanded one level.
fn paths_in(code: &str, me: &ModPath, is_child: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut starts: Vec<usize> =
        ["crate::", "super::", "self::"].iter().flat_map(|p| code.match_indices(p).map(|(i, _)| i)).collect();
    // `use child::Item;` and `child::f()` for the file's own children.
    for (i, _) in code.match_indices("::") {
        let word_start = code[..i].rfind(|c: char| !ident(c)).map_or(0, |j| j + 1);
        let word = &code[word_start..i];
        if !word.is_empty() && is_child(word) && !code[..word_start].ends_with("::") {
            starts.push(word_start);
        }
    }
    for start in starts {
        if code[..start].ends_with(|c: char| ident(c) || c == ':') {
            continue; // part of a longer path (`a::super::`), or `$crate::`
        }
        let mut base: ModPath = Vec::new();
        let mut rest = &code[start..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("self::") {
            base = me.clone();
            rest = r;
        } else if !rest.starts_with("super::") {
            base = me.clone(); // a child's name
        } else {
            // `super` of module a::b is a, whether its file is `a/b.rs` or `a/b/mod.rs`.
            base = me.clone();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
        }
        // Segments up to the first that is not a plain name (`f(`, `{`, `;`).
        let mut segs = Vec::new();
        for s in rest.split("::") {
            let w: String = s.chars().take_while(|&c| ident(c)).collect();
            let whole = w.len() == s.len();
            if !w.is_empty() {
                segs.push(w);
            }
            if !whole {
                break;
            }
        }
        // A group: `{a::B, c}` after the last `::`.
        let consumed: usize = segs.iter().map(|s| s.len() + 2).sum();
        let after = rest.get(consumed..).unwrap_or("");
        let mut head = base.clone();
        head.extend(segs.iter().cloned());
        if after.starts_with('{') {
            let group = &after[1..after.find('}').unwrap_or(after.len())];
            for item in group.split(',') {
                let mut p = head.clone();
                p.extend(item.trim().split("::").map(|s| s.chars().take_while(|&c| ident(c)).collect::<String>()));
                p.retain(|s| !s.is_empty() && s != "self");
                out.push(p);
            }
        } else {
            out.push(head);
        }
    }
    out
}

/// Groups of two or more files that depend on each other (Tarjan's strongly connected
/// components).
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The tree to check: this crate's `src/`, or `MESH_LAYOUT_SRC` (to try the checker on
/// another tree, such as an older revision's).
fn src() -> PathBuf {
    std::env::var_os("MESH_LAYOUT_SRC").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), PathBuf::from)
}

/// The core crate's `src/`: a tree of its own, checked the same way.
fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/mesh-core/src")
}

#[test]
fn no_import_cycles_between_files() {
    for root in [src(), core_src()] {
        let tree = Tree::read(&root);
        let edges = tree.edges();
        assert!(edges.len() > 20, "read only {} module files of {}", edges.len(), root.display());
        let found: Vec<String> =
            cycles(&edges).iter().map(|g| g.iter().map(|m| tree.name(m)).collect::<Vec<_>>().join(" <-> ")).collect();
        assert!(found.is_empty(), "import cycles between files of {}:\n{}", root.display(), found.join("\n"));
    }
}

/// The core is sans-IO because Cargo says so: its dependencies are these and no others
/// (none of which does I/O), whatever its code tries to import.
#[test]
fn the_core_crate_depends_on_nothing_that_does_io() {
    let manifest = std::fs::read_to_string(core_src().join("../Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.starts_with('#'))
        .collect();
    let pure = ["blake3", "fastrand", "fixedbitset", "serde", "thiserror"];
    assert!(!deps.is_empty() && deps.iter().all(|d| pure.contains(d)), "mesh-core depends on {deps:?}");
}

/// The same graph between the crate's top-level modules (`core`, `job`, `exec`, `node`,
/// ...): the layers of docs/ARCHITECTURE.md, which must not depend on each other both ways.
fn top_level(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (from, deps) in edges.iter().filter(|(m, _)| !m.is_empty()) {
        let entry = out.entry(from[..1].to_vec()).or_default();
        entry.extend(deps.iter().filter(|d| !d.is_empty() && d[0] != from[0]).map(|d| d[..1].to_vec()));
    }
    out
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let edges = top_level(&Tree::read(&src()).edges());
    let found: Vec<String> =
        cycles(&edges).iter().map(|g| g.iter().map(|m| m[0].clone()).collect::<Vec<_>>().join(" <-> ")).collect();
    assert!(found.is_empty(), "modules that depend on each other:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_dependencies_and_cycles() {
    let tree = Tree::read(&src());
    let edges = tree.edges();
    let m = |s: &str| s.split('/').map(String::from).collect::<ModPath>();
    // Known edges of today's tree, through a `use` group, a re-export and an inline path.
    assert!(edges[&m("node/event_loop/net")].contains(&m("node/net/members")));
    assert!(edges[&m("cli/join")].contains(&m("node/control")));
    let join = &edges[&m("cli/join")];
    assert!(
        join.contains(&m("node/api/view")) || join.contains(&m("node/api")),
        "PeerRow, re-exported by node: {join:?}"
    );
    assert!(edges[&m("node/event_loop")].contains(&m("exec/wasm")), "inline crate::exec::wasm::prune_caches");
    assert!(edges[&m("node/event_loop")].contains(&m("node/event_loop/net")), "a parent that uses its child");
    assert!(edges[&m("node")].is_empty(), "declaring and re-exporting children is not using them");
    // A made-up cycle is found, and a chain is not one.
    let mut g: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    g.insert(m("a"), [m("b")].into());
    g.insert(m("b"), [m("c")].into());
    g.insert(m("c"), [m("a")].into());
    g.insert(m("d"), [m("a")].into());
    assert_eq!(cycles(&g), vec![vec![m("a"), m("b"), m("c")]]);
    g.get_mut(&m("c")).unwrap().clear();
    assert!(cycles(&g).is_empty());
}

#[test]
fn no_file_is_far_past_500_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    for dir in ["src", "tests", "benches", "crates"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let n = std::fs::read_to_string(&p).unwrap().lines().count();
                    if n > MAX_LINES {
                        long.push(format!("{} ({n} lines)", p.strip_prefix(root).unwrap().display()));
                    }
                }
            }
        }
    }
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// docs/ARCHITECTURE.md's layout tree stays true: every source file of both crates is named
/// there (a `mod.rs` or `tests.rs` by its folder, `name/` or `name.rs`), and every `.rs`
/// file it names exists. Before this test, the tree had left out about ten files.
#[test]
fn the_architecture_tree_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let start = doc.find("## Layers").and_then(|i| doc[i..].find("```\n").map(|j| i + j + 4)).expect("the tree");
    let tree = &doc[start..start + doc[start..].find("```").expect("the tree's end")];
    let words: BTreeSet<&str> = tree
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
        .map(|w| w.trim_end_matches(['.', ',']))
        .collect();
    let named = |w: &str| words.iter().any(|x| *x == w || x.ends_with(&format!("/{w}")));
    let mut files = Vec::new();
    for dir in [src(), core_src(), root.join("tests")] {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    files.push(p);
                }
            }
        }
    }
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let sources = files.iter().filter(|p| !p.starts_with(root.join("tests")));
    let unnamed: Vec<String> = sources
        .filter(|p| match name(p).as_str() {
            "mod.rs" | "tests.rs" => {
                let folder = name(p.parent().unwrap());
                !named(&format!("{folder}/")) && !named(&format!("{folder}.rs"))
            }
            file => !named(file),
        })
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(unnamed.is_empty(), "docs/ARCHITECTURE.md's tree leaves out {unnamed:?}");
    let all: BTreeSet<String> = files.iter().map(|p| name(p)).collect();
    let gone: Vec<&&str> =
        words.iter().filter(|w| w.ends_with(".rs")).filter(|w| !all.contains(w.rsplit('/').next().unwrap())).collect();
    assert!(gone.is_empty(), "docs/ARCHITECTURE.md's tree names files that are gone: {gone:?}");
}

#[test]
fn strings_continued_on_the_next_line_are_not_code() {
    let code = code_of("f(\"one \\\n    two wait\");\nwait();\n");
    assert!(!code.contains("two"), "{code}");
    assert_eq!(code.matches("wait").count(), 1, "{code}");
}
