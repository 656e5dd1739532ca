//! `virserver bench coverage`, as an example binary: what coverage costs,
//! measured in one run against the bare tools, so that the numbers in the
//! README can be re-checked on any machine.
//!
//! ```text
//! cargo build --release -p virserver-qemu-trace-plugin
//! cargo run --release -p virserver-coverage --example bench_coverage -- [--runs N] [--plugin PATH]
//! ```
//!
//! 1. PC to line: the same 100k addresses through [`LineMap`] (build plus
//!    lookups) and through binutils `arm-none-eabi-addr2line -e ELF` (one
//!    process, addresses on stdin); also checks they agree.
//! 2. An emulated run of `benches-fixture/bench.elf` (about ten million
//!    guest instructions) without tracing, with `-d in_asm -D FILE`, and with
//!    the TCG plugin; variants alternate, medians of `--runs` runs.
//! 3. Trace to LCOV for that run: parse, map (ELF to [`LineMap`], coverage)
//!    and write LCOV, for the in_asm log and for the plugin's counts.
//!
//! The library does no I/O; this binary spawns the processes and reads the
//! files, as the server does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use virserver_coverage::{BlockCounts, InAsmParser, LineMap};

const ADDRESSES: usize = 100_000;

struct Options {
    runs: usize,
    plugin: PathBuf,
    elf: PathBuf,
    qemu: String,
    addr2line: String,
}

