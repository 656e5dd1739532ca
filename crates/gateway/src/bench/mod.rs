//! `bench_rsp`: how the gateway compares with QEMU's stub used directly and
//! with a bare relay, on the operations GDB makes most (the server exposes
//! it as `virserver bench rsp`; `cargo run --release -p virserver-gateway
//! --example bench_rsp` runs it standalone).
//!
//! In one run, on a halted target:
//!
//! 1. median round trip of `g` and of a 2 KiB `m`: QEMU's stub direct, a
//!    bare relay (`socat TCP-LISTEN,nodelay UNIX-CONNECT` to a second QEMU), the
//!    gateway with its cache off (raw forwarding) and on;
//! 2. a GDB-like stepping loop (`vCont;s`, `g`, 64 bytes `m` at sp, from
//!    reset each run), direct and through the gateway (where reading ahead
//!    pays);
//! 3. a 64 KiB memory read: a plain client reading 0x800 bytes per request,
//!    one at a time, on the stub direct, against one `m` through the
//!    gateway, which splits and pipelines it;
//! 4. GDB's `next` over a loop (`next.rs`): one instruction at a time
//!    direct, against one `vCont;r` through the gateway;
//! 5. with [`BenchConfig::served`], the stepping loop again through a gateway
//!    reporting to the sinks a server gives its gateways (an audit log, a
//!    round-trip histogram), against the bare gateway.
//!
//! The stub serves one client at a time, so the direct measurements run
//! first and the gateways connect after.

mod next;
mod qemu;
mod rsp_client;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::Command;

pub use next::NextRange;
pub use qemu::QemuProcess;
pub use rsp_client::RspClient;

use crate::{Gateway, GatewayConfig, target_description::TargetDescription};

/// What to run the benchmark on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// The QEMU binary, such as `qemu-system-arm`.
    pub qemu: PathBuf,
    /// The machine, such as `mps2-an385`.
    pub machine: String,
    /// The firmware (halted at reset; it is never resumed).
    pub kernel: PathBuf,
    /// An address with at least 64 KiB of RAM or flash after it.
    pub memory: u64,
    /// Round trips measured for each median.
    pub round_trips: usize,
    /// Iterations of the stepping loop.
    pub steps: usize,
    /// Repetitions of the 64 KiB read.
    pub large_reads: usize,
    /// The loop count given to the firmware's `delay()` for the `next`
    /// benchmark (0, or no `delay` and `tick` symbols: skipped).
    pub next_loops: u64,
    /// The sinks a server's gateways report to; `None`: step 5 is skipped.
    pub served: Option<Served>,
}

/// What a server attaches to each of its gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Where clients' operations go (every step is one).
    pub audit: crate::AuditSink,
    /// Where request round trips go.
    pub round_trips: crate::RoundTripSink,
}

impl BenchConfig {
    /// The defaults for the committed Cortex-M3 ticker firmware.
    pub fn mps2_an385(kernel: impl Into<PathBuf>) -> BenchConfig {
        BenchConfig {
            qemu: "qemu-system-arm".into(),
            machine: "mps2-an385".into(),
            kernel: kernel.into(),
            memory: 0,
            round_trips: 2000,
            steps: 190,
            large_reads: 30,
            next_loops: 62,
            served: None,
        }
    }
}

/// The benchmark failed to run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket, process or protocol step failed.
    #[error("bench: {0}")]
    Io(#[from] io::Error),
    /// The gateway did not start.
    #[error("bench: {0}")]
    Gateway(#[from] crate::GatewayError),
}

/// One measured line.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchLine {
    /// What was measured.
    pub name: String,
    /// The median (or the time of one loop or read).
    pub value: Duration,
    /// The ratio to the reference named in `versus` (value / reference).
    pub ratio: Option<(f64, String)>,
}

/// The results, printable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    /// Every line, in order.
    pub lines: Vec<BenchLine>,
}

