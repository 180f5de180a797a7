//! `mesh run`'s results as they come: each task's stdout printed whole, in input order
//! (GNU parallel's `-k`), its stderr on stderr with the task's number in front, its
//! returned files placed under the results directory, and a joblog line in GNU parallel's
//! format as each task finishes, so an interrupted sweep can `--resume`. With `--json`,
//! one document at the end instead.

use super::job::{JsonStats, json_stats, table_and_speedup};
use super::{note, print_json};
use crate::job::run::{Captured, Ended, RunJob, RunOutput, RunTask, check_path, expand, fill};
use crate::node::{JobEvent, JobReport, TaskEvent};
use crate::store::BlobStore;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// GNU parallel's joblog header.
const JOBLOG_HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// Prints a run job's tasks as they finish.
#[derive(Debug)]
pub(crate) struct RunPrinter {
    command: Vec<String>,
    /// The job's `--return` patterns.
    returns: Vec<String>,
    tasks: Vec<RunTask>,
    json: bool,
    results: PathBuf,
    joblog: Option<std::fs::File>,
    store: BlobStore,
    /// The next task to print, in input order, and the finished ones waiting for it.
    next: usize,
    waiting: BTreeMap<usize, TaskEvent>,
    /// Every finished task, for `--json`.
    finished: Vec<Option<TaskEvent>>,
    seen: usize,
    /// The first thing that went wrong on this side (a write, a returned file).
    error: Option<anyhow::Error>,
}

impl RunPrinter {
    pub(crate) fn new(
        job: &RunJob,
        tasks: Vec<RunTask>,
        json: bool,
        results: PathBuf,
        joblog: Option<&Path>,
        append: bool,
        store: BlobStore,
    ) -> Result<Self> {
        let joblog = joblog.map(|p| open_joblog(p, append)).transpose()?;
        let finished = (0..tasks.len()).map(|_| None).collect();
        Ok(Self {
            command: job.command.clone(),
            returns: job.returns.clone(),
            tasks,
            json,
            results,
            joblog,
            store,
            next: 0,
            waiting: BTreeMap::new(),
            finished,
            seen: 0,
            error: None,
        })
    }

    /// Takes one event of the job.
    pub(crate) fn event(&mut self, e: JobEvent) {
        let t = match e {
            JobEvent::Waiting(why) => return note(&format!("waiting: no node can run the queued tasks: {why}")),
            JobEvent::Task(t) => *t,
            // A program job's printer never sees Python tasks.
            JobEvent::Python(_) => return,
        };
        let Some(task) = self.tasks.get(t.task as usize).cloned() else { return };
        if let Ok(out) = &t.outcome {
            for blob in out.blobs() {
                if let Err(e) = self.store.pin(blob) {
                    self.error.get_or_insert(e.into());
                }
            }
        }
        let logged = self.log(&task, &t);
        let placed = self.place_returns(&task, &t);
        if let Err(e) = logged.and(placed) {
            self.error.get_or_insert(e);
        }
        self.seen += 1;
        if self.json {
            let i = t.task as usize;
            self.finished[i] = Some(t);
            return;
        }
        self.waiting.insert(t.task as usize, t);
        while let Some(t) = self.waiting.remove(&self.next) {
            if let Err(e) = self.print(&t) {
                self.error.get_or_insert(e.into());
            }
            self.next += 1;
        }
    }

