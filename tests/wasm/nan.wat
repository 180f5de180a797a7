;; Prints the bits of a NaN made at run time (0.0 / 0.0 from the input's length minus
;; itself), in hex. x86-64 makes 0xfff8000000000000 and ARM 0x7ff8000000000000; mesh's
;; engine canonicalises NaNs, so every node prints 7ff8000000000000, and a task's output
;; does not depend on the CPU that ran it.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "0123456789abcdef")
  (func (export "_start")
    (local $n i32) (local $zero f64) (local $bits i64) (local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 1000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (local.set $zero (f64.convert_i32_u (i32.sub (local.get $n) (local.get $n))))
    (local.set $bits (i64.reinterpret_f64 (f64.div (local.get $zero) (local.get $zero))))
    ;; 16 hex digits at 100..116, then a newline.
    (loop $digit
      (i32.store8 (i32.sub (i32.const 115) (local.get $i))
        (i32.load8_u (i32.add (i32.const 200) (i32.wrap_i64 (i64.and (local.get $bits) (i64.const 15))))))
      (local.set $bits (i64.shr_u (local.get $bits) (i64.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $i) (i32.const 16))))
    (i32.store8 (i32.const 116) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