impl BenchReport {
    fn add(&mut self, name: &str, value: Duration, reference: Option<(&str, Duration)>) {
        let ratio = reference.map(|(versus, reference)| {
            (
                value.as_secs_f64() / reference.as_secs_f64().max(1e-9),
                versus.to_owned(),
            )
        });
        self.lines.push(BenchLine {
            name: name.to_owned(),
            value,
            ratio,
        });
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            write!(
                formatter,
                "{:<46} {:>12.1} us",
                line.name,
                line.value.as_secs_f64() * 1e6
            )?;
            if let Some((ratio, versus)) = &line.ratio {
                write!(formatter, "   {ratio:.2}x {versus}")?;
            }
            writeln!(formatter)?;
        }
        Ok(())
    }
}

/// Runs the benchmark (two QEMUs and a socat relay, for a few seconds).
/// Run it from a current-thread runtime: the measuring client then costs
/// what GDB's blocking reads cost.
pub async fn bench_rsp(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let mut report = BenchReport::default();
    let next_range = match config.next_loops {
        0 => None,
        loops => NextRange::find(&config.kernel, "delay", "tick", loops)?,
    };
    let qemu = QemuProcess::start(&config.qemu, &config.machine, &config.kernel).await?;
    let relayed = QemuProcess::start(&config.qemu, &config.machine, &config.kernel).await?;

    // 1. Direct, on the first QEMU.
    let mut direct = RspClient::new(UnixStream::connect(&qemu.gdb_socket).await?);
    let description = prepare(&mut direct).await?;
    let direct_g = median_round_trip(&mut direct, b"g", config.round_trips).await?;
    let m2k = format!("m{:x},800", config.memory);
    let direct_m = median_round_trip(&mut direct, m2k.as_bytes(), config.round_trips).await?;
    let direct_steps = stepping_loop(&mut direct, &description, config.steps).await?;
    let direct_next = match next_range {
        Some(range) => Some(next_runs(&mut direct, &description, range, false).await?),
        None => None,
    };
    let mut samples = Vec::new();
    for _ in 0..config.large_reads.max(1) {
        let start = Instant::now();
        direct
            .read_memory_sequential(config.memory, 0x10000, 0x800)
            .await?;
        samples.push(start.elapsed());
    }
    let direct_large = median(samples);
    // The floor: the same 32 requests pipelined by hand on the stub.
    let mut samples = Vec::new();
    for _ in 0..config.large_reads.max(1) {
        let start = Instant::now();
        for (addr, length) in virserver_rsp::packets::split_read(config.memory, 0x10000, 0x800) {
            direct
                .send(format!("m{addr:x},{length:x}").as_bytes())
                .await?;
        }
        for _ in 0..0x20 {
            direct.recv().await?;
        }
        samples.push(start.elapsed());
    }
    let direct_pipelined = median(samples);
    drop(direct);

    // The bare relay, on the second QEMU.
    let port = free_port().await?;
    let mut socat = Command::new("socat")
        .arg(format!(
            "TCP-LISTEN:{port},reuseaddr,nodelay,bind=127.0.0.1"
        ))
        .arg(format!("UNIX-CONNECT:{}", relayed.gdb_socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut relay = RspClient::new(connect_retrying(port).await?);
    prepare(&mut relay).await?;
    let relay_g = median_round_trip(&mut relay, b"g", config.round_trips).await?;
    let relay_m = median_round_trip(&mut relay, m2k.as_bytes(), config.round_trips).await?;
    drop(relay);
    let _ = socat.start_kill();

    // The gateway with its cache off: raw forwarding.
    let mut plain_config = GatewayConfig::new(&qemu.gdb_socket);
    plain_config.cache = false;
    let plain = Gateway::start(plain_config).await?;
    let mut client = RspClient::new(TcpStream::connect(plain.address()).await?);
    prepare(&mut client).await?;
    let plain_g = median_round_trip(&mut client, b"g", config.round_trips).await?;
    let plain_m = median_round_trip(&mut client, m2k.as_bytes(), config.round_trips).await?;
    let m64k = format!("m{:x},10000", config.memory);
    let mut samples = Vec::new();
    for _ in 0..config.large_reads.max(1) {
        let start = Instant::now();
        let reply = client.request(m64k.as_bytes()).await?;
        samples.push(start.elapsed());
        if reply.len() != 0x20000 {
            return Err(io::Error::other("short 64 KiB read through the gateway").into());
        }
    }
    let gateway_large = median(samples);
    drop(client);
    plain.shutdown().await;

    // The gateway with its cache: what clients get.
    let cached = Gateway::start(GatewayConfig::new(&qemu.gdb_socket)).await?;
    let mut client = RspClient::new(TcpStream::connect(cached.address()).await?);
    prepare(&mut client).await?;
    let cached_g = median_round_trip(&mut client, b"g", config.round_trips).await?;
    let cached_m = median_round_trip(&mut client, m2k.as_bytes(), config.round_trips).await?;
    let gateway_steps = stepping_loop(&mut client, &description, config.steps).await?;
    let gateway_next = match next_range {
        Some(range) => Some(next_runs(&mut client, &description, range, true).await?),
        None => None,
    };
    drop(client);
    cached.shutdown().await;

    // The gateway as a server runs it: every step audited, every request timed.
    let served_steps = match &config.served {
        Some(served) => {
            let mut served_config = GatewayConfig::new(&qemu.gdb_socket);
            served_config.audit = Some(served.audit.clone());
            served_config.round_trips = Some(served.round_trips.clone());
            let gateway = Gateway::start(served_config).await?;
            let mut client = RspClient::new(TcpStream::connect(gateway.address()).await?);
            prepare(&mut client).await?;
            let steps = stepping_loop(&mut client, &description, config.steps).await?;
            drop(client);
            gateway.shutdown().await;
            Some(steps)
        }
        None => None,
    };

    report.add("g: QEMU stub direct", direct_g, None);
    report.add("g: bare relay (socat)", relay_g, Some(("direct", direct_g)));
    report.add("g: gateway, cache off", plain_g, Some(("relay", relay_g)));
    report.add("g: gateway", cached_g, Some(("relay", relay_g)));
    report.add("m 2 KiB: QEMU stub direct", direct_m, None);
    report.add(
        "m 2 KiB: bare relay (socat)",
        relay_m,
        Some(("direct", direct_m)),
    );
    report.add(
        "m 2 KiB: gateway, cache off",
        plain_m,
        Some(("relay", relay_m)),
    );
    report.add("m 2 KiB: gateway", cached_m, Some(("relay", relay_m)));
    let per_step = |total: Duration| total / config.steps.max(1) as u32;
    report.add(
        "stepping loop, per step: direct",
        per_step(direct_steps),
        None,
    );
    report.add(
        "stepping loop, per step: gateway",
        per_step(gateway_steps),
        Some(("direct", per_step(direct_steps))),
    );
    if let Some(served) = served_steps {
        report.add(
            "stepping loop, per step: gateway with audit log and metrics",
            per_step(served),
            Some(("gateway", per_step(gateway_steps))),
        );
    }
    if let (Some((direct, steps, direct_pc)), Some((gateway, _, gateway_pc))) =
        (direct_next, gateway_next)
    {
        if direct_pc != gateway_pc {
            return Err(io::Error::other(format!(
                "next: direct stopped at {direct_pc:#x}, the gateway at {gateway_pc:#x}"
            ))
            .into());
        }
        report.add(
            &format!("next over {steps} instructions: direct"),
            direct,
            None,
        );
        report.add("next: gateway (vCont;r)", gateway, Some(("direct", direct)));
    }
    report.add("64 KiB read: sequential 0x800 direct", direct_large, None);
    report.add(
        "64 KiB read: 32 m pipelined by hand, direct",
        direct_pipelined,
        Some(("sequential", direct_large)),
    );
    report.add(
        "64 KiB read: one m through the gateway",
        gateway_large,
        Some(("sequential", direct_large)),
    );
    Ok(report)
}

/// What GDB does first: features, then target.xml (QEMU 7.2 needs it for
/// the real `g` layout). Returns the parsed description.
async fn prepare<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
) -> io::Result<TargetDescription> {
    client
        .request(b"qSupported:multiprocess+;vContSupported+")
        .await?;
    let root = client.read_target_xml().await?;
    let mut documents = Vec::new();
    for include in TargetDescription::includes(&root) {
        let request = format!("qXfer:features:read:{include}:0,ffb");
        let reply = client.request(request.as_bytes()).await?;
        documents.push((include, reply.get(1..).unwrap_or_default().to_vec()));
    }
    client.request(b"?").await?;
    let lookup = |name: &str| {
        documents
            .iter()
            .find(|(include, _)| include == name)
            .map(|(_, data)| data.as_slice())
    };
    Ok(TargetDescription::parse(&root, &lookup))
}

async fn median_round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
    payload: &[u8],
    count: usize,
) -> io::Result<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let start = Instant::now();
        let reply = client.request(payload).await?;
        samples.push(start.elapsed());
        if reply.first() == Some(&b'E') && reply.len() == 3 {
            return Err(io::Error::other(format!(
                "{} failed: {}",
                String::from_utf8_lossy(payload),
                reply.escape_ascii()
            )));
        }
    }
    Ok(median(samples))
}

