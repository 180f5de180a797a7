;; A test module that misbehaves on request. Its input line decides:
;;   "loop"  spins forever (the timeout must stop it);
;;   "bomb"  grows its memory until refused, then traps (the memory limit must hold);
;;   "fail"  exits with code 7;
;;   anything else is echoed back.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i32) (local $first i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (local.set $first (i32.load (i32.const 1024)))
    ;; "loop" as a little-endian word
    (if (i32.eq (local.get $first) (i32.const 0x706f6f6c)) (then (loop $forever (br $forever))))
    ;; "bomb"
    (if (i32.eq (local.get $first) (i32.const 0x626d6f62))
      (then
        (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))
    ;; "fail"
    (if (i32.eq (local.get $first) (i32.const 0x6c696166)) (then (call $proc_exit (i32.const 7))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
