;; The Parallel Python demo as a mesh task: reads n on stdin and prints the sum of the
;; primes below n, found by the demo's trial division (every x is divided by 2..=sqrt(x)).
;;
;;   mesh submit wasm examples/wasm/primes.wat --input-file ns.txt
;;
;; A WASI command module in WebAssembly text: mesh accepts .wat as it is, or build a
;; binary with `wat2wasm primes.wat`. Memory map: 0..8 an iovec, 8..12 a count,
;; 64..96 the digits being printed, 1024..5120 the input.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)

  ;; Reads all of stdin into 1024.. and returns its length.
  (func $read_all (result i32)
    (local $len i32)
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 4096) (local.get $len)))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br_if $more (i32.lt_u (local.get $len) (i32.const 4096)))))
    (local.get $len))

  ;; Parses the first decimal number in 1024..1024+len; exits 2 if there is none.
  (func $parse (param $len i32) (result i64)
    (local $i i32) (local $c i32) (local $n i64) (local $seen i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (i32.const 1024) (local.get $i))) (i32.const 48)))
        (if (i32.lt_u (local.get $c) (i32.const 10))
          (then
            (local.set $seen (i32.const 1))
            (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c)))))
          (else (br_if $done (local.get $seen))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.eqz (local.get $seen)) (then (call $proc_exit (i32.const 2))))
    (local.get $n))

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

  ;; Prints v in decimal and a newline.
  (func $print (param $v i64)
    (local $p i32)
    (local.set $p (i32.const 95))
    (i32.store8 (local.get $p) (i32.const 10))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 96) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func (export "_start")
    (local $n i64) (local $x i64) (local $sum i64)
    (local.set $n (call $parse (call $read_all)))
    (local.set $x (i64.const 2))
    (block $end
      (loop $each
        (br_if $end (i64.ge_u (local.get $x) (local.get $n)))
        (if (call $is_prime (local.get $x))
          (then (local.set $sum (i64.add (local.get $sum) (local.get $x)))))
        (local.set $x (i64.add (local.get $x) (i64.const 1)))
        (br $each)))
    (call $print (local.get $sum))))
