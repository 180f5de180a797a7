;; A Monte Carlo estimate of pi, one batch of samples per task. Each input line is
;; "SEED SAMPLES"; the task prints "HITS SAMPLES": how many of SAMPLES random points of the
;; unit square fell inside the quarter circle. pi is about 4 * sum(HITS) / sum(SAMPLES).
;;
;;   seq 1 1000 | sed 's/$/ 1000000/' | mesh submit wasm examples/wasm/montecarlo.wat
;;
;; Points come from xorshift64* seeded by SEED, in integer arithmetic only, so every node
;; (x86-64 or ARM) gets exactly the same HITS for the same line. A real job would seed from
;; its line like this, not from a clock, so that a retried task gives the same answer.
;; Memory map: 0..8 an iovec, 8..12 a count, 64..96 output digits, 1024..5120 the input.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (global $pos (mut i32) (i32.const 0))
  (global $len (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 64))

  (func $read_all
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (global.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 4096) (global.get $len)))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (global.set $len (i32.add (global.get $len) (i32.load (i32.const 8))))
        (br_if $more (i32.lt_u (global.get $len) (i32.const 4096))))))

  ;; The next decimal number of the input; exits 2 if there is none.
  (func $number (result i64)
    (local $c i32) (local $n i64) (local $seen i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (global.get $pos) (global.get $len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (i32.const 1024) (global.get $pos))) (i32.const 48)))
        (if (i32.lt_u (local.get $c) (i32.const 10))
          (then
            (local.set $seen (i32.const 1))
            (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c)))))
          (else (br_if $done (local.get $seen))))
        (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
        (br $next)))
    (if (i32.eqz (local.get $seen)) (then (call $proc_exit (i32.const 2))))
    (local.get $n))

  ;; Appends v in decimal and then the byte $end to the output at 64..
  (func $emit (param $v i64) (param $end i32)
    (local $start i32) (local $a i32) (local $b i32) (local $t i32)
    (local.set $start (global.get $out))
    (loop $digit
      (i32.store8 (global.get $out) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (global.set $out (i32.add (global.get $out) (i32.const 1)))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    ;; The digits came out backwards: reverse them.
    (local.set $a (local.get $start))
    (local.set $b (i32.sub (global.get $out) (i32.const 1)))
    (block $done
      (loop $swap
        (br_if $done (i32.ge_u (local.get $a) (local.get $b)))
        (local.set $t (i32.load8_u (local.get $a)))
        (i32.store8 (local.get $a) (i32.load8_u (local.get $b)))
        (i32.store8 (local.get $b) (local.get $t))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.sub (local.get $b) (i32.const 1)))
        (br $swap)))
    (i32.store8 (global.get $out) (local.get $end))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))

  (func (export "_start")
    (local $state i64) (local $samples i64) (local $i i64) (local $hits i64)
    (local $r i64) (local $x i64) (local $y i64)
    (call $read_all)
    ;; Mix the seed so that seeds 1, 2, 3... start far apart; never let the state be 0.
    (local.set $state (i64.or (i64.mul (i64.add (call $number) (i64.const 1)) (i64.const 0x9e3779b97f4a7c15)) (i64.const 1)))
    (local.set $samples (call $number))
    (block $end
      (loop $sample
        (br_if $end (i64.ge_u (local.get $i) (local.get $samples)))
        ;; xorshift64*: state ^= state >> 12; ^= << 25; ^= >> 27; out = state * M
        (local.set $state (i64.xor (local.get $state) (i64.shr_u (local.get $state) (i64.const 12))))
        (local.set $state (i64.xor (local.get $state) (i64.shl (local.get $state) (i64.const 25))))
        (local.set $state (i64.xor (local.get $state) (i64.shr_u (local.get $state) (i64.const 27))))
        (local.set $r (i64.mul (local.get $state) (i64.const 0x2545f4914f6cdd1d)))
        ;; Two 31-bit coordinates; inside when x^2 + y^2 < 2^62.
        (local.set $x (i64.shr_u (local.get $r) (i64.const 33)))
        (local.set $y (i64.and (i64.shr_u (local.get $r) (i64.const 2)) (i64.const 0x7fffffff)))
        (if (i64.lt_u (i64.add (i64.mul (local.get $x) (local.get $x)) (i64.mul (local.get $y) (local.get $y)))
                      (i64.const 0x4000000000000000))
          (then (local.set $hits (i64.add (local.get $hits) (i64.const 1)))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $sample)))
    (call $emit (local.get $hits) (i32.const 32))
    (call $emit (local.get $samples) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.sub (global.get $out) (i32.const 64)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
