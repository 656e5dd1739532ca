//! What `/metrics` reads of the live sessions: each powered emulator's process, how
//! many GDB clients its gateway has and how its cache does. Read without waiting: a session in the middle of a
//! power operation (its control lock held) shows its process but no client count.

use super::SessionService;

/// One powered emulator of this node.
pub struct PoweredMachine {
    pub session_id: String,
    pub pid: Option<u32>,
    /// Its gateway's status; `None` when unknown right now.
    pub gateway: Option<virserver_gateway::status::GatewayStatus>,
}

impl SessionService {
    /// The emulators this node runs (hibernated sessions have none).
    pub fn powered_machines(&self) -> Vec<PoweredMachine> {
        let runtimes: Vec<_> = self.lock_runtimes().values().cloned().collect();
        runtimes
            .into_iter()
            .filter_map(|runtime| {
                let pid = {
                    let machine = runtime.machine.lock().unwrap_or_else(|p| p.into_inner());
                    let info = machine.as_ref().filter(|m| !m.supervisor.is_finished())?;
                    info.pid
                };
                if runtime.lock_hibernation().is_some() {
                    return None;
                }
                let gateway = runtime.control.try_lock().ok().and_then(|control| {
                    let debugger = control.as_ref()?.debugger.as_ref()?;
                    Some(debugger.gateway().status())
                });
                Some(PoweredMachine {
                    session_id: runtime.id.clone(),
                    pid,
                    gateway,
                })
            })
            .collect()
    }
}
