//! The journal's files: reading them back at a node's start, writing them on the
//! journal's own thread, and pruning ended jobs. The layout is `format.rs`'s.

use super::format::{self, DIR, END, ENTRY, EndEntry, JOB, JobEntry, META, META_TABLE, NEXT_SEQ, RESULTS, ResultEntry};
use crate::protocol::encode;
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Each open job file's page cache: a job file is written in small batches and read once.
const CACHE_BYTES: usize = 1 << 20;
/// Job files kept open at once; others are opened again when written.
const OPEN_FILES: usize = 16;

/// Why the journal could not do something.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("{path}: {what}")]
    Bad { path: PathBuf, what: String },
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> DiskError {
    DiskError::Db { path: path.to_path_buf(), source: e.into() }
}

/// A job read back from its file.
#[derive(Debug)]
pub(crate) struct Kept {
    pub entry: JobEntry,
    pub results: Vec<ResultEntry>,
    pub end: Option<EndEntry>,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// A job file that could not be read: set aside as `.lost`.
#[derive(Debug)]
pub(crate) struct Lost {
    pub seq: u32,
    pub why: String,
}

/// What a node finds in its journal when it starts.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub next_seq: u32,
    pub jobs: Vec<Kept>,
    pub lost: Vec<Lost>,
}

/// The journal's files, as its thread holds them.
pub(crate) struct Disk {
    dir: PathBuf,
    open: HashMap<u32, Database>,
    meta: Database,
    /// Ended jobs on disk: when they ended (Unix seconds) and their files' sizes.
    ended: BTreeMap<u32, (u64, u64)>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("dir", &self.dir).field("open", &self.open.len()).finish()
    }
}

fn open_db(path: &Path) -> Result<Database, DiskError> {
    let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(|e| db_err(path, e))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(db)
}

impl Disk {
    /// Opens the journal under `home`, creating it if need be, and reads back every job.
    pub(crate) fn open(home: &Path) -> Result<(Self, Found), DiskError> {
        let dir = home.join(DIR);
        let io = |source| DiskError::Io { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let meta_path = dir.join(META);
        let meta = open_db(&meta_path)?;
        let mut found = Found { next_seq: read_next_seq(&meta, &meta_path)?, ..Found::default() };
        let mut ended = BTreeMap::new();
        let mut names: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .filter_map(|e| Some((format::seq_of(e.file_name().to_str()?)?, e.path())))
            .collect();
        names.sort();
        for (seq, path) in names {
            match read_job(seq, &path) {
                Ok(kept) => {
                    if let Some(end) = &kept.end {
                        ended.insert(seq, (end.at, kept.bytes));
                    }
                    found.next_seq = found.next_seq.max(seq.saturating_add(1));
                    found.jobs.push(kept);
                }
                Err(e) => {
                    found.next_seq = found.next_seq.max(seq.saturating_add(1));
                    let mut lost = path.clone().into_os_string();
                    lost.push(".lost");
                    let _ = std::fs::rename(&path, &lost);
                    found.lost.push(Lost { seq, why: e.to_string() });
                }
            }
        }
        found.next_seq = found.next_seq.max(1);
        let disk = Self { dir, open: HashMap::new(), meta, ended };
        Ok((disk, found))
    }

    fn path(&self, seq: u32) -> PathBuf {
        self.dir.join(format::file_name(seq))
    }

    fn db(&mut self, seq: u32) -> Result<&Database, DiskError> {
        if !self.open.contains_key(&seq) {
            if self.open.len() >= OPEN_FILES
                && let Some(&old) = self.open.keys().next()
            {
                self.open.remove(&old);
            }
            let db = open_db(&self.path(seq))?;
            self.open.insert(seq, db);
        }
        Ok(&self.open[&seq])
    }

    /// A new job: its entry, and the next job number, both on disk when this returns.
    pub(crate) fn begin(&mut self, entry: &JobEntry) -> Result<(), DiskError> {
        let meta_path = self.dir.join(META);
        let w = self.meta.begin_write().map_err(|e| db_err(&meta_path, e))?;
        {
            let mut t = w.open_table(META_TABLE).map_err(|e| db_err(&meta_path, e))?;
            t.insert(NEXT_SEQ, entry.seq.saturating_add(1)).map_err(|e| db_err(&meta_path, e))?;
        }
        w.commit().map_err(|e| db_err(&meta_path, e))?;
        let path = self.path(entry.seq);
        let bytes = encode(entry);
        let w = self.db(entry.seq)?.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut t = w.open_table(JOB).map_err(|e| db_err(&path, e))?;
            t.insert(ENTRY, bytes.as_slice()).map_err(|e| db_err(&path, e))?;
        }
        w.open_table(RESULTS).map(drop).map_err(|e| db_err(&path, e))?;
        w.commit().map_err(|e| db_err(&path, e))
    }

