//! Hibernation: sessions cost disk, not memory. A powered QEMU holds tens of MB, yet
//! most of a lab's sessions sit PAUSED for hours. With `--hibernate-after`, a PAUSED
//! session idle that long has its machine saved to an image in its run dir
//! (`hibernation.qcow2`, through the backend's snapshots) and its emulator ended; it
//! stays PAUSED in the API (`Session.hibernated` says it sleeps) and wakes from the
//! image when anything needs the CPU: a power, debug, UART or snapshot operation
//! (every such path calls [`SessionService::wake_locked`] under the session's
//! `control` lock), or a GDB client connecting.
//!
//! Nothing a client can observe changes but the delay:
//! - the GDB endpoint keeps its address. The session binds the endpoint's socket
//!   itself and hands the gateway a duplicate (`Gateway::start_on`); the session's
//!   copy stays bound while no gateway runs, so a client's connection waits in its
//!   backlog while a waker task (watching the socket, never accepting) wakes the
//!   session, and the new gateway accepts it. Under auth the endpoint takes tickets
//!   only, so the waker closes a plain connection unread instead, as the gateway
//!   would, and the session sleeps on (a ticket wakes it). The DAP endpoint, which
//!   serves the GDB address, stays open too;
//! - no history rows: the machine's end and its wake record nothing;
//! - what the image would not carry keeps a session awake: an attached GDB client,
//!   an unused attach ticket (its client is on the way; hibernating would close the
//!   ticket's port), inserted breakpoints or watchpoints, files the guest holds open
//!   through semihosting, a recording or replay (snapshots are refused there), and
//!   coverage (the trace is of one emulator's run).
//!
//! A hibernated session survives a server restart: shutdown leaves it asleep, and
//! `reconcile` puts it to sleep again, on a new GDB port (the old one may be taken).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio_util::sync::DropGuard;
use virserver_gateway::GatewayStatus;

use super::{
    Boot, EventKind, Launched, Runtime, SessionError, SessionService, SessionState, clear_finished,
    power_off_locked,
};
use crate::backend::BackendError;
use crate::store::SessionRecord;

/// The image of a hibernated machine, in the session's run dir.
const HIBERNATION_IMAGE: &str = "hibernation.qcow2";

/// A sleeping session's machine: its image and the GDB endpoint it keeps.
pub(super) struct Hibernation {
    image: PathBuf,
    program_id: String,
    /// The endpoint's socket, bound all along; handed to the woken machine's gateway.
    listener: Option<std::net::TcpListener>,
    gdb: Option<SocketAddr>,
    /// Ends the waker when the hibernation ends (woken, powered off, shutdown).
    _waker: DropGuard,
}

impl Hibernation {
    /// Where GDB clients still attach.
    pub(super) fn gdb(&self) -> Option<SocketAddr> {
        self.gdb
    }
}

/// What the saved image would not carry: the session stays awake while it lasts.
fn in_use(status: &GatewayStatus) -> bool {
    !status.clients.is_empty()
        || status.open_tickets > 0
        || status.breakpoints > 0
        || status.open_files > 0
}

impl SessionService {
    fn hibernation_image(&self, id: &str) -> PathBuf {
        self.run_root.join(id).join(HIBERNATION_IMAGE)
    }

