//! A LAN on one machine: network namespaces on a Linux bridge, one namespace per host,
//! each with its own address in 198.18.0.0/15 and real mDNS multicast. Needs root and
//! iproute2. The harness owns every process it starts (nodes and submitters alike), and
//! ends them and removes the namespaces and the bridge on drop, also when a test fails.
//!
//! Set `MESH_SKIP_LAN=1` to skip these tests on a machine without root.

#![allow(dead_code)] // shared with benches/lan.rs and benches/run.rs, which each use a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Returns false (and says so) when LAN tests are switched off.
pub(crate) fn lan_tests_enabled() -> bool {
    if std::env::var_os("MESH_SKIP_LAN").is_some() {
        eprintln!("MESH_SKIP_LAN is set: skipping a network-namespace test");
        return false;
    }
    true
}

fn sh(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {} (LAN tests need root and iproute2; MESH_SKIP_LAN=1 skips them)",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) ns: String,
    pub(crate) veth: String,
    pub(crate) ip: String,
    pub(crate) home: PathBuf,
    node: Option<Child>,
}

#[derive(Debug)]
pub(crate) struct Lan {
    tag: String,
    bridge: String,
    pub(crate) hosts: Vec<Host>,
    dir: PathBuf,
    /// Commands started in the background on a host, such as a submitter.
    procs: Vec<Option<Child>>,
    /// Small filesystems mounted over hosts' homes ([`Lan::small_disk`]).
    mounts: Vec<PathBuf>,
    /// The second LAN's bridge and the router's namespace ([`Lan::two_lans`]).
    second: Option<(String, String)>,
}

/// A background command the harness started; see [`Lan::spawn`].
#[derive(Debug)]
#[must_use]
pub(crate) struct Proc(usize);

