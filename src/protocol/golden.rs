//! Golden wire vectors: the exact bytes of messages of every protocol. Serde derives the
//! encodings from type and variant names, so renaming a variant or a field silently
//! changes the wire; these tests make it loud. If one fails on purpose, the change is
//! incompatible: bump `PROTOCOL_VERSION` and the protocol ids (`/mesh/sched/N`,
//! `/mesh/blob/N`), note it in docs/PROTOCOL.md, and only then update the vector.

use super::blob::{BlobRequest, BlobResponse};
use super::encode;
use super::membership::Announce;
use super::sched::WireMessage;
use crate::core::{Grant, Message, Status, TaskRange, TaskReport};
use crate::id::{ContentId, JobId, NodeId};
use crate::job::{Algo, JobSpec, PrimesJob, Split, Target, TaskOutput, WasmJob};
use crate::protocol::Wire;
use std::sync::Arc;
use std::time::Duration;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `msg` encodes to exactly `want` (hex), and `want` decodes back to `msg`.
fn golden<T: Wire + PartialEq + std::fmt::Debug>(msg: &T, want: &str) {
    let got = hex(&encode(msg));
    assert_eq!(got, want, "the wire encoding of {msg:?} changed");
    let bytes: Vec<u8> = (0..want.len()).step_by(2).map(|i| u8::from_str_radix(&want[i..i + 2], 16).unwrap()).collect();
    assert_eq!(&T::decode_checked(&bytes).unwrap(), msg);
}

fn job() -> JobId {
    JobId { owner: NodeId(0x0102_0304_0506_0708), seq: 9 }
}

fn grant(req: u64, spec: JobSpec, range: TaskRange, pinned: bool) -> WireMessage {
    Message::Grant {
        req,
        work: Some(Grant { job: job(), spec: Arc::new(spec), ranges: vec![range], pinned }),
        hint: None,
    }
}

#[test]
fn sched_grant_of_a_primes_job() {
    let spec = JobSpec::Primes(
        PrimesJob::new(Target::Each { first: 10, last: 20 }, Algo::Trial, Split::Auto { workers: 1 }).unwrap(),
    );
    golden(
        &grant(3, spec, TaskRange::new(4, 8), false),
        "a1654772616e74a2637265710364776f726ba4636a6f62a2656f776e65721b010203040506070863736571096473706563a1665072696d6573a366746172676574a16445616368a26566697273740a646c6173741464616c676f65747269616c647370616e016672616e67657381a26573746172740463656e64086670696e6e6564f4",
    );
}

#[test]
fn sched_grant_of_a_wasm_job() {
    let spec = JobSpec::Wasm(WasmJob {
        module: ContentId::of(b"module"),
        input: ContentId::of(b"input"),
        tasks: 2,
        timeout_ms: 1000,
        memory_mb: 16,
        retries: 1,
        needs: Default::default(),
    });
    golden(
        &grant(1, spec, TaskRange::new(0, 2), true),
        "a1654772616e74a2637265710164776f726ba4636a6f62a2656f776e65721b010203040506070863736571096473706563a1645761736da7666d6f64756c6578406634323537386335356435633735353639353636653630316561353037326335613664373931653631376161653264313637346561323963633730666233376165696e707574784065333366623139333235636263373262353930356537383365306334373239303436386336313030393065333736646539323135653862356638626138336433657461736b73026a74696d656f75745f6d731903e8696d656d6f72795f6d6210677265747269657301656e65656473a2666e6174697665f46c726571756972656d656e7473806672616e67657381a26573746172740063656e64026670696e6e6564f5",
    );
}

