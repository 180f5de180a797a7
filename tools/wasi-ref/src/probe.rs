//! The call-by-call probe: one WebAssembly module that makes one WASI preview 1 call per
//! task. Its input line is the case number; it makes that case's call, writes what the call
//! wrote to its out-buffer (as hex, where that is deterministic), and exits with the call's
//! errno as its exit code. The exit code carries the answer so that a case that closes
//! stdout still reports it.

use std::fmt::Write as _;

/// Scratch memory the calls point into.
const IOV_WRITE: i32 = 512; // one iovec: 16 bytes at 1024
const IOV_READ: i32 = 520; // one iovec: 16 bytes at OUT + 16
const DATA: i32 = 1024; // "0123456789abcdef"
const PATH: i32 = 2048; // "probe", 5 bytes
const OUT: i32 = 4096; // 64 bytes, dumped after the call
const FDS: [i32; 5] = [0, 1, 2, 3, -1];
const CLOCKS: [i32; 6] = [0, 1, 2, 3, 4, -1];

/// What a case's call returns, and whether its out-buffer is deterministic.
#[derive(Clone, Copy)]
enum Shape {
    /// Returns an errno; dump the out-buffer.
    Dump,
    /// Returns an errno; the out-buffer holds a time or random bytes.
    NoDump,
    /// Does not return (`proc_exit`).
    Exits,
}

