//! [`GatewayConfig`]: everything one session's gateway needs to start.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::semihosting::SemihostingConfig;

/// How to start a [`Gateway`](crate::Gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The emulator stub's unix socket (QEMU `-chardev socket,path=...`).
    pub upstream: PathBuf,
    /// Where GDB clients connect; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Served for `qXfer:memory-map:read` (the server builds it from the
    /// board); `None` leaves the object unadvertised.
    pub memory_map_xml: Option<String>,
    /// Cache registers and memory while halted and read ahead at each stop.
    /// Off only to measure raw forwarding.
    pub cache: bool,
    /// Writes queued for one client before it counts as too slow and is
    /// disconnected.
    pub client_queue: usize,
    /// How long connecting to the stub may take.
    pub connect_timeout: Duration,
    /// Pass `monitor` commands outside the gateway's allow-list to QEMU's
    /// monitor (HMP) as typed. HMP runs host commands (`migrate
    /// "exec:CMD"`), so only for clients trusted with the host: the server
    /// allows it with loopback GDB endpoints only.
    pub raw_monitor: bool,
    /// The stub sends the guest's semihosting calls as File-I/O requests
    /// (QEMU `target=gdb`): the gateway answers them under this policy and
    /// holds the stub's link for the emulator's life (QEMU drops such calls
    /// while nobody is attached). Attach with [`DebugClient::halt`] before
    /// the guest first runs.
    ///
    /// [`DebugClient::halt`]: crate::DebugClient::halt
    pub semihosting: Option<SemihostingConfig>,
    /// Refuse every connection to [`listen`](Self::listen): clients come only through
    /// tickets ([`Gateway::create_ticket`]), handed out by whoever decides who may
    /// debug (the server, when keys are required). A refused connection is closed
    /// before any of its bytes is read.
    ///
    /// [`Gateway::create_ticket`]: crate::Gateway::create_ticket
    pub tickets_only: bool,
    /// Told of every client operation an audit log records (attach, halt,
    /// resume, step, writes, breakpoints, monitor commands); `None`: nobody.
    pub audit: Option<crate::AuditSink>,
    /// Told how long each client request took that did not resume the target;
    /// `None`: nobody.
    pub round_trips: Option<crate::RoundTripSink>,
}

impl GatewayConfig {
    /// The defaults for a stub at `upstream`: listen on 127.0.0.1, any port.
    pub fn new(upstream: impl Into<PathBuf>) -> GatewayConfig {
        GatewayConfig {
            upstream: upstream.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            memory_map_xml: None,
            cache: true,
            client_queue: 256,
            connect_timeout: Duration::from_secs(5),
            raw_monitor: false,
            semihosting: None,
            tickets_only: false,
            audit: None,
            round_trips: None,
        }
    }
}
