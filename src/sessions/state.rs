//! Session states and the events that move between them. The names are the API's
//! (SessionState enum); they are stored as these strings.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionState {
    Created,
    Running,
    Paused,
    Stopped,
    Exited,
    Crashed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Created => "CREATED",
            SessionState::Running => "RUNNING",
            SessionState::Paused => "PAUSED",
            SessionState::Stopped => "STOPPED",
            SessionState::Exited => "EXITED",
            SessionState::Crashed => "CRASHED",
        }
    }

    /// Unknown strings (a newer server's states) read as CRASHED: the safe reading.
    pub fn parse(text: &str) -> Self {
        match text {
            "CREATED" => SessionState::Created,
            "RUNNING" => SessionState::Running,
            "PAUSED" => SessionState::Paused,
            "STOPPED" => SessionState::Stopped,
            "EXITED" => SessionState::Exited,
            _ => SessionState::Crashed,
        }
    }

    /// Whether an emulator process belongs to a session in this state.
    pub fn is_powered(self) -> bool {
        matches!(self, SessionState::Running | SessionState::Paused)
    }
}

/// What happened to a session; every event is kept in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    Created,
    PoweredOn,
    PoweredOff,
    Paused,
    Resumed,
    Reset,
    ProgramLoaded,
    Exited,
    Crashed,
    Deleted,
    /// The CPU stopped under the debugger (breakpoint, step, watchpoint, interrupt).
    Halted,
    /// A snapshot was loaded (or booted into): the session is PAUSED at its point.
    Restored,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Created,
        EventKind::PoweredOn,
        EventKind::PoweredOff,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Reset,
        EventKind::ProgramLoaded,
        EventKind::Exited,
        EventKind::Crashed,
        EventKind::Deleted,
        EventKind::Halted,
        EventKind::Restored,
    ];

    /// Unknown strings (a newer server's kinds) read as None.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "CREATED",
            EventKind::PoweredOn => "POWERED_ON",
            EventKind::PoweredOff => "POWERED_OFF",
            EventKind::Paused => "PAUSED",
            EventKind::Resumed => "RESUMED",
            EventKind::Reset => "RESET",
            EventKind::ProgramLoaded => "PROGRAM_LOADED",
            EventKind::Exited => "EXITED",
            EventKind::Crashed => "CRASHED",
            EventKind::Deleted => "DELETED",
            EventKind::Halted => "HALTED",
            EventKind::Restored => "RESTORED",
        }
    }
}

/// One event as broadcast to subscribers (and, with Redis, to other nodes as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionEvent {
    pub session_id: String,
    pub kind: EventKind,
    pub state: SessionState,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Where and why the CPU stopped, for HALTED events.
    pub stop: Option<StopInfo>,
}

/// A debugger stop in source terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopInfo {
    /// breakpoint, step, watchpoint, interrupt, signal N, exited N, terminated N.
    pub reason: String,
    pub pc: Option<u64>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}