/// `vCont;s`, `g`, 64 bytes at sp, `steps` times from reset (so every
/// path steps through the same instructions); the median total of
/// [`STEPPING_RUNS`] runs.
async fn stepping_loop<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
    description: &TargetDescription,
    steps: usize,
) -> io::Result<Duration> {
    let mut samples = Vec::new();
    for _ in 0..STEPPING_RUNS {
        let (_, reply) = client.monitor("system_reset").await?;
        if reply != b"OK" {
            return Err(io::Error::other("system_reset refused"));
        }
        samples.push(stepping_run(client, description, steps).await?);
    }
    Ok(median(samples))
}

/// Runs of the stepping loop; the median counts.
const STEPPING_RUNS: usize = 7;

async fn stepping_run<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
    description: &TargetDescription,
    steps: usize,
) -> io::Result<Duration> {
    let start = Instant::now();
    for _ in 0..steps {
        let stop = client.request(b"vCont;s:p1.1;c:p1.-1").await?;
        if !stop.starts_with(b"T") && !stop.starts_with(b"S") {
            return Err(io::Error::other(format!("step: {}", stop.escape_ascii())));
        }
        let g = client.request(b"g").await?;
        let g = virserver_rsp::hex::decode_hex(&g).map_err(io::Error::other)?;
        let sp = description
            .value_in_g("sp", &g)
            .ok_or_else(|| io::Error::other("no sp in g"))?;
        client.request(format!("m{sp:x},40").as_bytes()).await?;
    }
    Ok(start.elapsed())
}

/// [`next::next_over`] [`STEPPING_RUNS`] times: the median time, the
/// client's step count and the final pc; then a reset.
async fn next_runs<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
    description: &TargetDescription,
    range: NextRange,
    range_step: bool,
) -> io::Result<(Duration, usize, u64)> {
    let mut samples = Vec::new();
    let mut last = (0, 0);
    for _ in 0..STEPPING_RUNS {
        let (time, steps, pc) = next::next_over(client, description, range, range_step).await?;
        samples.push(time);
        last = (steps, pc);
    }
    // Back to a sane state: the registers were set for a call out of nowhere.
    let (_, reply) = client.monitor("system_reset").await?;
    if reply != b"OK" {
        return Err(io::Error::other("system_reset refused"));
    }
    Ok((median(samples), last.0, last.1))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

async fn free_port() -> io::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

async fn connect_retrying(port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..100 {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| io::Error::other("socat did not listen")))
}