#[test]
fn sched_results_steal_lease_and_end() {
    let reports = vec![
        TaskReport {
            task: 0,
            outcome: Ok(TaskOutput::Sum(17)),
            took: Duration::from_micros(1500),
            blame: Default::default(),
        },
        TaskReport {
            task: 1,
            outcome: Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(b"ok\n".to_vec()))),
            took: Duration::ZERO,
            blame: Default::default(),
        },
        TaskReport {
            task: 2,
            outcome: Err("timed out".into()),
            took: Duration::from_secs(1),
            blame: Default::default(),
        },
    ];
    golden::<WireMessage>(
        &Message::Results { job: job(), reports },
        "a167526573756c7473a2636a6f62a2656f776e65721b01020304050607086373657109677265706f72747383a3647461736b00676f7574636f6d65a1624f6ba16353756d1164746f6f6ba2647365637300656e616e6f731a0016e360a3647461736b01676f7574636f6d65a1624f6ba1654279746573436f6b0a64746f6f6ba2647365637300656e616e6f7300a3647461736b02676f7574636f6d65a1634572726974696d6564206f757464746f6f6ba2647365637301656e616e6f7300",
    );
    golden::<WireMessage>(&Message::Steal { req: 7 }, "a165537465616ca16372657107");
    golden::<WireMessage>(
        &Message::Lease { job: job(), ranges: vec![TaskRange::new(1, 3)] },
        "a1654c65617365a2636a6f62a2656f776e65721b010203040506070863736571096672616e67657381a26573746172740163656e6403",
    );
    golden::<WireMessage>(
        &Message::JobEnded { job: job() },
        "a1684a6f62456e646564a1636a6f62a2656f776e65721b01020304050607086373657109",
    );
    golden::<WireMessage>(
        &Message::Status(Status { workers: 4, busy: 1, queued: 12, tasks_done: 99, steals: 0 }),
        "a166537461747573a467776f726b65727304646275737901667175657565640c6a7461736b735f646f6e651863",
    );
}

#[test]
fn blob_request_and_chunk() {
    golden(
        &BlobRequest { id: ContentId::of(b"module"), offset: 262_144, len: 262_144 },
        "a3626964784066343235373863353564356337353536393536366536303165613530373263356136643739316536313761616532643136373465613239636337306662333761666f66667365741a00040000636c656e1a00040000",
    );
    golden(
        &BlobResponse::Chunk { total: 3, data: serde_bytes::ByteBuf::from(vec![1, 2, 3]) },
        "a1654368756e6ba265746f74616c03646461746143010203",
    );
    golden(&BlobResponse::Missing, "674d697373696e67");
}

#[test]
fn job_follow_cancel_and_answers() {
    use super::job::{Ask, Following, JobAnswer, JobName, JobRequest};
    // Events and reports are the node's API types (the control socket's); here stand-ins
    // fix the framing around them.
    type Answer = JobAnswer<JobSpec, String, u64>;
    let name = JobName { owner: 0x0102_0304, seq: 9 };
    golden(
        &JobRequest { job: name, user: "alice".into(), ask: Ask::Follow { from: 3, spec: true } },
        "a3636a6f62a2656f776e65721a010203046373657109647573657265616c6963656361736ba166466f6c6c6f77a26466726f6d036473706563f5",
    );
    golden(
        &JobRequest { job: name, user: "alice".into(), ask: Ask::Cancel },
        "a3636a6f62a2656f776e65721a010203046373657109647573657265616c6963656361736b6643616e63656c",
    );
    let f = Following {
        incarnation: 7,
        done: 1,
        total: 2,
        spec: None,
        events: vec!["no node".into()],
        next: 4,
        more: false,
        report: None,
    };
    golden(
        &Answer::Following(Box::new(f)),
        "a169466f6c6c6f77696e67a86b696e6361726e6174696f6e0764646f6e650165746f74616c026473706563f6666576656e747381676e6f206e6f6465646e65787404646d6f7265f4667265706f7274f6",
    );
    golden(&Answer::Cancelled, "6943616e63656c6c6564");
    golden(&Answer::Refused("no".into()), "a16752656675736564626e6f");
    golden(&Answer::Unknown, "67556e6b6e6f776e");
}