    /// Prints what is left once the job ended; returns whether every task ran.
    pub(crate) fn finish(mut self, report: &JobReport) -> Result<bool> {
        for t in std::mem::take(&mut self.waiting).into_values() {
            self.print(&t)?;
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let missing = self.tasks.len() - self.seen;
        if self.json {
            let results =
                self.tasks.iter().zip(&self.finished).map(|(t, e)| json_task(t, e.as_ref(), &self.store)).collect();
            print_json(&JsonRun { job: "run", command: &self.command, results, stats: json_stats(report) })?;
        } else {
            // Each failure was told as its task printed.
            table_and_speedup(report)?;
        }
        if missing > 0 {
            let why = if report.halted {
                "the job halted (--halt, or no node could run them)"
            } else {
                "the job ended first"
            };
            note(&format!("{missing} of {} tasks never ran: {why}", self.tasks.len()));
        }
        Ok(missing == 0)
    }

    fn print(&self, t: &TaskEvent) -> io::Result<()> {
        let task = &self.tasks[t.task as usize];
        let out = match &t.outcome {
            Ok(o) => o,
            Err(e) => {
                eprintln!("mesh: task {} ({}) failed: {e}", task.seq, task.arg);
                return Ok(());
            }
        };
        let mut stdout = io::stdout().lock();
        stdout.write_all(&bytes(&out.stdout, &self.store))?;
        stdout.flush()?;
        let stderr = bytes(&out.stderr, &self.store);
        let mut err = io::stderr().lock();
        for line in stderr.split_inclusive(|&b| b == b'\n') {
            write!(err, "{}: ", task.seq)?;
            err.write_all(line)?;
            if !line.ends_with(b"\n") {
                writeln!(err)?;
            }
        }
        if !out.succeeded() {
            writeln!(err, "mesh: task {} ({}) failed on {}: {}", task.seq, task.arg, t.node, failure(out))?;
        }
        Ok(())
    }

    /// A joblog line, written as soon as the task finished.
    fn log(&mut self, task: &RunTask, t: &TaskEvent) -> Result<()> {
        let Some(log) = &mut self.joblog else { return Ok(()) };
        let (start, exit, signal, receive) = match &t.outcome {
            Ok(o) => {
                let (exit, signal) = match o.ended {
                    Ended::Exit(c) => (c, 0),
                    Ended::Signal(s) => (-1, s),
                };
                let received: u64 = o.stdout.len() + o.returned.iter().map(|r| r.len).sum::<u64>();
                (o.started_ms as f64 / 1000.0, exit, signal, received)
            }
            Err(_) => (0.0, -1, 0, 0),
        };
        let send = task.file.as_ref().map_or(0, |f| f.len);
        // One line per task whatever the input holds: newlines and tabs are escaped.
        let command = expand(&self.command, &task.arg, task.seq)
            .join(" ")
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\t', "\\t");
        writeln!(
            log,
            "{}\t{}\t{start:.3}\t{:10.3}\t{send}\t{receive}\t{exit}\t{signal}\t{command}",
            task.seq,
            t.node,
            t.took.as_secs_f64()
        )
        .and_then(|()| log.flush())
        .context("writing the joblog")
    }

    /// Copies a task's returned files from the store to the results directory. Only the
    /// paths the job's `--return` patterns name for this task are written, whatever the
    /// node that ran it says; none is written through a symlink.
    fn place_returns(&self, task: &RunTask, t: &TaskEvent) -> Result<()> {
        let Ok(out) = &t.outcome else { return Ok(()) };
        let asked: Vec<String> = self.returns.iter().map(|p| fill(p, &task.arg, task.seq)).collect();
        for r in &out.returned {
            if !asked.contains(&r.path) {
                bail!(
                    "the node that ran task {} returned '{}', which its --return patterns do not name",
                    task.seq,
                    r.path
                );
            }
            check_path(&r.path).map_err(|e| anyhow::anyhow!("a node returned {e}"))?;
            let parent = make_dirs(&self.results, Path::new(&r.path).parent())?;
            let dest = self.results.join(&r.path);
            // A fresh name, created exclusively: nothing planted there is followed.
            let tmp = parent.join(format!(".mesh-return-{}-{}-{}", std::process::id(), t.task, crate::store::unique()));
            let placed = self
                .store
                .copy_out(r.blob, &tmp)
                .with_context(|| format!("copying out {}", r.path))
                .and_then(|_| std::fs::rename(&tmp, &dest).with_context(|| format!("placing {}", dest.display())));
            if placed.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            placed?;
        }
        Ok(())
    }
}

/// Makes `root` (the user's `--results`, which may be a symlink) and then the directories
/// of `sub` under it one by one, refusing any of those that is a symlink (it could lead
/// outside `root`); returns the innermost.
fn make_dirs(root: &Path, sub: Option<&Path>) -> Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let mut dir = root.to_path_buf();
    for part in sub.into_iter().flat_map(Path::components) {
        let std::path::Component::Normal(name) = part else { continue };
        dir.push(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory (a symlink is not followed)", dir.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("looking at {}", dir.display())),
        }
    }
    Ok(dir)
}

