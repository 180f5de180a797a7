//! Entry points for the fuzzers: one per decoder that takes bytes from outside the node.
//! The cargo-fuzz targets in `fuzz/` call these with libFuzzer's input (`bash fuzz/run.sh`,
//! on nightly), and `cargo test` replays every saved input on stable: the seed corpus in
//! `fuzz/corpus/<target>/` and each crash the fuzzers found, kept in
//! `fuzz/regressions/<target>/`.
//!
//! Each entry point must not panic on any input, and what it accepts must come out the
//! same after encoding it again and decoding that (a round trip). Allocation is bounded by
//! the decoder's stated input bound; `fuzz/run.sh` runs libFuzzer with `-malloc_limit_mb`
//! and `-rss_limit_mb` so that a decoder that allocates past it is reported as a crash.
//!
//! Compiled for the fuzzers (`--features fuzzing`) and for the crate's own tests only;
//! the shipped binary has none of it.

use crate::job::{InputLines, parse_target};
use crate::node::control::Request;
use crate::node::net::discovery::Advert;
use crate::protocol::Wire;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use crate::protocol::membership::Announce;
use crate::protocol::sched::WireMessage;

/// A fuzz target: it takes any bytes, and panics only on a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus directories
/// call them.
pub const TARGETS: [(&str, Target); 8] = [
    ("sched_message", sched_message),
    ("blob_message", blob_message),
    ("announce", announce),
    ("control_request", control_request),
    ("discovery_record", discovery_record),
    ("primes_target", primes_target),
    ("wasm_input", wasm_input),
    ("wasm_module", wasm_module),
];

/// A message of `/mesh/sched/4`, as a peer sends it.
pub fn sched_message(data: &[u8]) {
    round_trip::<WireMessage>(data);
}

/// A request or a response of `/mesh/blob/4`: the first byte picks which.
pub fn blob_message(data: &[u8]) {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => round_trip::<BlobRequest>(rest),
        Some((_, rest)) => round_trip::<BlobResponse>(rest),
        None => {}
    }
}

fn round_trip<M: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(m) = M::decode_checked(data) {
        let again = M::decode_checked(&crate::protocol::encode(&m));
        assert_eq!(again.as_ref().ok(), Some(&m), "a message that passed does not round-trip: {again:?}");
    }
}

/// A membership announce, as gossipsub delivers it.
pub fn announce(data: &[u8]) {
    if let Ok(a) = Announce::decode(data) {
        let again = Announce::decode(&a.encode()).expect("an accepted announce decodes again");
        // An accepted announce fits in its bound, so re-encoding leaves out no job.
        assert_eq!(again, a);
    }
}

/// One request line of the control socket, as the node reads it, and the job check a
/// submit goes through.
pub fn control_request(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(req) = serde_json::from_str::<Request>(line) else { return };
    if let Request::Submit { job, .. } = &req {
        let _ = job.validate();
    }
    let again: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
    assert_eq!(again, req);
}

/// A peer's mDNS TXT record: `key=value` lines, with the SRV port in the first two bytes.
pub fn discovery_record(data: &[u8]) {
    let Some((port, text)) = data.split_first_chunk::<2>() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let props: Vec<(&str, &str)> = text.lines().take(16).filter_map(|l| l.split_once('=')).collect();
    let port = u16::from_be_bytes(*port);
    let lookup = |k: &str| props.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Ok(advert) = Advert::parse(lookup, port) else { return };
    let txt = advert.txt();
    let again = Advert::parse(|k| txt.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str()), port);
    assert_eq!(again, Ok(advert));
}

/// A `mesh submit primes` target, `N` or `A..B`.
pub fn primes_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = parse_target(text) {
        let written = match t {
            crate::job::Target::Below(n) => n.to_string(),
            crate::job::Target::Each { first, last } => format!("{first}..{last}"),
        };
        assert_eq!(parse_target(&written), Ok(t), "{text:?} as {written:?}");
    }
}

/// A WebAssembly job's input, split into one line per task.
pub fn wasm_input(data: &[u8]) {
    let Ok(lines) = InputLines::parse(data.to_vec()) else { return };
    let all: Vec<&[u8]> = (0..lines.len()).filter_map(|i| lines.get(i)).collect();
    assert_eq!(all.len() as u64, lines.len(), "every line is there");
    // Each line written back with a CRLF ending, of which parsing drops exactly the one:
    // the same lines, even one that ends in a `\r` of its own.
    let joined: Vec<u8> = all.iter().flat_map(|l| l.iter().copied().chain(*b"\r\n")).collect();
    let again = InputLines::parse(joined).expect("the same lines parse again");
    let same: Vec<&[u8]> = (0..again.len()).filter_map(|i| again.get(i)).collect();
    assert_eq!(same, all);
}