#[test]
fn membership_announce() {
    let a = Announce {
        protocol: 2,
        version: "0.1.0".into(),
        name: "pi-1".into(),
        status: Status { workers: 4, busy: 2, queued: 10, tasks_done: 99, steals: 0 },
        bye: false,
        facts: crate::core::Facts {
            arch: "aarch64".into(),
            os: "linux".into(),
            cores: 4,
            mem_mb: 1024,
            allow_run: true,
            labels: vec!["ffmpeg".into()],
            python: None,
        },
        health: None,
        jobs: Vec::new(),
        addrs: Vec::new(),
    };
    let want = "a66870726f746f636f6c026776657273696f6e65302e312e30646e616d656470692d3166737461747573a467776f726b65727304646275737902667175657565640a6a7461736b735f646f6e65186363627965f4656661637473a664617263686761617263683634626f73656c696e757865636f72657304666d656d5f6d6219040069616c6c6f775f72756ef5666c6162656c73816666666d706567";
    assert_eq!(hex(&a.encode()), want, "the announce's encoding changed");
    let bytes: Vec<u8> = (0..want.len()).step_by(2).map(|i| u8::from_str_radix(&want[i..i + 2], 16).unwrap()).collect();
    assert_eq!(Announce::decode(&bytes).unwrap(), a);
    // A node that runs Python says which: one more field, absent when it has none.
    let py = Announce { facts: crate::core::Facts { python: Some("3.11".parse().unwrap()), ..a.facts.clone() }, ..a };
    let want = "a66870726f746f636f6c026776657273696f6e65302e312e30646e616d656470692d3166737461747573a467776f726b65727304646275737902667175657565640a6a7461736b735f646f6e65186363627965f4656661637473a764617263686761617263683634626f73656c696e757865636f72657304666d656d5f6d6219040069616c6c6f775f72756ef5666c6162656c73816666666d70656766707974686f6ea2656d616a6f7203656d696e6f720b";
    assert_eq!(hex(&py.encode()), want, "the announce's encoding changed");
    let bytes: Vec<u8> = (0..want.len()).step_by(2).map(|i| u8::from_str_radix(&want[i..i + 2], 16).unwrap()).collect();
    assert_eq!(Announce::decode(&bytes).unwrap(), py);
    // A Raspberry Pi at 71.2 °C, throttled, says how it is doing; other nodes say less.
    let health = super::membership::Health {
        temp_mc: Some(71_234),
        throttled: Some(0x50005),
        load_centi: Some(397),
        mem_avail_mb: Some(599),
    };
    let pi = Announce { health: Some(health), ..py };
    let want = "a76870726f746f636f6c026776657273696f6e65302e312e30646e616d656470692d3166737461747573a467776f726b65727304646275737902667175657565640a6a7461736b735f646f6e65186363627965f4656661637473a764617263686761617263683634626f73656c696e757865636f72657304666d656d5f6d6219040069616c6c6f775f72756ef5666c6162656c73816666666d70656766707974686f6ea2656d616a6f7203656d696e6f720b666865616c7468a46774656d705f6d631a00011642697468726f74746c65641a000500056a6c6f61645f63656e746919018d6c6d656d5f617661696c5f6d62190257";
    assert_eq!(hex(&pi.encode()), want, "the announce's encoding changed");
    let bytes: Vec<u8> = (0..want.len()).step_by(2).map(|i| u8::from_str_radix(&want[i..i + 2], 16).unwrap()).collect();
    assert_eq!(Announce::decode(&bytes).unwrap(), pi);
    // An owner tells of its jobs, for dashboards: one more field, absent when it has none.
    use super::membership::{JobSummary, Share};
    let share = Share { node: crate::id::NodeId(0x0102_0304_0506_0708), tasks: 5, task_ms: 2900 };
    let kind = crate::job::JobKind::Primes;
    let job = JobSummary {
        seq: 3,
        kind,
        done: 5,
        failed: 0,
        total: 8,
        elapsed_ms: 1500,
        finished: false,
        shares: vec![share],
        submitter: None,
    };
    let busy = Announce { jobs: vec![job], ..pi };
    let want = "a86870726f746f636f6c026776657273696f6e65302e312e30646e616d656470692d3166737461747573a467776f726b65727304646275737902667175657565640a6a7461736b735f646f6e65186363627965f4656661637473a764617263686761617263683634626f73656c696e757865636f72657304666d656d5f6d6219040069616c6c6f775f72756ef5666c6162656c73816666666d70656766707974686f6ea2656d616a6f7203656d696e6f720b666865616c7468a46774656d705f6d631a00011642697468726f74746c65641a000500056a6c6f61645f63656e746919018d6c6d656d5f617661696c5f6d62190257646a6f627381a86373657103646b696e64667072696d657364646f6e6505666661696c65640065746f74616c086a656c61707365645f6d731905dc6866696e6973686564f46673686172657381a3646e6f64651b0102030405060708657461736b7305677461736b5f6d73190b54";
    assert_eq!(hex(&busy.encode()), want, "the announce's encoding changed");
    let bytes: Vec<u8> = (0..want.len()).step_by(2).map(|i| u8::from_str_radix(&want[i..i + 2], 16).unwrap()).collect();
    assert_eq!(Announce::decode(&bytes).unwrap(), busy);
    // Where it listens, for nodes on another LAN (issue 16): one more key at the end.
    let far = Announce { addrs: vec!["/ip4/198.18.1.11/tcp/7946".into()], ..busy };
    let tail = "656164647273817819 2f6970342f3139382e31382e312e31312f7463702f37393436".replace(' ', "");
    let want = format!("a9{}{tail}", &want[2..]);
    assert_eq!(hex(&far.encode()), want, "the announce's encoding changed");
}

