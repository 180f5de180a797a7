//! `mesh run`: a user's own program once per input, across the mesh, as GNU parallel runs
//! it. This module turns the arguments into a [`RunJob`]: it splits the words at `:::` or
//! `::::`, reads the inputs, skips what a `--resume` joblog records, and stores the task
//! list, the `--send` files and the `--send-inputs` files as blobs. Results come back task
//! by task; `output::run` prints them in input order, writes the joblog and places the
//! returned files.
//!
//! Everything wrong with the user's words or files is found here, before any node sees
//! the job, as a usage error (exit 2) that names it: a missing `:::` source, a path that
//! would leave the task's directory, a missing input file, a send set too large.

use super::args::RunArgs;
use super::exit::{Exit, exit_of};
use super::output::{self, RunPrinter, usage};
use super::submit::run_job;
use crate::core::Needs;
use crate::job::run::{MAX_SENT_FILES, Manifest, RunJob, RunTask, RunTasks, SentFile, check_path};
use crate::job::{JobSpec, MAX_TASKS};
use crate::store::{BlobStore, MAX_BLOB};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

/// The most bytes one job may send, all files together.
pub(crate) const MAX_SEND_BYTES: u64 = 64 << 30;

/// Where a job's inputs come from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// `::: INPUT...`
    Args(Vec<String>),
    /// `:::: FILE`, one input per line; `-` is stdin.
    File(PathBuf),
    /// Neither: stdin, one input per line.
    Stdin,
}

pub(crate) fn run(home: &Path, args: RunArgs) -> Result<Exit> {
    let (command, source) = split_words(&args.words)?;
    let inputs = read_inputs(source)?;
    let skip = match &args.joblog {
        Some(log) if args.resume || args.resume_failed => output::joblog_done(log, args.resume_failed)?,
        _ => HashSet::new(),
    };
    // Pinned: what this job sends, and the outputs it holds until their turn to print,
    // stay in the store until it ends, whatever the store's budget.
    let store = BlobStore::pinning(home);
    let mut tasks = Vec::new();
    let mut send_bytes = 0;
    for (i, input) in inputs.into_iter().enumerate() {
        let seq = i as u64 + 1;
        if skip.contains(&seq) {
            continue;
        }
        let file = if args.send_inputs { Some(send_file(&store, &input, &mut send_bytes)?) } else { None };
        tasks.push(RunTask { seq, arg: input, file });
    }
    let files = send_set(&store, &args.send, &mut send_bytes)?;
    let list = RunTasks { tasks };
    let encoded = list.encode();
    if encoded.len() as u64 > MAX_BLOB {
        return Err(usage(format!("the inputs take {} bytes; at most {MAX_BLOB} fit in one job", encoded.len())));
    }
    let job = RunJob {
        command,
        tasks: list.tasks.len() as u64,
        inputs: store.put(&encoded).context("storing the task list")?,
        files,
        returns: args.returns.clone(),
        timeout: args.timeout,
        memory_mb: args.memory,
        retries: args.retries,
        halt: args.halt.0,
        needs: Needs::native(args.require.clone()),
    };
    job.validate().map_err(usage)?;
    if let Some(p) = job.returns.iter().find(|p| check_path(p).is_err()) {
        return Err(usage(format!("--return {p}: {}", check_path(p).unwrap_err())));
    }
    let append = args.resume || args.resume_failed;
    let results = args.results.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut printer =
        RunPrinter::new(&job, list.tasks, args.common.json, results, args.joblog.as_deref(), append, store)?;
    if job.tasks == 0 {
        output::note(if append { "nothing to run: the joblog has every input" } else { "no inputs: nothing to run" });
    }
    if args.common.detach {
        return super::jobs::detach(home, &args.common, JobSpec::Run(Box::new(job)));
    }
    let report = run_job(home, &args.common, JobSpec::Run(Box::new(job)), &mut |e| printer.event(e))?;
    let complete = printer.finish(&report).context("writing the results")?;
    if !complete {
        return Ok(Exit::Failed);
    }
    exit_of(&report)
}

/// Splits `COMMAND ARGS... ::: INPUTS...` (or `:::: FILE`) into the command and its
/// inputs' source.
fn split_words(words: &[String]) -> Result<(Vec<String>, Source)> {
    let at = words.iter().position(|w| w == ":::" || w == "::::");
    let (command, rest) = match at {
        Some(i) => (words[..i].to_vec(), &words[i..]),
        None => (words.to_vec(), &words[words.len()..]),
    };
    if command.is_empty() {
        return Err(usage("no command: write it after `--`, e.g. mesh run -- echo {} ::: a b"));
    }
    let source = match rest.split_first() {
        None => Source::Stdin,
        Some((sep, inputs)) => {
            if inputs.iter().any(|w| w == ":::" || w == "::::") {
                return Err(usage("only one input source (one ::: or ::::) is supported"));
            }
            match (sep.as_str(), inputs) {
                (":::", inputs) => Source::Args(inputs.to_vec()),
                ("::::", [file]) => Source::File(PathBuf::from(file)),
                _ => return Err(usage(":::: takes one file of inputs, one per line (`-` for stdin)")),
            }
        }
    };
    Ok((command, source))
}

