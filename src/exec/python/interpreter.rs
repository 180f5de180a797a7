//! The Python that runs tasks on this node: which interpreter, and its version.

use crate::core::PyVersion;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The interpreter that runs Python tasks: `MESH_PYTHON`, else `python3` on `PATH`.
pub fn interpreter() -> PathBuf {
    std::env::var_os("MESH_PYTHON").filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// This node's Python 3 version, if it has one: asked of the interpreter once.
pub fn detect() -> Option<PyVersion> {
    static FOUND: OnceLock<Option<PyVersion>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let out = std::process::Command::new(interpreter())
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let v: PyVersion = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (out.status.success() && v.major == 3).then_some(v)
    })
}

pub(crate) fn version_text() -> String {
    detect().map_or_else(|| "?".to_string(), |v| v.to_string())
}