fn open_joblog(path: &Path, append: bool) -> Result<std::fs::File> {
    let fresh = !append || std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true);
    if fresh {
        opts.write(true).truncate(true)
    } else {
        opts.append(true)
    };
    let mut f = opts.open(path).with_context(|| format!("opening --joblog {}", path.display()))?;
    let torn = !fresh && !std::fs::read(path).is_ok_and(|b| b.ends_with(b"\n"));
    if fresh {
        writeln!(f, "{JOBLOG_HEADER}").with_context(|| format!("writing --joblog {}", path.display()))?;
    } else if torn {
        // A run killed mid-line: the next record starts on a line of its own.
        writeln!(f).with_context(|| format!("writing --joblog {}", path.display()))?;
    }
    Ok(f)
}

/// The sequence numbers a joblog records as run (`--resume`), or as run and succeeded
/// (`--resume-failed`). A missing joblog records nothing. Lines that are not joblog lines
/// (the torn last line of a run that was killed while writing, say) are skipped with a
/// note: their tasks run again.
pub(crate) fn joblog_done(path: &Path, only_succeeded: bool) -> Result<HashSet<u64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e).with_context(|| format!("reading --joblog {}", path.display())),
    };
    let mut done = HashSet::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with("Seq\t")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let parsed = (cols.len() >= 9)
            .then(|| Some((cols[0].parse::<u64>().ok()?, cols[6].parse::<i64>().ok()?, cols[7].parse::<i64>().ok()?)))
            .flatten();
        let Some((seq, exit, signal)) = parsed else {
            note(&format!("--joblog {} line {} is not a joblog line; skipped: {line}", path.display(), i + 1));
            continue;
        };
        if !only_succeeded || (exit == 0 && signal == 0) {
            done.insert(seq);
        }
    }
    Ok(done)
}

fn bytes(c: &Captured, store: &BlobStore) -> Vec<u8> {
    match c {
        Captured::Inline(b) => b.to_vec(),
        Captured::Blob { id, .. } => {
            store.read(*id).unwrap_or_else(|e| format!("[mesh: output lost: {e}]\n").into_bytes())
        }
    }
}

fn failure(o: &RunOutput) -> String {
    crate::node::run_failure(o)
}

#[derive(Serialize)]
struct JsonRun<'a> {
    job: &'static str,
    command: &'a [String],
    results: Vec<JsonRunTask>,
    #[serde(flatten)]
    stats: JsonStats<'a>,
}

#[derive(Serialize)]
struct JsonRunTask {
    seq: u64,
    input: String,
    /// Whether it ran at all (a halted job leaves tasks that never did).
    ran: bool,
    exit: Option<i32>,
    signal: Option<i32>,
    /// At most [`JSON_OUTPUT_MAX`] bytes of stdout, as text (invalid UTF-8 replaced).
    output: String,
    stderr: String,
    /// The whole output's sizes, and whether `output` or `stderr` holds only their start.
    output_bytes: u64,
    stderr_bytes: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    error: Option<String>,
    node: Option<String>,
    time_s: f64,
    attempts: u32,
    returned: Vec<String>,
}

/// The most of one task's stdout or stderr that `--json` carries as text: a document stays
/// a bounded size whatever a program writes (`--results DIR` keeps all of it).
const JSON_OUTPUT_MAX: usize = 1 << 20;

/// The start of a task's output as text, whether it was cut, and its whole size.
fn json_text(c: &Captured, store: &BlobStore) -> (String, bool, u64) {
    let all = bytes(c, store);
    let cut = all.len() > JSON_OUTPUT_MAX;
    let text = String::from_utf8_lossy(&all[..all.len().min(JSON_OUTPUT_MAX)]).into_owned();
    (text, cut, c.len())
}