impl Lan {
    /// A bridge with `n` hosts named h1..hn.
    pub(crate) fn new(n: usize) -> Self {
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        // Fixed widths, so that a tag and a host number never run into another's; every
        // LAN test of the one test binary makes its own, up to 256 of them.
        let tag = format!("{:05x}{:02x}", std::process::id() % 0xfffff, k % 256);
        let bridge = format!("mbr{tag}");
        let dir = std::env::temp_dir().join(format!("mesh-lan-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lan = Self { tag, bridge, hosts: Vec::new(), dir, procs: Vec::new(), mounts: Vec::new(), second: None };
        add_bridge(&lan.bridge);
        for i in 1..=n {
            lan.add_host(i, &lan.bridge.clone(), 0);
        }
        lan
    }

    /// Two LANs joined by a router: hosts h1..h`a` on one bridge (198.18.0.0/24), h`a+1`..
    /// h`a+b` on another (198.18.1.0/24), and a router namespace with a leg on each (.1)
    /// that forwards between them. Multicast is not routed, so each LAN has its own mDNS,
    /// as behind a real router.
    pub(crate) fn two_lans(a: usize, b: usize) -> Self {
        let mut lan = Self::new(a);
        let bridge = format!("mbs{}", lan.tag);
        let router = format!("mesh-t-{}-r", lan.tag);
        add_bridge(&bridge);
        must(&["ip", "netns", "add", &router]);
        lan.second = Some((bridge.clone(), router.clone()));
        for i in a + 1..=a + b {
            lan.add_host(i, &bridge, 1);
        }
        for (k, br) in [lan.bridge.clone(), bridge].iter().enumerate() {
            let (outer, inner) = (format!("mr{}{k}", lan.tag), format!("mq{}{k}", lan.tag));
            plug(br, &router, &outer, &inner, &format!("198.18.{k}.1"));
        }
        must(&["ip", "netns", "exec", &router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for h in &lan.hosts {
            let mine = if h.ip.starts_with("198.18.0.") { 0 } else { 1 };
            let (other, via) = (format!("198.18.{}.0/24", 1 - mine), format!("198.18.{mine}.1"));
            must(&["ip", "netns", "exec", &h.ns, "ip", "route", "add", &other, "via", &via]);
        }
        lan
    }

    fn add_host(&mut self, i: usize, bridge: &str, subnet: u8) {
        let name = format!("h{i}");
        let ns = format!("mesh-t-{}-{name}", self.tag);
        let veth = format!("mv{}{i}", self.tag);
        let inner = format!("mi{}{i}", self.tag);
        // 198.18.0.0/15 is reserved for benchmarking networks: never a real host. Each LAN
        // is its own bridge, so LANs of parallel tests may reuse addresses.
        let ip = format!("198.18.{subnet}.{}", 10 + i);
        must(&["ip", "netns", "add", &ns]);
        plug(bridge, &ns, &veth, &inner, &ip);
        must(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        must(&["ip", "netns", "exec", &ns, "ip", "route", "add", "224.0.0.0/4", "dev", &inner]);
        let home = self.dir.join(&name);
        self.hosts.push(Host { name, ns, veth, ip, home, node: None });
    }

    /// Gives host `name` a home of its own filesystem of `size` (tmpfs, e.g. `1m`), so that
    /// its disk fills up; call before it joins. Unmounted when the LAN goes.
    pub(crate) fn small_disk(&mut self, name: &str, size: &str) {
        let home = self.host(name).home.clone();
        std::fs::create_dir_all(&home).unwrap();
        must(&["mount", "-t", "tmpfs", "-o", &format!("size={size}"), "mesh-test", home.to_str().unwrap()]);
        self.mounts.push(home);
    }

    /// The resident memory of host `name`'s node, in KiB.
    pub(crate) fn rss_kib(&mut self, name: &str) -> u64 {
        let pid = self.host(name).node.as_ref().expect("a running node").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of KiB")
    }

    pub(crate) fn host(&mut self, name: &str) -> &mut Host {
        self.hosts.iter_mut().find(|h| h.name == name).expect("a host of this LAN")
    }

    /// Starts `mesh join` on a host, with extra arguments.
    pub(crate) fn join(&mut self, name: &str, extra: &[&str]) {
        self.join_with_env(name, extra, &[]);
    }

    /// Starts `mesh join` on a host, with extra arguments and environment variables.
    pub(crate) fn join_with_env(&mut self, name: &str, extra: &[&str], env: &[(&str, &str)]) {
        let h = self.host(name);
        assert!(h.node.is_none(), "{name} already runs a node");
        let log = std::fs::File::create(h.home.with_extension("log")).unwrap();
        // A node killed earlier leaves its socket file behind; the new one must make its own.
        let _ = std::fs::remove_file(h.home.join("control.sock"));
        let child = Command::new("ip")
            .args(["netns", "exec", &h.ns, env!("CARGO_BIN_EXE_mesh"), "join", "--name", &h.name])
            .args(if extra.contains(&"--workers") { &[][..] } else { &["--workers", "1"][..] })
            .arg("--home")
            .arg(&h.home)
            .args(extra)
            .env("MESH_LOG", "info,libp2p_swarm=warn")
            .env_remove("MESH_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        h.node = Some(child);
        // Ready once its control socket is bound: from then on `mesh peers` reaches it.
        let socket = h.home.join("control.sock");
        let up = eventually(Duration::from_secs(30), || {
            socket.exists() || self.host(name).node.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
        });
        let running = self.host(name).node.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
        assert!(up && running && socket.exists(), "{name}'s node did not start:\n{}", self.log(name));
    }

    /// Kills a host's node with SIGKILL, as a crash or a pulled plug would.
    pub(crate) fn kill9(&mut self, name: &str) {
        if let Some(mut c) = self.host(name).node.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops a host's node with SIGTERM, as systemd would, and waits for it.
    pub(crate) fn stop(&mut self, name: &str) -> Option<i32> {
        let mut c = self.host(name).node.take()?;
        sh(&["kill", "-TERM", &c.id().to_string()]);
        c.wait().ok()?.code()
    }

    /// Sends SIGTERM to a host's node and waits up to `limit` for it to exit: its exit
    /// code, or None if it is still running (it is then killed).
    pub(crate) fn stop_within(&mut self, name: &str, limit: Duration) -> Option<i32> {
        let mut c = self.host(name).node.take()?;
        sh(&["kill", "-TERM", &c.id().to_string()]);
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Shapes what a host sends to `rate` (tc's token bucket, e.g. `100mbit`), as a
    /// Raspberry Pi's Ethernet would.
    pub(crate) fn shape(&mut self, name: &str, rate: &str) {
        let (ns, inner) = {
            let h = self.host(name);
            (h.ns.clone(), h.veth.replacen("mv", "mi", 1))
        };
        must(&[
            "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &inner, "root", "tbf", "rate", rate, "burst",
            "64kb", "latency", "50ms",
        ]);
    }

    /// Takes a host's cable out (or puts it back).
    pub(crate) fn cable(&mut self, name: &str, plugged: bool) {
        let veth = self.host(name).veth.clone();
        must(&["ip", "link", "set", &veth, if plugged { "up" } else { "down" }]);
    }

    /// Runs a `mesh` command inside a host's namespace.
    pub(crate) fn mesh(&mut self, name: &str, args: &[&str]) -> Output {
        let dir = std::env::temp_dir();
        self.mesh_in(name, &dir, args)
    }

    /// Runs a `mesh` command inside a host's namespace, in the working directory `dir`.
    pub(crate) fn mesh_in(&mut self, name: &str, dir: &Path, args: &[&str]) -> Output {
        let h = self.host(name);
        Command::new("ip")
            .current_dir(dir)
            .args(["netns", "exec", &h.ns, env!("CARGO_BIN_EXE_mesh")])
            .args(args)
            .env("MESH_HOME", &h.home)
            .env_remove("MESH_KEY")
            .output()
            .unwrap()
    }

    /// Runs any program inside a host's namespace, with `MESH_HOME` the host's home and
    /// extra environment variables (a Python script using the `mesh` package, say).
    pub(crate) fn exec(&mut self, name: &str, program: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let h = self.host(name);
        Command::new("ip")
            .args(["netns", "exec", &h.ns, program])
            .args(args)
            .env("MESH_HOME", &h.home)
            .env_remove("MESH_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Starts a `mesh` command in a host's namespace in the background, with its output
    /// captured. The harness ends it on drop if the test has not.
    pub(crate) fn spawn(&mut self, name: &str, args: &[&str]) -> Proc {
        self.spawn_program(name, env!("CARGO_BIN_EXE_mesh"), args)
    }

    /// Starts any program in a host's namespace in the background, as [`Lan::spawn`].
    pub(crate) fn spawn_program(&mut self, name: &str, program: &str, args: &[&str]) -> Proc {
        let h = self.host(name);
        let child = Command::new("ip")
            .args(["netns", "exec", &h.ns, program])
            .args(args)
            .env("MESH_HOME", &h.home)
            .env_remove("MESH_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.procs.push(Some(child));
        Proc(self.procs.len() - 1)
    }

    /// Waits for a background command to end: its output.
    pub(crate) fn wait(&mut self, p: Proc) -> Output {
        self.procs[p.0].take().expect("a running command").wait_with_output().unwrap()
    }

    /// A background command's output if it has ended, without waiting (a command whose
    /// output fills its pipe never ends: for commands that print little).
    pub(crate) fn try_wait(&mut self, p: &Proc) -> Option<Output> {
        let ended = self.procs[p.0].as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
        ended.then(|| self.procs[p.0].take().expect("a running command").wait_with_output().unwrap())
    }

    /// Sends a background command SIGINT, as Ctrl-C in its terminal would, and waits for
    /// it to end: its output.
    pub(crate) fn interrupt(&mut self, p: Proc) -> Output {
        if let Some(c) = &self.procs[p.0] {
            // SAFETY: kill has no memory preconditions; the pid is our child's, not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        }
        self.wait(p)
    }

    /// Ends a background command with SIGKILL, as a closed terminal or a dropped ssh
    /// session would.
    pub(crate) fn kill(&mut self, p: Proc) {
        if let Some(mut c) = self.procs[p.0].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `mesh peers --json` on a host whose node runs, parsed. The host's own row must be
    /// in it: an empty list must never pass for "no other node" when the viewing host's
    /// own node has died (`mesh peers` then browses the LAN instead).
    ///
    /// A node too busy to answer in time (the machine is shared) is asked again, a few
    /// times; an answer without the host's own row fails at once.
    pub(crate) fn peers(&mut self, name: &str) -> Vec<serde_json::Value> {
        let mut tries = 0;
        loop {
            let out = self.mesh(name, &["peers", "--json"]);
            tries += 1;
            if !out.status.success() && tries < 3 {
                continue;
            }
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let own = rows.iter().any(|r| r["self"] == true && r["name"] == name);
            assert!(
                out.status.success() && own,
                "{name}'s own node did not answer `mesh peers` (exit {:?}): {}\n---- log of {name} ----\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr),
                self.log(name)
            );
            return rows;
        }
    }

    /// Names of the other members a host lists.
    pub(crate) fn members(&mut self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers(name)
            .iter()
            .filter(|r| r["state"] == "member" && r["self"] == false)
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    }

    pub(crate) fn log(&self, name: &str) -> String {
        let h = self.hosts.iter().find(|h| h.name == name).unwrap();
        std::fs::read_to_string(h.home.with_extension("log")).unwrap_or_default()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in &mut self.hosts {
            if let Some(mut c) = h.node.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            sh(&["ip", "netns", "del", &h.ns]);
        }
        sh(&["ip", "link", "del", &self.bridge]);
        if let Some((bridge, router)) = &self.second {
            sh(&["ip", "netns", "del", router]);
            sh(&["ip", "link", "del", bridge]);
        }
        for m in &self.mounts {
            sh(&["umount", "--lazy", m.to_str().unwrap()]);
        }
        if std::thread::panicking() {
            for h in &self.hosts {
                eprintln!("---- log of {} ----\n{}", h.name, self.log(&h.name));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A veth pair from `bridge` (`outer`) into namespace `ns` (`inner`, with `ip`/24), up.
fn plug(bridge: &str, ns: &str, outer: &str, inner: &str, ip: &str) {
    must(&["ip", "link", "add", outer, "type", "veth", "peer", "name", inner]);
    must(&["ip", "link", "set", outer, "master", bridge]);
    must(&["ip", "link", "set", outer, "up"]);
    must(&["ip", "link", "set", inner, "netns", ns]);
    must(&["ip", "netns", "exec", ns, "ip", "addr", "add", &format!("{ip}/24"), "dev", inner]);
    must(&["ip", "netns", "exec", ns, "ip", "link", "set", inner, "up"]);
}

fn add_bridge(name: &str) {
    must(&["ip", "link", "add", name, "type", "bridge"]);
    // Without an IGMP querier, snooping would drop the mDNS group traffic.
    must(&["ip", "link", "set", name, "type", "bridge", "mcast_snooping", "0"]);
    must(&["ip", "link", "set", name, "up"]);
}

/// Polls `check` every 200 ms until it holds or `limit` passes. Returns whether it held.
/// The limit is a generous safety net against hangs, not a timing assertion.
pub(crate) fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
