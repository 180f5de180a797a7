//! Everything mesh prints: results on stdout, statistics and progress on stderr, or one
//! JSON document on stdout with `--json`. This module and its children are the only code
//! that prints.
//!
//! * `job`: a job's results and its statistics table;
//! * `peers`: `mesh peers`;
//! * `bench`: `mesh bench`'s report.

mod bench;
mod fit;
mod job;
mod jobs;
mod peers;
mod run;

pub(crate) use bench::{BenchReport, bench_report};
pub(crate) use job::{job_report, wasm_report};
pub(crate) use jobs::{detached, jobs};
pub(crate) use peers::{PeersSource, peers};
pub(crate) use run::{RunPrinter, joblog_done};

use crate::node::JobEvent;
use comfy_table::{CellAlignment, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A usage error found after clap's parsing, worded for the user. Like every error that
/// is not a job's failure or an interruption, it exits with status 2 ([`super::Exit`]).
pub(crate) fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}

/// How long a job runs before its progress bar appears.
const BAR_DELAY: Duration = Duration::from_millis(400);

/// A progress bar on stderr that appears only for work longer than a moment, and never
/// when stderr is not a terminal (indicatif hides it then) or with `--json`.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        Self { bar: None, started: Instant::now(), quiet }
    }

    pub(crate) fn update(&mut self, done: u64, total: u64) {
        if self.bar.is_none() && !self.quiet && self.started.elapsed() >= BAR_DELAY && done < total {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tasks  {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()); // the template is a constant
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub(crate) fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Prints one JSON document on stdout.
fn print_json(doc: &impl Serialize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, doc)?;
    writeln!(out)?;
    out.flush()
}

/// The last 8 characters of a peer id, as libp2p tools abbreviate it.
fn short_peer(p: &str) -> String {
    let skip = p.chars().count().saturating_sub(8);
    p.chars().skip(skip).collect()
}

/// Prints why a job waits, for jobs whose events are only that.
pub(crate) fn waiting_notes(e: JobEvent) {
    if let JobEvent::Waiting(why) = e {
        note(&format!("waiting: no node can run the queued tasks: {why}"));
    }
}

/// A one-line note for the user on stderr.
/// `mesh store check`'s one line, and the damaged blobs it removed.
pub(crate) fn store_check(found: &crate::store::StoreCheck) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mib = found.bytes as f64 / (1024.0 * 1024.0);
    let blobs = if found.sound == 1 { "blob" } else { "blobs" };
    writeln!(out, "{} {blobs} ({mib:.1} MiB) sound; {} damaged", found.sound, found.removed.len())?;
    for id in &found.removed {
        writeln!(out, "removed damaged blob {id} (it is fetched again when a task needs it)")?;
    }
    Ok(())
}

pub(crate) fn note(msg: &str) {
    eprintln!("mesh: {msg}");
}

/// Right-aligns the numeric columns `cols` of a table.
fn align_right(t: &mut Table, cols: std::ops::Range<usize>) {
    for col in cols {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}
