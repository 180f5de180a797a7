// The wasm-smith settings for modules that can run as mesh tasks: they import only the
// given WASI calls, export `_start` and `memory`, have one memory of at most 16 MiB, and
// use only the proposals mesh's engine takes. Shared, by `include!`, by `wasi-ref smith`
// (the differential corpus) and the `wasm_smith` fuzz target (fuzz/fuzz_targets/).

/// A mesh task's exports.
const TASK_EXPORTS: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

/// Settings for modules that may import the functions of `imports` (a module in text).
fn smith_config(imports: &str) -> wasm_smith::Config {
    wasm_smith::Config {
        available_imports: Some(wat::parse_str(imports).expect("the imports parse")),
        exports: Some(wat::parse_str(TASK_EXPORTS).expect("the exports parse")),
        max_memory32_bytes: 16 << 20,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        reference_types_enabled: false,
        max_memories: 0,
        max_tables: 4,
        min_funcs: 2,
        max_instructions: 200,
        ..Default::default()
    }
}
