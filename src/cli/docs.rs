//! `mesh completions SHELL` and `mesh manpage`: shell completion scripts and manual pages,
//! generated from the clap definitions in `args`, so they can never disagree with what
//! the commands accept. Packages install them; users can also generate them by hand.

use super::args::Cli;
use super::exit::Exit;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

/// Prints the completion script of `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<Exit> {
    let mut cmd = Cli::command();
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mesh", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).context("writing the completion script")?;
    Ok(Exit::Success)
}

/// Prints mesh.1 on stdout, or writes it and a page per command (`mesh-run.1`,
/// `mesh-submit-wasm.1`, …) into `dir`.
pub(crate) fn manpage(dir: Option<&Path>) -> Result<Exit> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        man(cmd).render(&mut out).context("writing the manual page")?;
        out.flush().context("writing the manual page")?;
        return Ok(Exit::Success);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let written = write_pages(cmd, "mesh", dir)?;
    super::output::note(&format!("wrote {written} manual pages to {}", dir.display()));
    Ok(Exit::Success)
}

/// The page of `cmd`, in section 1, of mesh's manual, of this version.
fn man(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd).source(format!("mesh {}", env!("CARGO_PKG_VERSION"))).manual("mesh manual")
}

/// Writes `name.1` for `cmd` and, recursively, `name-sub.1` for each of its commands;
/// returns how many pages it wrote.
fn write_pages(cmd: clap::Command, name: &str, dir: &Path) -> Result<usize> {
    // Titled `mesh-run`, as man pages of commands are, but used as `mesh run`.
    let cmd = cmd.name(name.to_string()).bin_name(name.replace('-', " "));
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    man(cmd.clone()).render(&mut page).context("rendering a manual page")?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_pages(sub.clone(), &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