fn json_task(t: &RunTask, e: Option<&TaskEvent>, store: &BlobStore) -> JsonRunTask {
    let mut j = JsonRunTask {
        seq: t.seq,
        input: t.arg.clone(),
        ran: e.is_some(),
        exit: None,
        signal: None,
        output: String::new(),
        stderr: String::new(),
        output_bytes: 0,
        stderr_bytes: 0,
        truncated: false,
        error: None,
        node: e.map(|e| e.node.clone()),
        time_s: e.map_or(0.0, |e| e.took.as_secs_f64()),
        attempts: e.map_or(0, |e| e.attempts),
        returned: Vec::new(),
    };
    match e.map(|e| &e.outcome) {
        Some(Ok(o)) => {
            match o.ended {
                Ended::Exit(c) => j.exit = Some(c),
                Ended::Signal(s) => j.signal = Some(s),
            }
            let (out, err) = (json_text(&o.stdout, store), json_text(&o.stderr, store));
            (j.output, j.stderr, j.truncated) = (out.0, err.0, out.1 || err.1);
            (j.output_bytes, j.stderr_bytes) = (out.2, err.2);
            j.error = (!o.succeeded()).then(|| failure(o));
            j.returned = o.returned.iter().map(|r| r.path.clone()).collect();
        }
        Some(Err(err)) => j.error = Some(err.clone()),
        None => j.error = Some("never ran".into()),
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::run::Returned;
    use std::time::Duration;

    /// A printer for a job returning `{.}.out` into a fresh results directory, and a task
    /// event returning `returned` (stored under each path's own name).
    fn setup(name: &str) -> (PathBuf, RunPrinter) {
        let dir = std::env::temp_dir().join(format!("mesh-returns-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("results")).unwrap();
        let job = RunJob {
            command: vec!["true".into()],
            tasks: 1,
            inputs: crate::id::ContentId::of(b"t"),
            files: None,
            returns: vec!["{.}.out".into()],
            timeout: None,
            memory_mb: None,
            retries: 0,
            halt: None,
            needs: crate::core::Needs::native(Vec::new()),
        };
        let task = RunTask { seq: 1, arg: "sub/a.txt".into(), file: None };
        let store = BlobStore::new(&dir.join("home"));
        let p = RunPrinter::new(&job, vec![task], true, dir.join("results"), None, false, store).unwrap();
        (dir, p)
    }

    fn event(p: &RunPrinter, returned: &[&str]) -> TaskEvent {
        let returned = returned
            .iter()
            .map(|path| {
                let blob = p.store.put(path.as_bytes()).unwrap();
                Returned { path: path.to_string(), blob, len: path.len() as u64 }
            })
            .collect();
        let out = RunOutput {
            ended: Ended::Exit(0),
            problem: None,
            stdout: Captured::Inline(Default::default()),
            stderr: Captured::Inline(Default::default()),
            returned,
            started_ms: 0,
        };
        TaskEvent { task: 0, node: "n".into(), attempts: 1, took: Duration::ZERO, outcome: Ok(out) }
    }

    #[test]
    fn returned_files_land_only_where_the_job_said() {
        let (dir, p) = setup("ok");
        let task = p.tasks[0].clone();
        p.place_returns(&task, &event(&p, &["sub/a.out"])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("results/sub/a.out")).unwrap(), "sub/a.out");
        // A name the patterns do not give this task, even a harmless one, is refused.
        let err = p.place_returns(&task, &event(&p, &[".bashrc"])).unwrap_err().to_string();
        assert!(err.contains("do not name"), "{err}");
        assert!(!dir.join("results/.bashrc").exists());
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.join("results/sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["a.out"], "no temporary file stays behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlinked_directory_is_not_followed() {
        let (dir, p) = setup("link");
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("results/sub")).unwrap();
        let task = p.tasks[0].clone();
        let err = p.place_returns(&task, &event(&p, &["sub/a.out"])).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing was written through the link");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
