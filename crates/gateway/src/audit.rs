//! Where the gateway reports what clients do ([`AuditSink`]), for an audit log kept
//! by whoever runs the gateway. The mux names the operations (`mux/audit.rs`); the
//! driver adds the client's user (the one its ticket was issued to) and calls the
//! sink on the gateway's thread, so the sink must not block: queue, do not write.

use std::fmt;
use std::sync::Arc;

/// One client operation, as the sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOperation {
    /// The gateway's number for the client.
    pub client: u64,
    /// Whom the client's ticket was issued to; `None` for a plain connection.
    pub user: Option<String>,
    /// `gdb.attach`, `gdb.detach`, `gdb.halt`, `gdb.resume`, `gdb.step`,
    /// `gdb.memoryWrite`, `gdb.registerWrite`, `gdb.breakpoint`, `gdb.monitor`.
    pub operation: &'static str,
    /// An address and length, a register, a breakpoint, a monitor command.
    pub detail: String,
}

/// Receives every [`GatewayOperation`].
#[derive(Clone)]
pub struct AuditSink(pub Arc<dyn Fn(GatewayOperation) + Send + Sync>);

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditSink")
    }
}

impl PartialEq for AuditSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AuditSink {}
