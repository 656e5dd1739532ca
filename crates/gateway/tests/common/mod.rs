//! Helpers shared by the integration tests: the committed firmware, a real
//! QEMU started as the server starts it, a gateway in front of it, raw RSP
//! clients, gdb-multiarch in batch mode, and ELF symbols.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use object::{Object, ObjectSegment, ObjectSymbol};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use virserver_gateway::bench::{QemuProcess, RspClient};
use virserver_gateway::{Gateway, GatewayConfig};

pub type Client = RspClient<TcpStream>;

pub fn firmware(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/firmware/bin")
        .join(name)
}

pub const TICKER: &str = "ticker-mps2-an385.elf";

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub async fn start_qemu(elf: &str) -> QemuProcess {
    init_logging();
    let qemu = if elf.contains("riscv32") {
        "qemu-system-riscv32"
    } else {
        "qemu-system-arm"
    };
    let machine = if elf.contains("riscv32") {
        "virt"
    } else {
        "mps2-an385"
    };
    let extra: &[&str] = if elf.contains("riscv32") {
        &["-bios", "none"]
    } else {
        &[]
    };
    QemuProcess::start_with(Path::new(qemu), machine, &firmware(elf), extra)
        .await
        .expect("QEMU starts")
}

pub async fn start_gateway(qemu: &QemuProcess) -> Gateway {
    Gateway::start(GatewayConfig::new(&qemu.gdb_socket))
        .await
        .expect("gateway starts")
}

/// A raw client that has done what GDB does first.
pub async fn attach(gateway: &Gateway) -> Client {
    let mut client = RspClient::new(
        TcpStream::connect(gateway.address())
            .await
            .expect("connect"),
    );
    client.timeout = PATIENCE;
    let features = client
        .request(b"qSupported:multiprocess+;swbreak+")
        .await
        .expect("qSupported");
    assert!(String::from_utf8_lossy(&features).contains("QStartNoAckMode+"));
    client.read_target_xml().await.expect("target.xml");
    let stop = client.request(b"?").await.expect("?");
    assert!(
        stop.starts_with(b"T") || stop.starts_with(b"S"),
        "{}",
        stop.escape_ascii()
    );
    client
}

/// The pc in a `g` reply of a Cortex-M (register 15).
pub fn pc_of(g: &[u8]) -> u32 {
    let bytes = virserver_rsp::hex::decode_hex(g).expect("hex registers");
    u32::from_le_bytes(bytes[60..64].try_into().expect("pc"))
}

pub async fn read_u32(client: &mut Client, addr: u64) -> u32 {
    let reply = client
        .request(format!("m{addr:x},4").as_bytes())
        .await
        .expect("m");
    let bytes = virserver_rsp::hex::decode_hex(&reply).expect("hex memory");
    u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
}

/// QMP `query-status`: is the VM running?
pub async fn vm_running(qemu: &QemuProcess) -> bool {
    let reply = qemu.qmp("query-status").await.expect("query-status");
    reply.contains("\"running\": true")
}

/// How long a test waits for something that must happen. Not a speed limit:
/// with a breakpoint at `tick()`, the first stop took 9-13 s here straight on
/// the stub (`delay()` shares its page; QEMU appears to run such a page one
/// instruction per block), more on a loaded machine. This only keeps a broken
/// test from hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `condition` holds, or panics after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The number of "tick N" lines QEMU printed.
pub fn ticks(qemu: &QemuProcess) -> usize {
    qemu.output().matches("tick ").count()
}

/// Symbols of an ELF: address (and size) by name.
pub struct Symbols {
    data: Vec<u8>,
}

impl Symbols {
    pub fn load(elf: &str) -> Symbols {
        Symbols {
            data: std::fs::read(firmware(elf)).expect("ELF"),
        }
    }

    pub fn symbol(&self, name: &str) -> (u64, u64) {
        let file = object::File::parse(&*self.data).expect("ELF parses");
        let symbol = file
            .symbols()
            .find(|symbol| symbol.name() == Ok(name))
            .unwrap_or_else(|| panic!("symbol {name}"));
        (symbol.address() & !1, symbol.size())
    }

    /// The bytes the loader puts at `addr..addr+length` (zeros elsewhere).
    pub fn image(&self, addr: u64, length: usize) -> Vec<u8> {
        let file = object::File::parse(&*self.data).expect("ELF parses");
        let mut image = vec![0u8; length];
        for segment in file.segments() {
            let Ok(data) = segment.data() else { continue };
            let base = segment.address();
            for (index, byte) in data.iter().enumerate() {
                let at = base + index as u64;
                if at >= addr && at < addr + length as u64 {
                    image[(at - addr) as usize] = *byte;
                }
            }
        }
        image
    }
}

/// gdb-multiarch in batch mode; its stdout is read line by line.
pub struct Gdb {
    pub child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub transcript: Vec<String>,
}

impl Gdb {
    pub fn start(elf: &str, address: std::net::SocketAddr, commands: &[&str]) -> Gdb {
        Gdb::start_with_setup(elf, address, &[], commands)
    }

    /// [`Gdb::start`] with `setup` run before connecting.
    pub fn start_with_setup(
        elf: &str,
        address: std::net::SocketAddr,
        setup: &[&str],
        commands: &[&str],
    ) -> Gdb {
        let mut command = Command::new("gdb-multiarch");
        command.args(["-q", "-nx", "-batch"]);
        command.args(["-ex", "set pagination off", "-ex", "set confirm off"]);
        for line in setup {
            command.args(["-ex", line]);
        }
        command.args(["-ex", &format!("target extended-remote {address}")]);
        for line in commands {
            command.args(["-ex", line]);
        }
        command.arg(firmware(elf));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("gdb-multiarch runs");
        let stdout = child.stdout.take().expect("stdout");
        Gdb {
            child,
            lines: BufReader::new(stdout).lines(),
            transcript: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; returns it.
    pub async fn expect_line(&mut self, needle: &str) -> String {
        let deadline = PATIENCE;
        loop {
            let line = tokio::time::timeout(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("gdb printed no {needle:?}: {:#?}", self.transcript))
                .expect("gdb stdout")
                .unwrap_or_else(|| panic!("gdb ended before {needle:?}: {:#?}", self.transcript));
            self.transcript.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits for gdb to exit; its status and the rest of its output, then
    /// what it printed on stderr (each line prefixed `stderr: `).
    pub async fn finish(mut self) -> (bool, Vec<String>) {
        while let Ok(Ok(Some(line))) = tokio::time::timeout(PATIENCE, self.lines.next_line()).await
        {
            self.transcript.push(line);
        }
        if let Some(stderr) = self.child.stderr.take() {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Ok(Some(line))) = tokio::time::timeout(PATIENCE, lines.next_line()).await {
                self.transcript.push(format!("stderr: {line}"));
            }
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("gdb exits")
            .expect("gdb status");
        (status.success(), self.transcript)
    }
}