/// Each WASI preview 1 function, with its arguments as WebAssembly constants. `FD` stands
/// for the descriptor under test, `ID` for a clock id.
const CALLS: &[(&str, &str, Shape)] = &[
    ("args_get", "(i32.const 4096) (i32.const 4128)", Shape::Dump),
    ("args_sizes_get", "(i32.const 4096) (i32.const 4104)", Shape::Dump),
    ("environ_get", "(i32.const 4096) (i32.const 4128)", Shape::Dump),
    ("environ_sizes_get", "(i32.const 4096) (i32.const 4104)", Shape::Dump),
    ("clock_res_get", "ID (i32.const 4096)", Shape::NoDump),
    ("clock_time_get", "ID (i64.const 0) (i32.const 4096)", Shape::NoDump),
    ("fd_advise", "FD (i64.const 0) (i64.const 0) (i32.const 0)", Shape::Dump),
    ("fd_allocate", "FD (i64.const 0) (i64.const 16)", Shape::Dump),
    ("fd_close", "FD", Shape::Dump),
    ("fd_datasync", "FD", Shape::Dump),
    ("fd_fdstat_get", "FD (i32.const 4096)", Shape::Dump),
    ("fd_fdstat_set_flags", "FD (i32.const 0)", Shape::Dump),
    ("fd_fdstat_set_rights", "FD (i64.const 0) (i64.const 0)", Shape::Dump),
    ("fd_filestat_get", "FD (i32.const 4096)", Shape::Dump),
    ("fd_filestat_set_size", "FD (i64.const 0)", Shape::Dump),
    ("fd_filestat_set_times", "FD (i64.const 0) (i64.const 0) (i32.const 0)", Shape::Dump),
    ("fd_pread", "FD (i32.const 520) (i32.const 1) (i64.const 0) (i32.const 4096)", Shape::Dump),
    ("fd_prestat_get", "FD (i32.const 4096)", Shape::Dump),
    ("fd_prestat_dir_name", "FD (i32.const 4112) (i32.const 16)", Shape::Dump),
    ("fd_pwrite", "FD (i32.const 512) (i32.const 1) (i64.const 0) (i32.const 4096)", Shape::Dump),
    ("fd_read", "FD (i32.const 520) (i32.const 1) (i32.const 4096)", Shape::Dump),
    ("fd_readdir", "FD (i32.const 4112) (i32.const 32) (i64.const 0) (i32.const 4096)", Shape::Dump),
    ("fd_renumber", "FD (i32.const 9)", Shape::Dump),
    ("fd_seek", "FD (i64.const 0) (i32.const 0) (i32.const 4096)", Shape::Dump),
    ("fd_sync", "FD", Shape::Dump),
    ("fd_tell", "FD (i32.const 4096)", Shape::Dump),
    ("fd_write", "FD (i32.const 512) (i32.const 1) (i32.const 4096)", Shape::Dump),
    ("path_create_directory", "FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    ("path_filestat_get", "FD (i32.const 0) (i32.const 2048) (i32.const 5) (i32.const 4096)", Shape::Dump),
    (
        "path_filestat_set_times",
        "FD (i32.const 0) (i32.const 2048) (i32.const 5) (i64.const 0) (i64.const 0) (i32.const 0)",
        Shape::Dump,
    ),
    ("path_link", "FD (i32.const 0) (i32.const 2048) (i32.const 5) FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    (
        "path_open",
        "FD (i32.const 0) (i32.const 2048) (i32.const 5) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 4096)",
        Shape::Dump,
    ),
    (
        "path_readlink",
        "FD (i32.const 2048) (i32.const 5) (i32.const 4112) (i32.const 32) (i32.const 4096)",
        Shape::Dump,
    ),
    ("path_remove_directory", "FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    ("path_rename", "FD (i32.const 2048) (i32.const 5) FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    ("path_symlink", "(i32.const 2048) (i32.const 5) FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    ("path_unlink_file", "FD (i32.const 2048) (i32.const 5)", Shape::Dump),
    ("poll_oneoff", "(i32.const 4160) (i32.const 4096) (i32.const 0) (i32.const 4120)", Shape::Dump),
    ("proc_exit", "(i32.const 7)", Shape::Exits),
    ("proc_raise", "(i32.const 6)", Shape::Dump),
    ("random_get", "(i32.const 4096) (i32.const 16)", Shape::NoDump),
    ("sched_yield", "", Shape::Dump),
    ("sock_accept", "FD (i32.const 0) (i32.const 4096)", Shape::Dump),
    ("sock_recv", "FD (i32.const 520) (i32.const 1) (i32.const 0) (i32.const 4096) (i32.const 4100)", Shape::Dump),
    ("sock_send", "FD (i32.const 512) (i32.const 1) (i32.const 0) (i32.const 4096)", Shape::Dump),
    ("sock_shutdown", "FD (i32.const 3)", Shape::Dump),
];

/// One case: a call with its descriptor or clock filled in.
pub struct Case {
    pub label: String,
    args: String,
    name: &'static str,
    shape: Shape,
}

/// Every case, in the order of their numbers.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for &(name, args, shape) in CALLS {
        let values: &[i32] = if args.contains("FD") {
            &FDS
        } else if args.contains("ID") {
            &CLOCKS
        } else {
            &[0]
        };
        for &v in values {
            let filled = args.replace("FD", &format!("(i32.const {v})")).replace("ID", &format!("(i32.const {v})"));
            let label =
                if args.contains("FD") || args.contains("ID") { format!("{name}({v})") } else { name.to_string() };
            out.push(Case { label, args: filled, name, shape });
        }
    }
    out
}

/// The probe module's text.
pub fn module() -> String {
    let mut wat = String::from(
        ";; The WASI call-by-call probe, written by `cargo run --manifest-path tools/wasi-ref/Cargo.toml -- probe`.\n\
         ;; Input line: a case number (see wasi_probe.expect). Exit code: the call's errno.\n(module\n",
    );
    for &(name, args, shape) in CALLS {
        let params: Vec<&str> = param_types(args);
        let result = if matches!(shape, Shape::Exits) { "" } else { " (result i32)" };
        let _ = writeln!(
            wat,
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param {}){result}))",
            params.join(" ")
        );
    }
    let _ = write!(
        wat,
        r#"  (memory (export "memory") 1)
  (data (i32.const {IOV_WRITE}) "\00\04\00\00\10\00\00\00")
  (data (i32.const {IOV_READ}) "\10\10\00\00\10\00\00\00")
  (data (i32.const {DATA}) "0123456789abcdef")
  (data (i32.const {PATH}) "probe")
  (data (i32.const 8000) "0123456789abcdef")
  ;; Writes the 64 bytes at {OUT} to stdout as hex and a newline.
  (func $dump (local $i i32) (local $b i32)
    (loop $l
      (local.set $b (i32.load8_u (i32.add (i32.const {OUT}) (local.get $i))))
      (i32.store8 (i32.add (i32.const 8200) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 8000) (i32.shr_u (local.get $b) (i32.const 4)))))
      (i32.store8 (i32.add (i32.const 8201) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 8000) (i32.and (local.get $b) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 64))))
    (i32.store8 (i32.const 8328) (i32.const 10))
    (i32.store (i32.const 8400) (i32.const 8200))
    (i32.store (i32.const 8404) (i32.const 129))
    (drop (call $fd_write (i32.const 1) (i32.const 8400) (i32.const 1) (i32.const 8408))))
  (func (export "_start") (local $k i32) (local $i i32) (local $c i32) (local $e i32)
    ;; Read the line and parse its number.
    (i32.store (i32.const 8400) (i32.const 8500))
    (i32.store (i32.const 8404) (i32.const 32))
    (drop (call $fd_read (i32.const 0) (i32.const 8400) (i32.const 1) (i32.const 8408)))
    (block $done
      (loop $digits
        (local.set $c (i32.load8_u (i32.add (i32.const 8500) (local.get $i))))
        (br_if $done (i32.gt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)))
        (local.set $k (i32.add (i32.mul (local.get $k) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $digits (i32.lt_u (local.get $i) (i32.const 32)))))
    (local.set $e (i32.const 255))
"#
    );
    for (n, case) in cases().iter().enumerate() {
        let call = format!("(call ${} {})", case.name, case.args);
        let body = match case.shape {
            Shape::Exits => call,
            Shape::Dump => format!("(local.set $e {call}) (call $dump)"),
            Shape::NoDump => format!("(local.set $e {call})"),
        };
        let _ = writeln!(
            wat,
            "    ;; case {n}: {}\n    (if (i32.eq (local.get $k) (i32.const {n})) (then {body}))",
            case.label
        );
    }
    wat.push_str("    (call $proc_exit (local.get $e))))\n");
    wat
}

/// The parameter types of a call, from its argument constants.
fn param_types(args: &str) -> Vec<&'static str> {
    let filled = args.replace("FD", "(i32.const 0)").replace("ID", "(i32.const 0)");
    filled
        .split('(')
        .filter_map(|piece| {
            if piece.starts_with("i32.const") {
                Some("i32")
            } else if piece.starts_with("i64.const") {
                Some("i64")
            } else {
                None
            }
        })
        .collect()
}
