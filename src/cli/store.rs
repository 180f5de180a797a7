//! `mesh store check`: every blob of the home's store against its hash, as `git fsck`
//! does for a repository. A node checks each blob it reads anyway; this checks them all at
//! once, after a crash, a full disk or a failing SD card.

use super::exit::Exit;
use super::output;
use crate::store::BlobStore;
use anyhow::{Context, Result};
use std::path::Path;

pub(crate) fn check(home: &Path) -> Result<Exit> {
    let found =
        BlobStore::new(home).check_all().with_context(|| format!("checking the store of {}", home.display()))?;
    output::store_check(&found).context("writing the store check")?;
    Ok(if found.removed.is_empty() { Exit::Success } else { Exit::Failed })
}
