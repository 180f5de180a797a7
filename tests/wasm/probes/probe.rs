//! What a Rust program (std for wasm32-wasip1) sees of mesh's sandbox: files, directories,
//! the environment, stdio, time and the network, each with the error it got. Its output
//! under mesh must equal its output under wasmtime's own WASI (probe_rust.expect, written
//! by tools/wasi-ref). Build: make -C tests/wasm/probes (rustup target add wasm32-wasip1).
use std::io::BufRead;

fn show<T>(what: &str, r: std::io::Result<T>) {
    match r {
        Ok(_) => println!("{what}: ok"),
        Err(e) => println!("{what}: {:?} {:?}", e.kind(), e.raw_os_error()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args {args:?}; {} environment variables", std::env::vars().count());
    let mut line = String::new();
    show("stdin", std::io::stdin().lock().read_line(&mut line));
    println!("line {:?}", line);
    show("read /etc/passwd", std::fs::read("/etc/passwd"));
    show("create out.txt", std::fs::File::create("out.txt"));
    show("read_dir .", std::fs::read_dir("."));
    show("create_dir d", std::fs::create_dir("d"));
    show("current_dir", std::env::current_dir());
    show("metadata /", std::fs::metadata("/"));
    show("bind a TCP port", std::net::TcpListener::bind("0.0.0.0:8080"));
    show("connect", std::net::TcpStream::connect("198.18.0.1:80"));
    let before = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(2));
    println!("slept: {}", before.elapsed() >= std::time::Duration::from_millis(2));
    println!("after 1970: {}", std::time::SystemTime::now() > std::time::UNIX_EPOCH);
}