/// The inputs, one per task.
fn read_inputs(source: Source) -> Result<Vec<String>> {
    let lines = match source {
        Source::Args(a) => return check_count(a),
        Source::File(f) if f.as_os_str() != "-" => {
            let file =
                std::fs::File::open(&f).map_err(|e| usage(format!("cannot read input file {}: {e}", f.display())))?;
            read_lines(std::io::BufReader::new(file), &f.display().to_string())?
        }
        Source::File(_) => read_lines(std::io::stdin().lock(), "stdin")?,
        Source::Stdin => {
            if std::io::stdin().is_terminal() {
                return Err(usage("no inputs: give them after :::, in a file after ::::, or on stdin"));
            }
            read_lines(std::io::stdin().lock(), "stdin")?
        }
    };
    check_count(lines)
}

fn check_count(inputs: Vec<String>) -> Result<Vec<String>> {
    if inputs.len() as u64 > MAX_TASKS {
        return Err(usage(format!("{} inputs; at most {MAX_TASKS} fit in one job", inputs.len())));
    }
    Ok(inputs)
}

/// Lines of text, without their line endings; a final newline ends the last line.
fn read_lines(r: impl BufRead, what: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in r.split(b'\n').enumerate() {
        let mut line = line.with_context(|| format!("reading the inputs from {what}"))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text =
            String::from_utf8(line).map_err(|_| usage(format!("input {} of {what} is not UTF-8 text", i + 1)))?;
        out.push(text);
        if out.len() as u64 > MAX_TASKS {
            return Err(usage(format!("{what} has more than {MAX_TASKS} inputs; split the job")));
        }
    }
    Ok(out)
}

/// A file to send (`--send-inputs`): a relative path to a regular file, stored as a blob.
fn send_file(store: &BlobStore, path: &str, total: &mut u64) -> Result<SentFile> {
    check_path(path).map_err(|e| usage(format!("--send-inputs: {e}")))?;
    let meta =
        std::fs::metadata(path).map_err(|e| usage(format!("input file {path} is missing or unreadable: {e}")))?;
    if !meta.is_file() {
        return Err(usage(format!("input {path} is not a file; --send-inputs sends files")));
    }
    store_file(store, Path::new(path), path.to_string(), &meta, total)
}

/// The `--send` files and directories, as a manifest blob.
fn send_set(store: &BlobStore, paths: &[PathBuf], total: &mut u64) -> Result<Option<crate::id::ContentId>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for p in paths {
        let text = p.to_str().ok_or_else(|| usage(format!("--send {}: not UTF-8", p.display())))?;
        let text = text.trim_end_matches('/');
        check_path(text).map_err(|e| usage(format!("--send: {e}")))?;
        let meta = std::fs::metadata(p).map_err(|e| usage(format!("--send {}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(store, Path::new(text), &mut files, total)?;
        } else {
            files.push(store_file(store, p, text.to_string(), &meta, total)?);
        }
    }
    let manifest = Manifest { files };
    manifest.check().map_err(usage)?;
    let encoded = manifest.encode();
    if encoded.len() as u64 > MAX_BLOB {
        return Err(usage(format!("the --send list takes {} bytes; send fewer files", encoded.len())));
    }
    Ok(Some(store.put(&encoded).context("storing the --send list")?))
}

/// Every regular file under `dir` (symlinks and other kinds are skipped, with a note).
fn walk(store: &BlobStore, dir: &Path, files: &mut Vec<SentFile>, total: &mut u64) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("reading --send {}", d.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading --send {}", d.display()))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let text = path.to_str().ok_or_else(|| usage(format!("--send {}: not UTF-8", path.display())))?;
                files.push(store_file(store, &path, text.to_string(), &e.metadata()?, total)?);
                if files.len() > MAX_SENT_FILES {
                    return Err(usage(format!("--send holds more than {MAX_SENT_FILES} files; send an archive")));
                }
            } else {
                output::note(&format!("--send: skipping {}, which is not a plain file", path.display()));
            }
        }
    }
    Ok(())
}

fn store_file(
    store: &BlobStore,
    src: &Path,
    path: String,
    meta: &std::fs::Metadata,
    total: &mut u64,
) -> Result<SentFile> {
    use std::os::unix::fs::PermissionsExt;
    *total += meta.len();
    if *total > MAX_SEND_BYTES {
        return Err(usage(format!("the files to send pass {MAX_SEND_BYTES} bytes; send less, or fewer at a time")));
    }
    let (blob, len) = store.put_file(src).map_err(|e| usage(format!("cannot send {}: {e}", src.display())))?;
    Ok(SentFile { path, blob, len, executable: meta.permissions().mode() & 0o111 != 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn words_split_into_a_command_and_its_source() {
        let (c, s) = split_words(&words("echo {} ::: a b")).unwrap();
        assert_eq!((c, s), (words("echo {}"), Source::Args(words("a b"))));
        let (c, s) = split_words(&words("wc -l :::: list.txt")).unwrap();
        assert_eq!((c, s), (words("wc -l"), Source::File("list.txt".into())));
        assert_eq!(split_words(&words("gzip")).unwrap().1, Source::Stdin);
        for bad in ["::: a", "echo ::: a ::: b", "echo :::: a b", "echo ::::"] {
            assert!(split_words(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_lose_their_endings_and_must_be_text() {
        let got = read_lines(&b"a\r\nb c\n\nlast"[..], "t").unwrap();
        assert_eq!(got, ["a", "b c", "", "last"]);
        assert!(read_lines(&b"ok\n\xff\n"[..], "t").is_err());
    }
}
