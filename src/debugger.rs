//! The debugger of one powered session: its multiplexing GDB gateway (crates/gateway),
//! the program's symbols (DWARF, built on first use), and what the API needs on top of
//! the gateway's client: source locations to addresses ("0x...", a function name, or
//! "file.c:LINE") and stop addresses back to function, file and line. It also holds the
//! session's GDB for the symbolic API (`crate::symbolic`), so that GDB ends with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use virserver_coverage::{CodeLocation, LineMap, LineMapError, SymbolError};
use virserver_gateway::{
    DebugClient, DebugError, Gateway, GatewayConfig, GatewayError, SemihostingConfig,
};

use crate::boards::{BoardTemplate, MemoryKind, parse_u64};
use crate::symbolic::Symbolic;

#[derive(Debug, thiserror::Error)]
pub enum DebuggerError {
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    #[error("the program has no usable debug information: {0}")]
    NoDebugInfo(String),
    #[error(transparent)]
    Target(#[from] DebugError),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(
        "attach tickets are refused while the server allows raw monitor access: a ticket \
         hands the endpoint to someone who must not reach the host"
    )]
    TicketsWithRawMonitor,
}

/// Where a breakpoint goes, as the API spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Address(u64),
    Line { file: String, line: u32 },
    Function(String),
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, DebuggerError> {
        let text = text.trim();
        if text.starts_with("0x") || text.starts_with("0X") {
            return parse_u64(text)
                .map(Location::Address)
                .ok_or_else(|| DebuggerError::BadInput(format!("'{text}' is not an address")));
        }
        if let Some((file, line)) = text.rsplit_once(':') {
            let line = line
                .parse()
                .map_err(|_| DebuggerError::BadInput(format!("'{line}' is not a line number")))?;
            if file.is_empty() {
                return Err(DebuggerError::BadInput(
                    "a file name is missing before ':'".into(),
                ));
            }
            return Ok(Location::Line {
                file: file.to_owned(),
                line,
            });
        }
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(DebuggerError::BadInput(format!(
                "'{text}' is neither 0xADDRESS, FILE:LINE nor a function name"
            )));
        }
        Ok(Location::Function(text.to_owned()))
    }
}

/// Parses an address given as "0x..." (or decimal): GraphQL Int has only 32 signed bits.
pub fn parse_address(text: &str) -> Result<u64, DebuggerError> {
    parse_u64(text).ok_or_else(|| DebuggerError::BadInput(format!("'{text}' is not an address")))
}

/// Where the CPU stopped, in source terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePosition {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// GDB's memory-map document for a board, so that `load` and hardware breakpoints
/// know flash from RAM.
pub fn memory_map_xml(board: &BoardTemplate) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE memory-map PUBLIC \"+//IDN gnu.org//DTD GDB Memory Map V1.0//EN\" \"http://sourceware.org/gdb/gdb-memory-map.dtd\">\n<memory-map>\n",
    );
    for region in &board.memory {
        match region.kind {
            MemoryKind::Flash => xml.push_str(&format!(
                "  <memory type=\"flash\" start=\"0x{:x}\" length=\"0x{:x}\">\n    <property name=\"blocksize\">0x400</property>\n  </memory>\n",
                region.start, region.size
            )),
            MemoryKind::Rom => xml.push_str(&format!(
                "  <memory type=\"rom\" start=\"0x{:x}\" length=\"0x{:x}\"/>\n",
                region.start, region.size
            )),
            MemoryKind::Ram => xml.push_str(&format!(
                "  <memory type=\"ram\" start=\"0x{:x}\" length=\"0x{:x}\"/>\n",
                region.start, region.size
            )),
        }
    }
    xml.push_str("</memory-map>\n");
    xml
}

/// How long a ticket for one of the server's own GDBs stays open: it connects as it
/// starts.
const SERVER_CLIENT_TICKET: Duration = Duration::from_secs(30);

/// Who may attach to a session's endpoints, and with what.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAccess {
    /// Clients' unknown `monitor` commands reach QEMU's monitor (`--allow-raw-monitor`).
    pub raw_monitor: bool,
    /// Plain connections are refused; clients come through `createAttachTicket`, which
    /// checks the caller's key (`--auth required`).
    pub tickets_only: bool,
}

pub struct Debugger {
    gateway: Gateway,
    /// Clients' unknown `monitor` commands reach QEMU's monitor: no tickets then.
    raw_monitor: bool,
    /// The gateway's endpoint refuses plain connections (`ClientAccess`).
    tickets_only: bool,
    elf: PathBuf,
    symbols: OnceCell<Arc<LineMap>>,
    /// The GDB behind the symbolic API, while it runs; it goes with the debugger.
    symbolic: Symbolic,
}

