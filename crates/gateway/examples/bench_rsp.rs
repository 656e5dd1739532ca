//! `cargo run --release -p virserver-gateway --example bench_rsp [ELF]`: runs
//! `bench_rsp` on the committed Cortex-M3 ticker (or the given ELF) and
//! prints medians and ratios. Each gateway runs on a thread of its own (as
//! in the server); this binary's current-thread runtime plays GDB.

use std::path::PathBuf;

use virserver_gateway::bench::{BenchConfig, bench_rsp};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let kernel = std::env::args().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/firmware/bin/ticker-mps2-an385.elf")
        },
        PathBuf::from,
    );
    match bench_rsp(&BenchConfig::mps2_an385(kernel)).await {
        Ok(report) => print!("{report}"),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