impl Options {
    fn from_args() -> Result<Options, String> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut options = Options {
            runs: 9,
            plugin: manifest.join("../../target/release/libvirserver_qemu_trace_plugin.so"),
            elf: manifest.join("benches-fixture/bench.elf"),
            qemu: "qemu-system-arm".to_owned(),
            addr2line: "arm-none-eabi-addr2line".to_owned(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--runs" => options.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
                "--plugin" => options.plugin = value.into(),
                "--elf" => options.elf = value.into(),
                "--qemu" => options.qemu = value,
                "--addr2line" => options.addr2line = value,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if options.runs == 0 {
            return Err("--runs must be at least 1".to_owned());
        }
        Ok(options)
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn ratio(slow: Duration, fast: Duration) -> f64 {
    slow.as_secs_f64() / fast.as_secs_f64().max(1e-9)
}

/// 100k addresses spread over the code (even: Thumb), from a fixed LCG.
fn sample_addresses(map: &LineMap, elf: &[u8]) -> Result<Vec<u64>, String> {
    let file = object::File::parse(elf).map_err(|e| e.to_string())?;
    use object::{Object, ObjectSection};
    let text = file.section_by_name(".text").ok_or("no .text")?;
    let (start, size) = (text.address(), text.size().max(2));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let addresses: Vec<u64> = (0..ADDRESSES)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (start + (state >> 33) % size) & !1
        })
        .collect();
    if addresses.iter().all(|&a| map.lookup(a).is_none()) {
        return Err("no sampled address has a line".to_owned());
    }
    Ok(addresses)
}

/// The line number addr2line printed (`/path/file.c:12 (discriminator 3)`),
/// 0 for `??:0` / `??:?`.
fn addr2line_line(output_line: &str) -> u32 {
    let location = output_line.split(" (").next().unwrap_or_default();
    let number = location.rsplit(':').next().unwrap_or_default();
    number.trim().parse().unwrap_or(0)
}

fn bench_lookup(options: &Options, elf: &[u8]) -> Result<(), String> {
    let map = LineMap::from_elf(elf).map_err(|e| e.to_string())?;
    let addresses = sample_addresses(&map, elf)?;
    let input: String = addresses.iter().map(|a| format!("{a:#x}\n")).collect();

    let (mut ours, mut ours_build, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let mut our_lines = Vec::new();
    let mut their_output = String::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        let map = LineMap::from_elf(elf).map_err(|e| e.to_string())?;
        let built = started.elapsed();
        our_lines = addresses
            .iter()
            .map(|&a| map.lookup(a).map_or(0, |(_, line)| line))
            .collect();
        ours.push(started.elapsed());
        ours_build.push(built);

        let input = input.clone();
        let started = Instant::now();
        let mut child = Command::new(&options.addr2line)
            .arg("-e")
            .arg(&options.elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", options.addr2line))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        // Written from another thread: addr2line answers while it reads,
        // and a full stdout pipe would otherwise block both processes.
        let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        theirs.push(started.elapsed());
        let fed = feeder.join().map_err(|_| "feeder panicked")?;
        fed.map_err(|e| e.to_string())?;
        their_output = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    let their_lines: Vec<u32> = their_output.lines().map(addr2line_line).collect();
    let agree = our_lines
        .iter()
        .zip(&their_lines)
        .filter(|(a, b)| a == b)
        .count();
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "1. PC to line, {ADDRESSES} addresses in .text, median of {} runs",
        options.runs
    );
    println!(
        "   LineMap (build {} + lookups): {}",
        ms(median(ours_build)),
        ms(ours)
    );
    println!("   {} -e ELF (stdin):   {}", options.addr2line, ms(theirs));
    println!(
        "   ratio: {:.1}x faster (goal >= 10x); same line for {agree} of {} addresses",
        ratio(theirs, ours),
        their_lines.len()
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    InAsm,
    Plugin,
}

fn run_qemu(options: &Options, variant: Variant, log: &Path) -> Result<Duration, String> {
    let mut command = Command::new(&options.qemu);
    command
        .args(["-M", "mps2-an385", "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(&options.elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match variant {
        Variant::Plain => {}
        Variant::InAsm => {
            command.args(["-d", "in_asm", "-D"]).arg(log);
        }
        Variant::Plugin => {
            command.arg("-plugin").arg(format!(
                "{},out={}",
                options.plugin.display(),
                log.display()
            ));
        }
    }
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("{}: {e}", options.qemu))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "QEMU failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(elapsed)
}

fn bench_runs(options: &Options, dir: &Path, elf: &[u8]) -> Result<(), String> {
    if !options.plugin.exists() {
        return Err(format!(
            "{} missing: cargo build --release -p virserver-qemu-trace-plugin",
            options.plugin.display()
        ));
    }
    let in_asm_log = dir.join("in_asm.log");
    let blocks = dir.join("run.blocks");
    let variants = [Variant::Plain, Variant::InAsm, Variant::Plugin];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    run_qemu(options, Variant::Plain, &in_asm_log)?; // warm the page cache
    for round in 0..options.runs {
        for offset in 0..variants.len() {
            let index = (round + offset) % variants.len();
            let log = if index == 1 { &in_asm_log } else { &blocks };
            let elapsed = run_qemu(options, variants[index], log)?;
            samples[index].push(elapsed);
        }
    }
    let counts = BlockCounts::parse(&std::fs::read(&blocks).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let [plain, in_asm, plugin] = samples.map(median);
    println!(
        "2. Emulated run of {} guest instructions, median of {} runs each",
        counts.instructions_executed(),
        options.runs
    );
    println!("   no tracing:        {}", ms(plain));
    let log_size = std::fs::metadata(&in_asm_log).map_or(0, |m| m.len());
    println!(
        "   -d in_asm -D FILE: {} ({:.3}x, goal <= 1.05x; log {} bytes)",
        ms(in_asm),
        ratio(in_asm, plain),
        log_size
    );
    let blocks_size = std::fs::metadata(&blocks).map_or(0, |m| m.len());
    println!(
        "   TCG plugin:        {} ({:.3}x, goal <= 1.3x; file {} bytes)",
        ms(plugin),
        ratio(plugin, plain),
        blocks_size
    );
    let instructions = counts.instructions_executed().max(1) as f64;
    let per_instruction =
        |traced: Duration| (traced.as_secs_f64() - plain.as_secs_f64()) * 1e9 / instructions;
    println!(
        "   added per guest instruction: in_asm {:+.3} ns, plugin {:+.3} ns (QEMU start-up included in every run)",
        per_instruction(in_asm),
        per_instruction(plugin)
    );
    bench_reports(options, elf, &in_asm_log, &blocks)
}

fn bench_reports(
    options: &Options,
    elf: &[u8],
    in_asm_log: &Path,
    blocks: &Path,
) -> Result<(), String> {
    let log = std::fs::read(in_asm_log).map_err(|e| e.to_string())?;
    let blocks = std::fs::read(blocks).map_err(|e| e.to_string())?;
    let (mut trace_total, mut plugin_total) = (Vec::new(), Vec::new());
    let (mut parse_trace, mut parse_plugin, mut map_build) = (Vec::new(), Vec::new(), Vec::new());
    let mut lcov_sizes = (0, 0);
    for _ in 0..options.runs {
        let started = Instant::now();
        let mut parser = InAsmParser::new();
        parser.feed(&log);
        let executed = parser.finish();
        parse_trace.push(started.elapsed());
        let map_started = Instant::now();
        let map = LineMap::from_elf(elf).map_err(|e| e.to_string())?;
        map_build.push(map_started.elapsed());
        let lcov = map.coverage(&executed).to_lcov();
        trace_total.push(started.elapsed());

        let started = Instant::now();
        let counts = BlockCounts::parse(&blocks).map_err(|e| e.to_string())?;
        let counts = counts.hit_counts();
        parse_plugin.push(started.elapsed());
        let map = LineMap::from_elf(elf).map_err(|e| e.to_string())?;
        let counted_lcov = map.coverage_with_counts(&counts).to_lcov();
        plugin_total.push(started.elapsed());
        lcov_sizes = (lcov.len(), counted_lcov.len());
    }
    println!(
        "3. Trace to LCOV (parse + LineMap + coverage + LCOV text), median of {} runs",
        options.runs
    );
    println!(
        "   in_asm log ({} bytes):  {} (parse {}, LineMap build {}; LCOV {} bytes)",
        log.len(),
        ms(median(trace_total)),
        ms(median(parse_trace)),
        ms(median(map_build)),
        lcov_sizes.0
    );
    println!(
        "   plugin file ({} bytes): {} (parse {}; LCOV {} bytes, with hit counts)",
        blocks.len(),
        ms(median(plugin_total)),
        ms(median(parse_plugin)),
        lcov_sizes.1
    );
    Ok(())
}

fn main() {
    let result = Options::from_args().and_then(|options| {
        let elf =
            std::fs::read(&options.elf).map_err(|e| format!("{}: {e}", options.elf.display()))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        bench_lookup(&options, &elf)?;
        bench_runs(&options, dir.path(), &elf)
    });
    if let Err(message) = result {
        eprintln!("bench: {message}");
        std::process::exit(1);
    }
}