impl Debugger {
    /// Starts the gateway in front of the emulator's stub; it connects to the stub only
    /// when a client or the API needs it, or, answering the guest's semihosting, for
    /// the emulator's life from the first [`DebugClient::halt`] on.
    ///
    /// Clients connect to `listener`, which the session binds and keeps (a duplicate)
    /// so that its address outlives this machine's gateway (hibernation).
    pub async fn start(
        stub: &Path,
        listener: std::net::TcpListener,
        access: ClientAccess,
        audit: Option<virserver_gateway::AuditSink>,
        board: &BoardTemplate,
        elf: PathBuf,
        semihosting: Option<SemihostingConfig>,
    ) -> Result<Self, DebuggerError> {
        let mut config = GatewayConfig::new(stub);
        config.listen = listener.local_addr().map_err(GatewayError::Io)?;
        config.memory_map_xml = Some(memory_map_xml(board));
        config.semihosting = semihosting;
        config.raw_monitor = access.raw_monitor;
        config.tickets_only = access.tickets_only;
        config.audit = audit;
        config.round_trips = Some(crate::metrics::gateway_round_trips());
        Ok(Self {
            gateway: Gateway::start_on(config, listener).await?,
            raw_monitor: access.raw_monitor,
            tickets_only: access.tickets_only,
            elf,
            symbols: OnceCell::new(),
            symbolic: Symbolic::default(),
        })
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn client(&self) -> DebugClient {
        self.gateway.client()
    }

    /// The program the session runs.
    pub fn elf(&self) -> &Path {
        &self.elf
    }

    pub fn symbolic(&self) -> &Symbolic {
        &self.symbolic
    }

    /// A one-time address for one GDB connection within `ttl`. Refused with raw monitor
    /// access on: a ticket is how the endpoint is handed to someone reachable only
    /// through the API (under tenancy, a user trusted with one session), and raw HMP
    /// would give them the host. Raw access is a local developer's mode, whose clients
    /// connect to the loopback endpoint directly.
    pub async fn create_ticket(
        &self,
        ttl: Duration,
        user: &str,
    ) -> Result<SocketAddr, DebuggerError> {
        if self.raw_monitor {
            return Err(DebuggerError::TicketsWithRawMonitor);
        }
        Ok(self
            .gateway
            .create_ticket(ttl, Some(user.to_owned()))
            .await?)
    }

    /// Where one of the server's own GDBs (a DAP bridge's, the symbolic API's) attaches:
    /// the gateway's endpoint, or, when that takes tickets only, a ticket of its own
    /// (used at once: the GDB is started with it).
    /// `user` names it in the gateway's status.
    pub async fn server_client_address(&self, user: &str) -> Result<SocketAddr, DebuggerError> {
        if self.tickets_only {
            Ok(self
                .gateway
                .create_ticket(SERVER_CLIENT_TICKET, Some(user.to_owned()))
                .await?)
        } else {
            Ok(self.gateway.address())
        }
    }

    pub async fn symbols(&self) -> Result<Arc<LineMap>, DebuggerError> {
        self.symbols
            .get_or_try_init(|| async {
                let bytes = tokio::fs::read(&self.elf)
                    .await
                    .map_err(|e| DebuggerError::NoDebugInfo(e.to_string()))?;
                let map = tokio::task::spawn_blocking(move || LineMap::from_elf(&bytes))
                    .await
                    .map_err(|e| DebuggerError::NoDebugInfo(e.to_string()))?
                    .map_err(|e: LineMapError| DebuggerError::NoDebugInfo(e.to_string()))?;
                Ok(Arc::new(map))
            })
            .await
            .cloned()
    }

    /// The code address of a location.
    pub async fn resolve(&self, location: &Location) -> Result<CodeLocation, DebuggerError> {
        match location {
            Location::Address(address) => {
                let position = self.describe(*address).await;
                Ok(CodeLocation {
                    address: *address,
                    file: position.file.unwrap_or_default(),
                    line: position.line.unwrap_or(0),
                })
            }
            Location::Line { file, line } => Ok(self.symbols().await?.line_address(file, *line)?),
            Location::Function(name) => Ok(self.symbols().await?.function_address(name)?),
        }
    }

    /// Function, file and line of an address, as far as the DWARF tells.
    pub async fn describe(&self, address: u64) -> SourcePosition {
        let Ok(symbols) = self.symbols().await else {
            return SourcePosition::default();
        };
        let (file, line) = symbols
            .lookup(address)
            .map(|(file, line)| (Some(file.to_owned()), Some(line)))
            .unwrap_or_default();
        SourcePosition {
            function: symbols.function_at(address).map(str::to_owned),
            file,
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<Location>) {
        assert_eq!(Location::parse(text).ok(), expected, "{text}");
    }

    #[test]
    fn locations_parse() {
        check("0x8000_0000", Some(Location::Address(0x8000_0000)));
        check("main", Some(Location::Function("main".into())));
        check(
            "programs/hello.c:18",
            Some(Location::Line {
                file: "programs/hello.c".into(),
                line: 18,
            }),
        );
        check("hello.c:x", None);
        check(":3", None);
        check("0xZZ", None);
        check("two words", None);
        check("", None);
    }

    #[test]
    fn memory_map_names_flash_with_a_block_size() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/lm3s6965evb.yaml"),
        )
        .unwrap();
        let board = BoardTemplate::parse("lm3s", &text).unwrap();
        let xml = memory_map_xml(&board);
        assert!(
            xml.contains("<memory type=\"flash\" start=\"0x0\" length=\"0x40000\">"),
            "{xml}"
        );
        assert!(xml.contains("<memory type=\"ram\" start=\"0x20000000\" length=\"0x10000\"/>"));
    }
}
