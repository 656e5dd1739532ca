//! What the gateway counts of itself, for an operator's metrics: reads answered from
//! the cache or not ([`Stats`], in `GatewayStatus`), and each client request's round
//! trip, from its packet to its answer. The mux has no clock, so it only marks the two
//! ends ([`Action::RequestStarted`], [`Action::RequestAnswered`]) and the driver times
//! them. Only requests answered without the target running are timed: the answer to a
//! continue or a step is the next stop, which says how long the program ran, not how
//! fast the gateway is.

use virserver_rsp::packets::Command;

use super::{Action, ClientId, Mux};

/// Counted since the gateway started.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl Mux {
    /// A request of `client` is being handled; timed unless it resumes the target. A
    /// request deferred and handled again keeps its first start.
    pub(crate) fn request_started(&mut self, client: ClientId, command: &Command) {
        if command.is_resume() {
            return;
        }
        if let Some(state) = self.clients.get_mut(&client)
            && !state.timed
        {
            state.timed = true;
            self.reports.push_back(Action::RequestStarted { client });
        }
    }

    /// Something was sent to `client`: the answer to its timed request, if one is.
    pub(crate) fn request_answered(&mut self, client: ClientId) {
        if let Some(state) = self.clients.get_mut(&client)
            && state.timed
        {
            state.timed = false;
            self.reports.push_back(Action::RequestAnswered { client });
        }
    }
}