#[test]
fn sched_empty_grant_ack_and_a_single_n() {
    // Without a hint, an empty grant is encoded as before hints existed.
    golden::<WireMessage>(&Message::Grant { req: 2, work: None, hint: None }, "a1654772616e74a2637265710264776f726bf6");
    // With one, the thief learns whom to ask next (issue 16).
    golden::<WireMessage>(
        &Message::Grant { req: 2, work: None, hint: Some(NodeId(5)) },
        "a1654772616e74a3637265710264776f726bf66468696e7405",
    );
    golden(&super::sched::Ack, "f6");
    let spec = JobSpec::Primes(PrimesJob::new(Target::Below(1000), Algo::Sieve, Split::Tasks(4)).unwrap());
    golden(
        &grant(5, spec, TaskRange::new(0, 4), false),
        "a1654772616e74a2637265710564776f726ba4636a6f62a2656f776e65721b010203040506070863736571096473706563a1665072696d6573a366746172676574a16542656c6f771903e864616c676f657369657665647370616e18fa6672616e67657381a26573746172740063656e64046670696e6e6564f4",
    );
}

#[test]
fn sched_a_run_job_and_its_result() {
    use crate::core::{HaltLimit, HaltOn, Needs, Requirement};
    use crate::job::run::{Captured, Ended, Returned, RunJob, RunOutput, RunProblem, RunTimeout};
    let spec = JobSpec::Run(Box::new(RunJob {
        command: vec!["flac".into(), "-s".into(), "{}".into()],
        tasks: 2,
        inputs: ContentId::of(b"tasks"),
        files: Some(ContentId::of(b"files")),
        returns: vec!["{.}.flac".into()],
        timeout: Some(RunTimeout::PercentOfMedian { percent: 300 }),
        memory_mb: Some(512),
        retries: 2,
        halt: Some(crate::core::Halt { on: HaltOn::Failures, limit: HaltLimit::Count(1) }),
        needs: Needs::native(vec![Requirement::Label("ffmpeg".into()), Requirement::MemAtLeast(2048)]),
    }));
    golden(
        &grant(4, spec, TaskRange::new(0, 2), false),
        "a1654772616e74a2637265710464776f726ba4636a6f62a2656f776e65721b010203040506070863736571096473706563a16352756eaa67636f6d6d616e648364666c6163622d73627b7d657461736b730266696e707574737840383335366438383263613637383839303062313965646264306664346434323438346338616663326161633334396231363662353833376631313237326231396566696c65737840646363653835316234326533396634393262326237633435336365313033326334376664306463633130393664646235613930383463643463633931626464376772657475726e7381687b2e7d2e666c61636774696d656f7574a16f50657263656e744f664d656469616ea16770657263656e7419012c696d656d6f72795f6d621902006772657472696573026468616c74a2626f6e684661696c75726573656c696d6974a165436f756e7401656e65656473a2666e6174697665f56c726571756972656d656e747382a1654c6162656c6666666d706567a16a4d656d41744c656173741908006672616e67657381a26573746172740063656e64026670696e6e6564f4",
    );
    let out = RunOutput {
        ended: Ended::Exit(0),
        problem: Some(RunProblem::MissingReturn("a.flac".into())),
        stdout: Captured::Inline(serde_bytes::ByteBuf::from(b"ok\n".to_vec())),
        stderr: Captured::Blob { id: ContentId::of(b"err"), len: 70_000 },
        returned: vec![Returned { path: "b.flac".into(), blob: ContentId::of(b"b"), len: 3 }],
        started_ms: 1_764_000_000_000,
    };
    let reports = vec![TaskReport {
        task: 1,
        outcome: Ok(TaskOutput::Run(Box::new(out))),
        took: Duration::from_millis(20),
        blame: Default::default(),
    }];
    golden::<WireMessage>(
        &Message::Results { job: job(), reports },
        "a167526573756c7473a2636a6f62a2656f776e65721b01020304050607086373657109677265706f72747381a3647461736b01676f7574636f6d65a1624f6ba16352756ea665656e646564a16445786974006770726f626c656da16d4d697373696e6752657475726e66612e666c6163667374646f7574a166496e6c696e65436f6b0a66737464657272a164426c6f62a2626964784031353130343537313736656430626331393766356562373362613931373563383939613961626139363533356636633433326232623065626262353237663334636c656e1a000111706872657475726e656481a3647061746866622e666c616364626c6f62784031306535636633643363386134663966333436386338636335386565613834383932613232666461646263316163623232343130313930303434633164353533636c656e036a737461727465645f6d731b0000019ab697e80064746f6f6ba2647365637300656e616e6f731a01312d00",
    );
}