    /// A batch of a job's results, and its end if it ended, in one commit.
    pub(crate) fn write(&mut self, seq: u32, results: &[ResultEntry], end: Option<&EndEntry>) -> Result<(), DiskError> {
        let path = self.path(seq);
        let w = self.db(seq)?.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut t = w.open_table(RESULTS).map_err(|e| db_err(&path, e))?;
            let first = t.last().map_err(|e| db_err(&path, e))?.map_or(0, |(k, _)| k.value() + 1);
            for (row, rows) in (first..).zip(format::rows(results)) {
                t.insert(row, encode(&rows).as_slice()).map_err(|e| db_err(&path, e))?;
            }
        }
        if let Some(end) = end {
            let bytes = encode(end);
            let mut t = w.open_table(JOB).map_err(|e| db_err(&path, e))?;
            t.insert(END, bytes.as_slice()).map_err(|e| db_err(&path, e))?;
        }
        w.commit().map_err(|e| db_err(&path, e))?;
        if let Some(end) = end {
            self.open.remove(&seq);
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            self.ended.insert(seq, (end.at, bytes));
        }
        Ok(())
    }

    /// Removes ended jobs older than `keep_secs`, then the oldest beyond `keep_bytes`, and
    /// lost files older than `keep_secs`. Returns the jobs removed.
    pub(crate) fn prune(&mut self, now: u64, keep_secs: u64, keep_bytes: u64) -> Vec<u32> {
        // Newest first: a job goes once it is too old, or past the budget with the newer ones.
        let mut by_age: Vec<(u64, u32, u64)> = self.ended.iter().map(|(s, (at, bytes))| (*at, *s, *bytes)).collect();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        let (mut total, mut gone) = (0u64, Vec::new());
        for (at, seq, bytes) in by_age {
            total += bytes;
            if now.saturating_sub(at) > keep_secs || total > keep_bytes {
                gone.push(seq);
            }
        }
        for seq in &gone {
            self.ended.remove(seq);
            let _ = std::fs::remove_file(self.path(*seq));
        }
        self.prune_lost(keep_secs);
        gone
    }

    fn prune_lost(&self, keep_secs: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let old = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            let is_lost = e.file_name().to_str().is_some_and(|n| n.ends_with(".redb.lost"));
            if is_lost && old.is_some_and(|age| age.as_secs() > keep_secs) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn read_next_seq(meta: &Database, path: &Path) -> Result<u32, DiskError> {
    let r = meta.begin_read().map_err(|e| db_err(path, e))?;
    match r.open_table(META_TABLE) {
        Ok(t) => Ok(t.get(NEXT_SEQ).map_err(|e| db_err(path, e))?.map_or(1, |v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(1),
        Err(e) => Err(db_err(path, e)),
    }
}

fn read_job(seq: u32, path: &Path) -> Result<Kept, DiskError> {
    let bad = |what: String| DiskError::Bad { path: path.to_path_buf(), what };
    let bytes = std::fs::metadata(path).map_err(|source| DiskError::Io { path: path.to_path_buf(), source })?.len();
    let db = Database::builder().set_cache_size(CACHE_BYTES).open(path).map_err(|e| db_err(path, e))?;
    let r = db.begin_read().map_err(|e| db_err(path, e))?;
    let job = r.open_table(JOB).map_err(|e| db_err(path, e))?;
    let entry = job.get(ENTRY).map_err(|e| db_err(path, e))?.ok_or_else(|| bad("no job entry".into()))?;
    let entry: JobEntry = format::decode(entry.value()).map_err(|e| bad(format!("job entry: {e}")))?;
    if entry.version > format::VERSION || entry.seq != seq {
        return Err(bad(format!("job entry of version {} for job {}", entry.version, entry.seq)));
    }
    let end = match job.get(END).map_err(|e| db_err(path, e))? {
        Some(v) => Some(format::decode::<EndEntry>(v.value()).map_err(|e| bad(format!("end: {e}")))?),
        None => None,
    };
    let mut results = Vec::new();
    let table = r.open_table(RESULTS).map_err(|e| db_err(path, e))?;
    let mut seen = std::collections::HashSet::new();
    for row in table.iter().map_err(|e| db_err(path, e))? {
        let (_, v) = row.map_err(|e| db_err(path, e))?;
        let rows: Vec<ResultEntry> = format::decode(v.value()).map_err(|e| bad(format!("results: {e}")))?;
        for res in rows {
            let task = res.report.task;
            if task >= entry.spec.tasks() || !seen.insert(task) {
                return Err(bad(format!("a second result, or one beyond the job, for task {task}")));
            }
            results.push(res);
        }
    }
    Ok(Kept { entry, results, end, bytes })
}
