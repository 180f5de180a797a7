//! `mesh jobs` and `--detach`: the jobs the mesh's nodes own, and a detached job's id.

use super::fit::{col, fitted, terminal_width};
use crate::node::{JobRef, JobSummary, PeerRow, PeerState, node_id_of};
use serde::Serialize;
use std::io::{self, Write};

/// A detached job's id on stdout (alone, or as `{"job": ID}`), and what to do next.
pub(crate) fn detached(id: JobRef, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::json!({ "job": id }))?;
    } else {
        writeln!(out, "{id}")?;
    }
    out.flush()?;
    super::note(&format!(
        "job {id} runs on, detached: `mesh wait {id}` shows its results, `mesh cancel {id}` ends it, `mesh jobs` lists it"
    ));
    Ok(())
}

/// One line of `mesh jobs`.
#[derive(Debug, Serialize)]
struct JobLine<'a> {
    job: JobRef,
    kind: &'a str,
    /// `user@node`, or absent when the owner runs an older mesh.
    submitter: Option<&'a str>,
    state: &'static str,
    done: u64,
    failed: u64,
    total: u64,
    /// Since it was submitted; for a finished job, how long it ran.
    elapsed_s: f64,
    /// The node that owns it.
    owner: &'a str,
}

fn lines(rows: &[PeerRow]) -> Vec<JobLine<'_>> {
    let mut out: Vec<JobLine<'_>> = rows
        .iter()
        .filter(|r| r.state == PeerState::Member)
        .flat_map(|r| {
            let owner = node_id_of(&r.peer_id).map(|n| (n.0 >> 32) as u32).unwrap_or(0);
            r.jobs.iter().map(move |j: &JobSummary| JobLine {
                job: JobRef { owner, seq: j.seq },
                kind: j.kind.as_str(),
                submitter: j.submitter.as_deref(),
                state: if j.finished { "finished" } else { "running" },
                done: j.done,
                failed: j.failed,
                total: j.total,
                elapsed_s: j.elapsed_ms as f64 / 1000.0,
                owner: &r.name,
            })
        })
        .collect();
    out.sort_by_key(|l| (l.state != "running", l.owner.to_string(), l.job.seq));
    out
}

/// Prints `mesh jobs`: running jobs first, then the recently finished, each with its id,
/// kind, submitter, state, progress, age and owner; or them all as a JSON array.
pub(crate) fn jobs(rows: &[PeerRow], json: bool) -> io::Result<()> {
    let lines = lines(rows);
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &lines)?;
        writeln!(out)?;
        return out.flush();
    }
    if lines.is_empty() {
        return writeln!(io::stderr(), "No jobs: none runs on the mesh, and none finished in the last minutes.");
    }
    let columns = [
        col("job", 0),
        col("kind", 1),
        col("submitter", 1),
        col("state", 0),
        col("done", 0),
        col("failed", 2),
        col("total", 0),
        col("time", 3),
        col("owner", 2),
    ];
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.job.to_string(),
                l.kind.to_string(),
                l.submitter.unwrap_or("?").to_string(),
                l.state.to_string(),
                l.done.to_string(),
                l.failed.to_string(),
                l.total.to_string(),
                age(l.elapsed_s),
                l.owner.to_string(),
            ]
        })
        .collect();
    let t = fitted(&columns, &rows, terminal_width());
    writeln!(out, "{t}")?;
    out.flush()
}

/// `42 s`, `7 min`, `3.5 h`.
fn age(s: f64) -> String {
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}
