//! `mesh run` against the tools its users know, and its file transfer against the link.
//! Root, iproute2 (`tc`), GNU parallel and python3 needed.
//!
//! Run: `cargo bench --bench run` (optionally `-- overhead [N]` or `-- send [MB]`; default
//! both, N = 2000 tasks, 100 MB). About 2 minutes.
//!
//! * overhead: tasks per second of `true`, by wall time of the whole command, for
//!   `mesh run --local -w 2`, GNU parallel `-j2`, `xargs -P2`, and `mesh run` submitted on
//!   a 2-host namespace mesh of one worker each (per core: the rate over 2);
//! * send: MB/s of a `--send` of a file between two namespace hosts, against raw TCP on
//!   the same link, on a link shaped to a Pi's 100 Mbit/s and unshaped.

#[path = "../tests/it/common/lan.rs"]
mod lan;

use lan::{Lan, eventually};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn wall(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed().as_secs_f64()
}

/// The best of three.
fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn overhead(n: u64) {
    let inputs: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let home = std::env::temp_dir().join(format!("mesh-bench-run-{}", std::process::id()));
    let mesh_local = best(|| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mesh"));
        c.args(["run", "--local", "-w", "2", "--", "true", ":::"]).args(&inputs).env("MESH_HOME", &home);
        wall(c)
    });
    let parallel = best(|| {
        let mut c = Command::new("parallel");
        c.args(["--will-cite", "-j2", "true", ":::"]).args(&inputs);
        wall(c)
    });
    let xargs = best(|| {
        let mut c = Command::new("sh");
        c.args(["-c", &format!("seq {n} | xargs -P2 -n1 true")]);
        wall(c)
    });
    let mut lan = Lan::new(2);
    for h in ["h1", "h2"] {
        lan.join(h, &["--allow-run", "--workers", "1", "--key", "bench"]);
    }
    assert!(eventually(LIMIT, || lan.members("h1") == ["h2"]));
    assert!(eventually(LIMIT, || lan.peers("h1").iter().filter(|r| r["facts"]["allow_run"] == true).count() == 2));
    let mut args = vec!["run", "--key", "bench", "--", "true", ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let mesh_lan = best(|| {
        let t = Instant::now();
        let out = lan.mesh("h1", &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        t.elapsed().as_secs_f64()
    });
    let rate = |t: f64| n as f64 / t;
    println!("{n} tasks of `true`, 2 cores, best of 3 (wall time of the whole command):");
    println!("  mesh run --local -w 2   {:>8.0} tasks/s", rate(mesh_local));
    println!("  GNU parallel -j2        {:>8.0} tasks/s   (mesh: {:.1}x)", rate(parallel), parallel / mesh_local);
    println!(
        "  xargs -P2               {:>8.0} tasks/s   (mesh takes {:.2}x its time)",
        rate(xargs),
        mesh_local / xargs
    );
    println!(
        "  2-host mesh, 1 worker each: {:>8.0} tasks/s, {:.0} per core ({:.0}% of the local rate per core)",
        rate(mesh_lan),
        rate(mesh_lan) / 2.0,
        100.0 * mesh_local / mesh_lan
    );
    let _ = std::fs::remove_dir_all(home);
}

/// Seconds to move `path` from h1 to h2 over raw TCP (python3 on both ends).
fn raw_tcp(lan: &mut Lan, path: &std::path::Path) -> f64 {
    let recv = "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                s.bind(('198.18.0.12',9999));s.listen(1);c,_=s.accept()\n\
                while c.recv(1<<20): pass\n";
    let h2 = lan.host("h2").ns.clone();
    let mut server = Command::new("ip").args(["netns", "exec", &h2, "python3", "-c", recv]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let send = format!(
        "import socket,time\nc=socket.create_connection(('198.18.0.12',9999))\nf=open('{}','rb')\n\
         t=time.time()\nwhile True:\n  b=f.read(1<<20)\n  if not b: break\n  c.sendall(b)\nc.shutdown(1)\nc.recv(1)\nprint(time.time()-t)\n",
        path.display()
    );
    let h1 = lan.host("h1").ns.clone();
    let out = Command::new("ip").args(["netns", "exec", &h1, "python3", "-c", &send]).output().unwrap();
    let _ = server.wait();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Seconds of a `mesh run` that sends `path` to h2 (its only runner), less the same job
/// with a tiny file: the transfer.
fn mesh_send(lan: &mut Lan, dir: &std::path::Path, name: &str) -> f64 {
    let job = |lan: &mut Lan, file: &str| {
        let args = [
            "run",
            "--json",
            "--key",
            "bench",
            "--require",
            "label=far",
            "--send",
            file,
            "--",
            "sh",
            "-c",
            "wc -c < {}",
            ":::",
            file,
        ];
        let out = lan.mesh_in("h1", dir, &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["elapsed_s"].as_f64().unwrap()
    };
    let small = job(lan, "small.bin");
    let t = job(lan, name);
    t - small
}

fn send(mb: u64) {
    for shaped in [true, false] {
        let mut lan = Lan::new(2);
        let dir = lan.dir().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.bin");
        let data: Vec<u8> = (0..mb << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        std::fs::write(dir.join("small.bin"), b"x").unwrap();
        if shaped {
            lan.shape("h1", "100mbit");
        }
        lan.join("h1", &["--key", "bench"]);
        lan.join("h2", &["--key", "bench", "--allow-run", "--label", "far"]);
        assert!(eventually(LIMIT, || lan.members("h1") == ["h2"]));
        assert!(eventually(LIMIT, || lan.peers("h1").iter().any(|r| r["facts"]["allow_run"] == true)));
        let tcp = raw_tcp(&mut lan, &big);
        // A different file each trial, so h2 has to fetch it.
        let mut mesh = f64::INFINITY;
        for trial in 0..3u8 {
            let name = format!("big{trial}.bin");
            let mut d = data.clone();
            d[0] = trial;
            std::fs::write(dir.join(&name), d).unwrap();
            mesh = mesh.min(mesh_send(&mut lan, &dir, &name));
        }
        let link = if shaped { "shaped to 100 Mbit/s" } else { "unshaped veth" };
        let (tcp_rate, mesh_rate) = (mb as f64 / tcp, mb as f64 / mesh);
        println!(
            "{mb} MiB h1 -> h2, {link}: raw TCP {tcp_rate:.1} MiB/s, mesh run --send {mesh_rate:.1} MiB/s ({:.0}% of raw TCP)",
            100.0 * mesh_rate / tcp_rate
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: Option<u64> = args.iter().find_map(|a| a.parse().ok());
    let all = !args.iter().any(|a| a == "overhead" || a == "send");
    if all || args.iter().any(|a| a == "overhead") {
        overhead(n.unwrap_or(2000));
    }
    if all || args.iter().any(|a| a == "send") {
        send(n.filter(|_| !all).unwrap_or(100));
    }
}
