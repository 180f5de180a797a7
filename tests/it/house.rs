//! House rules that the compiler does not check, read from the source text: typed errors,
//! one owner of the blob store's files, and job kinds asked of the job rather than matched
//! on in the node's loop or its control socket (docs/ARCHITECTURE.md).

use super::layout::code_of;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends with `ext`, with its path from the repository.
fn files(dir: &Path, ext: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p: PathBuf = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p.strip_prefix(root()).unwrap().display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

/// The Rust sources of both crates, test files left out.
fn sources() -> Vec<(String, String)> {
    let mut all = files(&root().join("src"), ".rs");
    all.extend(files(&root().join("crates"), ".rs"));
    all.retain(|(path, _)| !path.ends_with("/tests.rs") && !path.contains("/tests/"));
    all
}

/// The error type of each `Result<…>` that a function in `code` returns.
fn returned_errors(code: &str) -> Vec<String> {
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    for (i, _) in flat.match_indices("-> Result<") {
        let args = &flat[i + "-> Result<".len()..];
        let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
        for (j, c) in args.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' if depth == 0 => {
                    parts.push(args[start..j].trim());
                    break;
                }
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(args[start..j].trim());
                    start = j + 1;
                }
                _ => {}
            }
        }
        parts.retain(|p| !p.is_empty());
        if parts.len() == 2 {
            out.push(parts[1].to_string());
        }
    }
    out
}

#[test]
fn the_checker_finds_string_errors_across_lines() {
    let code = "fn a() -> Result<Vec<(u8, u8)>, String> {}\nfn b(\n x: u8,\n) -> Result<\n u8,\n String,\n> {}\n\
                fn c() -> Result<u8, Error> {}\nfn d() -> Result<HashMap<u8, String>> {}";
    assert_eq!(returned_errors(code), ["String", "String", "Error"]);
}

/// Callers branch on the cause of an error, so errors are types (thiserror), not text.
/// Only clap's value parsers, whose signature clap fixes, return `Result<_, String>`.
#[test]
fn no_function_returns_a_string_error() {
    let mut found = Vec::new();
    for (path, text) in sources() {
        if path == "src/cli/args.rs" || path.starts_with("src/cli/args/") {
            continue;
        }
        let n = returned_errors(&code_of(&text)).iter().filter(|e| *e == "String").count();
        if n > 0 {
            found.push(format!("{path} ({n})"));
        }
    }
    assert!(found.is_empty(), "these return Result<_, String>; give them an error type: {found:?}");
}

/// The blob store's files (docs/PROTOCOL.md, "The blob store's layout") are written and
/// read by `store` alone: Rust code elsewhere goes through it, and the Python package
/// through the node's control socket.
#[test]
fn only_the_store_touches_its_files() {
    let mut found = Vec::new();
    for (path, text) in sources() {
        if path == "src/store.rs" || path.starts_with("src/store/") {
            continue;
        }
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(&text);
        let lines = code.lines().filter(|l| !l.trim_start().starts_with("//"));
        for (i, line) in lines.enumerate() {
            if ["join(\"blobs\")", "\"blobs/", "\".pins"].iter().any(|p| line.contains(p)) {
                found.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    for (path, text) in files(&root().join("python/mesh"), ".py") {
        for (i, line) in text.lines().enumerate() {
            if ["\"blobs\"", "'blobs'", "\".pins", "'.pins", "py-put"].iter().any(|p| line.contains(p)) {
                found.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "these reach into <home>/blobs directly: {found:?}");
}

/// What the node's loop and its control socket need to know of a kind of job is asked of
/// the job (`JobSpec::delivery`, `named_blobs`, `self_contained`): a new kind touches its
/// own files and the `JobSpec` list, not these.
#[test]
fn the_event_loop_and_the_control_socket_do_not_match_on_job_kinds() {
    let mut found = Vec::new();
    for (path, text) in sources() {
        if !(path.starts_with("src/node/event_loop/") || path.starts_with("src/node/control/")) {
            continue;
        }
        let code = code_of(&text);
        for kind in ["JobSpec::", "TaskOutput::", "JobKind::"] {
            let n = code.matches(kind).count();
            if n > 0 {
                found.push(format!("{path}: {kind} ({n})"));
            }
        }
    }
    assert!(found.is_empty(), "these match on kinds of job: {found:?}");
}
