//! `cargo run --release -p virserver-gateway --example bench [ELF]
//! [--gateway-threads N]`: runs `bench_rsp` on the committed Cortex-M3
//! ticker (or the given ELF) and prints medians and ratios. The gateway runs
//! on a runtime of its own with N worker threads (default 2; 0 for a
//! current-thread runtime); this binary's own runtime plays GDB.

use std::path::PathBuf;

use virserver_gateway::bench::{BenchConfig, bench_rsp};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut kernel = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/firmware/bin/ticker-mps2-an385.elf");
    let mut threads = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--gateway-threads" => threads = arguments.next().and_then(|n| n.parse().ok()),
            _ => kernel = PathBuf::from(argument),
        }
    }
    let mut config = BenchConfig::mps2_an385(kernel);
    if let Some(threads) = threads {
        config.gateway_worker_threads = threads;
    }
    match bench_rsp(&config).await {
        Ok(report) => print!("{report}"),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
