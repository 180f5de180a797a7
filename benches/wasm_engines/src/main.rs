//! wasmtime (Cranelift, compiled) against wasmi (an interpreter) on what a mesh task costs:
//! instantiating a module and calling it, and running the demo kernel.

use std::time::{Duration, Instant};

/// `_start` does nothing; `sum_below(n)` is the demo's trial-division prime sum.
const MODULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func $is_prime (param $x i64) (result i32)
    (local $d i64)
    (if (i64.lt_u (local.get $x) (i64.const 2)) (then (return (i32.const 0))))
    (local.set $d (i64.const 2))
    (block $prime
      (loop $try
        (br_if $prime (i64.gt_u (i64.mul (local.get $d) (local.get $d)) (local.get $x)))
        (if (i64.eqz (i64.rem_u (local.get $x) (local.get $d))) (then (return (i32.const 0))))
        (local.set $d (i64.add (local.get $d) (i64.const 1)))
        (br $try)))
    (i32.const 1))
  (func (export "sum_below") (param $n i64) (result i64)
    (local $x i64) (local $sum i64)
    (local.set $x (i64.const 2))
    (block $end
      (loop $each
        (br_if $end (i64.ge_u (local.get $x) (local.get $n)))
        (if (call $is_prime (local.get $x)) (then (local.set $sum (i64.add (local.get $sum) (local.get $x)))))
        (local.set $x (i64.add (local.get $x) (i64.const 1)))
        (br $each)))
    (local.get $sum)))"#;

const WANT: i64 = 454_396_537;

fn per_iter(n: u32, mut f: impl FnMut()) -> Duration {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

fn wasmtime_numbers(bytes: &[u8]) -> (Duration, Duration, Duration) {
    use wasmtime::{Engine, Linker, Module, Store};
    let compile = Instant::now();
    let engine = Engine::default();
    let module = Module::from_binary(&engine, bytes).unwrap();
    let compile = compile.elapsed();
    let pre = Linker::<()>::new(&engine).instantiate_pre(&module).unwrap();
    let task = per_iter(20_000, || {
        let mut store = Store::new(&engine, ());
        let i = pre.instantiate(&mut store).unwrap();
        i.get_typed_func::<(), ()>(&mut store, "_start").unwrap().call(&mut store, ()).unwrap();
    });
    let mut store = Store::new(&engine, ());
    let i = pre.instantiate(&mut store).unwrap();
    let f = i.get_typed_func::<i64, i64>(&mut store, "sum_below").unwrap();
    let demo = per_iter(20, || assert_eq!(f.call(&mut store, 100_000).unwrap(), WANT));
    (compile, task, demo)
}

fn wasmi_numbers(bytes: &[u8]) -> (Duration, Duration, Duration) {
    use wasmi::{Engine, Linker, Module, Store};
    let compile = Instant::now();
    let engine = Engine::default();
    let module = Module::new(&engine, bytes).unwrap();
    let compile = compile.elapsed();
    let linker = Linker::<()>::new(&engine);
    let task = per_iter(20_000, || {
        let mut store = Store::new(&engine, ());
        let i = linker.instantiate_and_start(&mut store, &module).unwrap();
        i.get_typed_func::<(), ()>(&store, "_start").unwrap().call(&mut store, ()).unwrap();
    });
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate_and_start(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i64, i64>(&store, "sum_below").unwrap();
    let demo = per_iter(5, || assert_eq!(f.call(&mut store, 100_000).unwrap(), WANT));
    (compile, task, demo)
}

fn main() {
    let bytes = wat::parse_str(MODULE).unwrap();
    println!("engine     compile (cold)   instantiate+call   demo task n=100000");
    for (name, (c, t, d)) in [("wasmtime", wasmtime_numbers(&bytes)), ("wasmi", wasmi_numbers(&bytes))] {
        println!("{name:<10} {:>10.3} ms {:>14.2} µs {:>14.2} ms", c.as_secs_f64() * 1e3, t.as_secs_f64() * 1e6, d.as_secs_f64() * 1e3);
    }
}