#[test]
fn sched_a_python_job_and_its_result() {
    use crate::core::{Needs, PyVersion, Requirement};
    use crate::job::run::Captured;
    use crate::job::{PyOutput, PythonJob};
    let spec = JobSpec::Python(Box::new(PythonJob {
        tasks: 3,
        inputs: ContentId::of(b"tasks"),
        code: ContentId::of(b"code"),
        timeout_ms: Some(60_000),
        retries: 2,
        needs: Needs::python(vec![Requirement::PythonAtLeast(PyVersion { major: 3, minor: 10 })]),
    }));
    golden(
        &grant(4, spec, TaskRange::new(0, 3), false),
        "a1654772616e74a2637265710464776f726ba4636a6f62a2656f776e65721b010203040506070863736571096473706563a166507974686f6ea6657461736b730366696e7075747378403833353664383832636136373838393030623139656462643066643464343234383463386166633261616333343962313636623538333766313132373262313964636f64657840626431323462663339306232393738663666613338613338393034623864376437373366633531386235326562656661363436326266326437623666356133666a74696d656f75745f6d7319ea60677265747269657302656e65656473a3666e6174697665f566707974686f6ef56c726571756972656d656e747381a16d507974686f6e41744c65617374a2656d616a6f7203656d696e6f720a6672616e67657381a26573746172740063656e64036670696e6e6564f4",
    );
    let out = PyOutput {
        raised: false,
        value: Captured::Inline(serde_bytes::ByteBuf::from(b"\x80\x04K*.".to_vec())),
        output: "hello\n".into(),
    };
    let reports = vec![TaskReport {
        task: 1,
        outcome: Ok(TaskOutput::Python(Box::new(out))),
        took: Duration::from_millis(20),
        blame: Default::default(),
    }];
    golden::<WireMessage>(
        &Message::Results { job: job(), reports },
        "a167526573756c7473a2636a6f62a2656f776e65721b01020304050607086373657109677265706f72747381a3647461736b01676f7574636f6d65a1624f6ba166507974686f6ea366726169736564f46576616c7565a166496e6c696e654580044b2a2e666f75747075746668656c6c6f0a64746f6f6ba2647365637300656e616e6f731a01312d00",
    );
}
