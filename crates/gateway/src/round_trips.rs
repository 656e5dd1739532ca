//! Where the gateway reports how long each client request took, from its packet to
//! its answer ([`RoundTripSink`]), for an operator's latency histogram. Requests that
//! resume the target are not timed (`mux/stats.rs`). Called on the gateway's thread:
//! record, do not block.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Receives every timed request's round trip.
#[derive(Clone)]
pub struct RoundTripSink(pub Arc<dyn Fn(Duration) + Send + Sync>);

impl fmt::Debug for RoundTripSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoundTripSink")
    }
}

impl PartialEq for RoundTripSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RoundTripSink {}