    /// Until shutdown, hibernates this node's sessions idle for `after` (checked a
    /// few times per `after`, between 0.1 and 5 s apart).
    pub fn hibernate_idle(self: &Arc<Self>, after: Duration) {
        let service: Weak<Self> = Arc::downgrade(self);
        let stopping = self.stopping.clone();
        let period = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        self.tracker.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stopping.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(service) = service.upgrade() else {
                    return;
                };
                let runtimes: Vec<Arc<Runtime>> =
                    service.lock_runtimes().values().cloned().collect();
                for runtime in runtimes {
                    if runtime.idle_for() < after {
                        continue;
                    }
                    if let Err(error) = service.hibernate_runtime(&runtime).await {
                        tracing::warn!(session = %runtime.id, %error, "cannot hibernate");
                        // Not tried again before another `after`.
                        runtime.touch();
                    }
                }
            }
        });
    }

    /// Hibernates the session now if it can sleep (PAUSED, nothing in use; see the
    /// module doc): true when it did. The hibernation loop calls this for idle
    /// sessions; benchmarks call it directly.
    pub async fn hibernate(self: &Arc<Self>, id: &str) -> Result<bool, SessionError> {
        let (_, runtime) = self.existing(id).await?;
        self.hibernate_runtime(&runtime).await
    }

    async fn hibernate_runtime(
        self: &Arc<Self>,
        runtime: &Arc<Runtime>,
    ) -> Result<bool, SessionError> {
        // A power operation under way is use.
        let Ok(mut control) = runtime.control.try_lock() else {
            return Ok(false);
        };
        clear_finished(&mut control);
        // Checked under the lock that shutdown takes after cancelling.
        if self.stopping.is_cancelled() {
            return Ok(false);
        }
        let Some(launched) = control.as_ref() else {
            return Ok(false);
        };
        if *runtime.state.lock().await != SessionState::Paused
            || runtime.replaying.load(Ordering::SeqCst)
        {
            return Ok(false);
        }
        if let Some(debugger) = &launched.debugger
            && in_use(&debugger.gateway().status())
        {
            // Idle counts from when the last of it ended.
            runtime.touch();
            return Ok(false);
        }
        let record = self.get(&runtime.id).await?;
        if record.record || record.replay_of.is_some() || record.coverage {
            return Ok(false);
        }
        let (Some(snapshots), Some(program_id)) = (
            launched.machine.snapshots(),
            record.current_program_id.clone(),
        ) else {
            return Ok(false);
        };
        let started = Instant::now();
        let image = self.hibernation_image(&record.id);
        let size = snapshots.save(&image).await?;
        // A client that attached during the save keeps the machine awake.
        if let Some(debugger) = &launched.debugger
            && in_use(&debugger.gateway().status())
        {
            let _ = tokio::fs::remove_file(&image).await;
            runtime.touch();
            return Ok(false);
        }
        runtime.hibernating.store(true, Ordering::SeqCst);
        if let Some(debugger) = &launched.debugger {
            // From here on only the session's copy of the socket is open, and nothing
            // accepts until the next gateway.
            debugger.gateway().close().await;
        }
        let mut launched: Launched = control.take().expect("checked above");
        let listener = launched.gdb_listener.take();
        let gdb = launched
            .debugger
            .as_ref()
            .map(|debugger| debugger.gateway().address());
        // Asleep before the machine ends, so that the session's endpoints never look
        // unpowered (the DAP endpoint closes when they do).
        let slept = self.sleep(runtime, image.clone(), program_id, listener, gdb);
        power_off_locked(&mut Some(launched)).await;
        if let Err(error) = slept {
            // The machine is gone and cannot be woken: say so.
            let _ = tokio::fs::remove_file(&image).await;
            return self.lost(runtime, "hibernation failed", error).await;
        }
        self.store.set_hibernated(&record.id, true).await?;
        tracing::info!(
            session = %record.id,
            size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "session hibernated"
        );
        Ok(true)
    }

    /// Leaves the session asleep on `image`, with a waker on its GDB socket.
    fn sleep(
        self: &Arc<Self>,
        runtime: &Runtime,
        image: PathBuf,
        program_id: String,
        listener: Option<std::net::TcpListener>,
        gdb: Option<SocketAddr>,
    ) -> Result<(), SessionError> {
        let waker = self.stopping.child_token();
        if let Some(listener) = &listener {
            let watched = listener.try_clone().map_err(BackendError::Io)?;
            watched.set_nonblocking(true).map_err(BackendError::Io)?;
            // SAFETY: the AsyncFd owns `watched`, an open socket whose descriptor stays
            // the same until the AsyncFd drops it.
            let watched = unsafe { AsyncFd::register_with_interest(watched, Interest::READABLE) }
                .map_err(|error| BackendError::Io(error.into()))?;
            let (service, id, cancelled) =
                (Arc::downgrade(self), runtime.id.clone(), waker.clone());
            let tickets_only = self.access.tickets_only;
            self.tracker.spawn(async move {
                loop {
                    let mut ready = tokio::select! {
                        () = cancelled.cancelled() => return,
                        ready = watched.readable() => match ready {
                            Ok(ready) => ready,
                            Err(_) => return,
                        },
                    };
                    if !tickets_only {
                        break;
                    }
                    // Under auth the endpoint takes tickets only (their own ports, and
                    // a ticket wakes the session): a plain connection is closed unread,
                    // as the gateway would, and wakes nothing.
                    if let Ok(accepted) = ready.try_io(|socket| socket.get_ref().accept()) {
                        match accepted {
                            Ok((refused, peer)) => {
                                drop(refused);
                                tracing::info!(session = %id, %peer, "plain GDB connection to a hibernated session refused (tickets only)");
                            }
                            Err(error) => tracing::debug!(session = %id, %error, "accept"),
                        }
                    }
                }
                // Not accepted: the connection waits for the woken gateway.
                drop(watched);
                let Some(service) = service.upgrade() else {
                    return;
                };
                if let Err(error) = service.wake(&id).await {
                    tracing::warn!(session = %id, %error, "a GDB client could not wake the session");
                }
            });
        }
        *runtime.lock_hibernation() = Some(Hibernation {
            image,
            program_id,
            listener,
            gdb,
            _waker: waker.drop_guard(),
        });
        Ok(())
    }

    async fn wake(&self, id: &str) -> Result<(), SessionError> {
        let (_, runtime) = self.existing(id).await?;
        let mut control = runtime.control.lock().await;
        self.wake_locked(&runtime, &mut control).await
    }

    /// Wakes a hibernated session (holding its `control` lock): its machine boots
    /// into the image, PAUSED, its gateway on the kept socket, and nothing is
    /// recorded. A session that cannot wake is CRASHED, with the reason. Counts as
    /// use: every operation that needs the CPU calls this first.
    pub(super) async fn wake_locked(
        &self,
        runtime: &Arc<Runtime>,
        control: &mut Option<Launched>,
    ) -> Result<(), SessionError> {
        runtime.touch();
        if runtime.lock_hibernation().is_none() {
            return Ok(());
        }
        let record = self.get(&runtime.id).await?;
        // The hibernation stays until the machine is up, so that the session's
        // endpoints never look unpowered; only the socket moves to the new gateway.
        let Some((image, program_id, listener)) =
            runtime.lock_hibernation().as_mut().map(|asleep| {
                (
                    asleep.image.clone(),
                    asleep.program_id.clone(),
                    asleep.listener.take(),
                )
            })
        else {
            return Ok(());
        };
        clear_finished(control);
        let started = Instant::now();
        runtime.hibernating.store(false, Ordering::SeqCst);
        let boot = Boot::Wake {
            image: image.clone(),
            listener,
        };
        let woken = self
            .launch(&record, runtime, control, &program_id, true, boot)
            .await;
        // Its waker ends with it.
        runtime.lock_hibernation().take();
        // The machine loaded a copy (or never will): the image has served.
        let _ = tokio::fs::remove_file(&image).await;
        self.store.set_hibernated(&runtime.id, false).await?;
        match woken {
            Ok(()) => {
                tracing::info!(
                    session = %runtime.id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "session woken"
                );
                Ok(())
            }
            Err(error) => {
                self.lost(runtime, "cannot wake from hibernation", error)
                    .await
            }
        }
    }

    /// A machine hibernation lost: CRASHED, with why.
    async fn lost<T>(
        &self,
        runtime: &Runtime,
        what: &str,
        error: SessionError,
    ) -> Result<T, SessionError> {
        let message = Some(format!("{what}: {error}"));
        self.record(
            runtime,
            EventKind::Crashed,
            SessionState::Crashed,
            None,
            message,
        )
        .await?;
        Err(error)
    }

    /// Ends a hibernation without waking (the session is powered off or deleted):
    /// true when the session was asleep. Its image is removed.
    pub(super) async fn forget_hibernation(&self, runtime: &Runtime) -> Result<bool, SessionError> {
        let Some(hibernation) = runtime.lock_hibernation().take() else {
            return Ok(false);
        };
        let _ = tokio::fs::remove_file(&hibernation.image).await;
        drop(hibernation);
        self.store.set_hibernated(&runtime.id, false).await?;
        Ok(true)
    }

    /// At start-up, a session that was hibernated when the server stopped sleeps on,
    /// with a new GDB endpoint; false when its image is gone (it is then lost).
    pub(super) async fn sleep_on(
        self: &Arc<Self>,
        record: &SessionRecord,
        runtime: &Arc<Runtime>,
    ) -> Result<bool, SessionError> {
        let image = self.hibernation_image(&record.id);
        let present = tokio::fs::try_exists(&image).await.unwrap_or(false);
        let (true, Some(program_id)) = (present, record.current_program_id.clone()) else {
            self.store.set_hibernated(&record.id, false).await?;
            return Ok(false);
        };
        let listener =
            std::net::TcpListener::bind((self.gdb_listen, 0)).map_err(BackendError::Io)?;
        let gdb = listener.local_addr().ok();
        self.sleep(runtime, image, program_id, Some(listener), gdb)?;
        Ok(true)
    }
}
