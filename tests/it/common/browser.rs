//! A real browser for tests: Debian's headless Chromium, driven over the Chrome DevTools
//! Protocol on `--remote-debugging-pipe` (JSON messages ended by a NUL byte; Chromium
//! reads commands on fd 3 and writes replies and events on fd 4). One page stays open, so
//! a test sees what the page does by itself, live, as a person would; two separate page
//! loads would not tell a live page from one that only rendered once.
//!
//! The tests that need Chromium and Prometheus's `promtool` say so and skip when either is
//! missing, unless `MESH_REQUIRE_BROWSER` is set, as CI sets it after installing both:
//! there a missing tool fails the test. `MESH_SKIP_BROWSER=1` skips them always.

use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// How long one DevTools command may take before the test fails instead of hanging.
const REPLY: Duration = Duration::from_secs(60);

/// Returns false (and says so) when browser tests are switched off, or cannot run here
/// and need not.
pub(crate) fn browser_tests_enabled() -> bool {
    if std::env::var_os("MESH_SKIP_BROWSER").is_some() {
        eprintln!("MESH_SKIP_BROWSER is set: skipping a test that needs Chromium and promtool");
        return false;
    }
    let promtool = std::env::var("MESH_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let missing: Vec<&str> = [("chromium", "chromium"), ("promtool", promtool.as_str())]
        .into_iter()
        .filter(|(_, program)| Command::new(program).arg("--version").output().is_err())
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("MESH_REQUIRE_BROWSER").is_none(),
        "MESH_REQUIRE_BROWSER is set, but {missing:?} cannot run (.ci/run installs both)"
    );
    eprintln!("{missing:?} not installed: skipping a browser test (bash .ci/run installs them)");
    false
}

#[derive(Debug)]
pub(crate) struct Browser {
    child: Child,
    to: File,
    from: Receiver<Value>,
    next: u64,
    session: String,
    profile: PathBuf,
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    /// Opens `url` in headless Chromium inside the network namespace `ns` (or this one,
    /// for `None`).
    pub(crate) fn open(ns: Option<&str>, url: &str) -> Self {
        let profile = std::env::temp_dir().join(format!("mesh-chromium-{}-{}", std::process::id(), url.len()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (res_r, res_w) = pipe();
        let mut command = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "chromium"]);
                c
            }
            None => Command::new("chromium"),
        };
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The
        // pipe ends first move above fd 10, so that placing them on 3 and 4 cannot
        // overwrite one with the other.
        unsafe {
            command.pre_exec(move || {
                let a = libc::fcntl(cmd_r, libc::F_DUPFD, 10);
                let b = libc::fcntl(res_w, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child =
            command.spawn().expect("cannot start chromium (apt-get install chromium; MESH_SKIP_BROWSER=1 skips)");
        // SAFETY: each fd came from pipe2 above and is owned by exactly one File.
        let (to, mut replies) = unsafe {
            libc::close(cmd_r);
            libc::close(res_w);
            (File::from_raw_fd(cmd_w), File::from_raw_fd(res_r))
        };
        let (tx, from) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1 << 16];
            while let Ok(n) = replies.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut b = Self { child, to, from, next: 0, session: String::new(), profile };
        let targets = b.call("Target.getTargets", json!({}), false);
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target: {targets}"))["targetId"]
            .clone();
        let attached = b.call("Target.attachToTarget", json!({"targetId": page, "flatten": true}), false);
        b.session = attached["sessionId"].as_str().expect("a session id").to_string();
        b
    }

    fn call(&mut self, method: &str, params: Value, on_page: bool) -> Value {
        self.next += 1;
        let mut msg = json!({"id": self.next, "method": method, "params": params});
        if on_page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap_or_else(|e| panic!("chromium closed its pipe ({method}): {e}"));
        loop {
            let m =
                self.from.recv_timeout(REPLY).unwrap_or_else(|e| panic!("no answer to {method} from chromium: {e}"));
            if m["id"] == self.next {
                assert!(m.get("error").is_none(), "{method}: {}", m["error"]);
                return m["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression on the page.
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}), true);
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// A PNG of the page as a phone of `width`×`height` CSS pixels shows it.
    pub(crate) fn screenshot(&mut self, width: u32, height: u32) -> Vec<u8> {
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true});
        self.call("Emulation.setDeviceMetricsOverride", metrics, true);
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}), true);
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("png data")).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `ip netns exec` execs chromium in place, but chromium's own helpers may outlive it.
        let _ = Command::new("pkill").args(["-KILL", "-f", &self.profile.display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