/// A WebAssembly module from anyone, run as a task through the real runtime under small
/// limits (a 200 ms timeout, 16 MiB): a module the runtime accepts ends with a result or
/// with a failure that says why, and never panics or brings the node down. The
/// `wasm_smith` fuzz target feeds it modules that wasm-smith generates (calling WASI with
/// whatever arguments they make up); its saved inputs are whole modules.
pub fn wasm_module(module: &[u8]) {
    use crate::exec::wasm::{WasmRuntime, WasmTaskError};
    use crate::store::BlobStore;
    use std::sync::{Arc, Mutex};
    /// A fresh runtime (and store) every so many modules, so a long campaign does not
    /// fill the disk with their blobs and compiled code.
    const RUNS_PER_HOME: u32 = 500;
    type Home = (u32, std::path::PathBuf, Arc<BlobStore>, Arc<WasmRuntime>);
    static RUNTIME: Mutex<Option<Home>> = Mutex::new(None);
    let (store, rt) = {
        let mut slot = RUNTIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_none_or(|(runs, ..)| *runs >= RUNS_PER_HOME) {
            if let Some((_, home, ..)) = slot.take() {
                let _ = std::fs::remove_dir_all(home);
            }
            let home = std::env::temp_dir().join(format!("mesh-fuzz-wasm-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&home);
            let store = Arc::new(BlobStore::new(&home));
            let rt = WasmRuntime::new(&home, store.clone(), None).expect("the engine starts");
            *slot = Some((0, home, store, Arc::new(rt)));
        }
        let (runs, _, store, rt) = slot.as_mut().expect("just made");
        *runs += 1;
        (store.clone(), rt.clone())
    };
    let Ok(id) = rt.check(module) else { return };
    let input = store.put(b"7 seven").expect("the input is stored");
    let job = crate::job::WasmJob {
        module: id,
        input,
        tasks: 1,
        timeout_ms: 200,
        memory_mb: 16,
        retries: 0,
        needs: Default::default(),
    };
    match rt.run(&job, 0, crate::id::NodeId(0)) {
        Ok(_) | Err(WasmTaskError::Run { .. }) => {}
        Err(e) => panic!("a module that passed its check could not run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every saved input of every target: its seed corpus and the crashes found.
    #[test]
    fn the_saved_fuzz_inputs_replay_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let mut seeds = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| target(&data));
                    assert!(outcome.is_ok(), "{name} panics on {}", path.display());
                    seeds += 1;
                }
            }
            assert!(seeds > 0, "fuzz/corpus/{name} has no inputs");
            replayed += seeds;
        }
        eprintln!("replayed {replayed} saved fuzz inputs");
    }

    /// Writes the seed corpus: every golden vector (`protocol::golden`) under the decoder
    /// that takes it, and hand-picked lines for the text decoders. Run once, by hand:
    /// `cargo test --lib write_seed_corpus -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus; run by hand"]
    fn write_seed_corpus() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let golden = include_str!("protocol/golden.rs");
        let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
        for hex in
            golden.split('"').filter(|t| t.len() >= 2 && t.len() % 2 == 0 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            if WireMessage::decode_checked(&bytes).is_ok() {
                seeds.push(("sched_message", bytes.clone()));
            }
            if BlobRequest::decode_checked(&bytes).is_ok() {
                seeds.push(("blob_message", [&[0u8][..], &bytes].concat()));
            }
            if BlobResponse::decode_checked(&bytes).is_ok() {
                seeds.push(("blob_message", [&[1u8][..], &bytes].concat()));
            }
            if Announce::decode(&bytes).is_ok() {
                seeds.push(("announce", bytes));
            }
        }
        let id = libp2p::PeerId::random().to_base58();
        let lines = [
            r#"{"cmd":"peers"}"#.to_string(),
            r#"{"cmd":"put","path":"/tmp/x"}"#.into(),
            format!(r#"{{"cmd":"upload","id":"{}","len":3}}"#, crate::id::ContentId::of(b"abc")),
            r#"{"cmd":"submit","job":{"Primes":{"target":{"Below":1000},"algo":"sieve","span":250}}}"#.into(),
        ];
        seeds.extend(lines.into_iter().map(|l| ("control_request", l.into_bytes())));
        for txt in [format!("id={id}\npv=5\nkf=open\nname=pi\nv=0.1.0"), format!("id={id}\npv=x\nkf=1234abcd")] {
            seeds.push(("discovery_record", [&4877u16.to_be_bytes()[..], txt.as_bytes()].concat()));
        }
        for t in ["100999", "100000..100999", "1e12", "1_000_000", "5..3", "-4", "1e15", "..9"] {
            seeds.push(("primes_target", t.as_bytes().to_vec()));
        }
        for input in [&b"1\n2\n3\n"[..], b"a\r\nb", b"", b"\n\n"] {
            seeds.push(("wasm_input", input.to_vec()));
        }
        for (i, (target, bytes)) in seeds.iter().enumerate() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i:03}")), bytes).unwrap();
        }
        for (name, _) in TARGETS {
            assert!(seeds.iter().any(|(t, _)| *t == name), "no seed for {name}");
        }
    }

    #[test]
    fn each_target_accepts_a_good_input() {
        // So that a target that refused everything could not pass unnoticed.
        primes_target(b"100000..100999");
        wasm_input(b"a\r\nb\n\nc");
        let id = libp2p::PeerId::random().to_base58();
        let txt = format!("id={id}\npv=5\nkf=open\nname=pi\nv=0.1.0");
        let mut data = 4877u16.to_be_bytes().to_vec();
        data.extend_from_slice(txt.as_bytes());
        let props: Vec<(&str, &str)> = txt.lines().filter_map(|l| l.split_once('=')).collect();
        let lookup = |k: &str| props.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        assert!(Advert::parse(lookup, 4877).is_ok());
        discovery_record(&data);
        control_request(br#"{"cmd":"peers"}"#);
    }
}
