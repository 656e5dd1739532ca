//! Symbolic debugging for the API (backtrace, locals, expressions, assignments) by a
//! GDB the server runs: the gateway speaks registers and bytes, and turning those into
//! frames, variables and C types takes a debugger, which the server does not
//! reimplement.
//!
//! Each powered session gets at most one `gdb --interpreter=mi3`, started on the first
//! symbolic request with the session's ELF and attached to the session's gateway like
//! any other client (`-target-select extended-remote`). It lives in the session's
//! [`Debugger`], so it is killed when that goes (power off, delete, a new program);
//! one that died or lost its link is replaced by the next request. Requests are
//! serialised per session and bounded in time, and a GDB that does not answer in time
//! is killed. The wire format is `virserver-mi`'s: every user text goes out as one
//! quoted argument, and no MI text comes back to the client.
//!
//! GDB only reads and writes a halted target here; it never resumes it. A running
//! target is refused before GDB is asked (the gateway knows the run state), because a
//! client's request to a running target waits in the mux for the next stop. The target
//! runs and stops behind GDB's back (the API and other clients resume it), so each
//! request first drops GDB's register and frame caches; memory caches are off.
//!
//! What GDB is kept from doing for a user who types an expression: calling target
//! functions (`may-call-functions off`: that would resume the target), and GDB's own
//! convenience functions and variables (`$_...`), because GDB 14's `$_shell` runs a
//! host command. Init files, auto-loaded scripts from the uploaded ELF and debuginfod
//! are off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};
use virserver_mi::{Command, Decoder, Record, ResultClass, ResultRecord, StreamKind};

use crate::debugger::Debugger;
use crate::gdb::confine::confine;
use crate::gdb::{GdbError, GdbLocator};

/// How long GDB may take to start, load the ELF and attach.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may take once GDB runs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest expression, name or value accepted.
const MAX_EXPRESSION: usize = 4096;
/// The most frames a backtrace lists.
const MAX_FRAMES: u32 = 256;
/// The longest GDB message passed on to a client.
const MAX_MESSAGE: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum SymbolicError {
    #[error(transparent)]
    Unavailable(#[from] GdbError),
    #[error("the target is running: halt it (or wait for a breakpoint) first")]
    NotHalted,
    #[error("no symbols for this program: {0}")]
    NoSymbols(String),
    #[error("{0}")]
    BadExpression(String),
    #[error("there is no frame {0}")]
    NoSuchFrame(u32),
    #[error("GDB failed: {0}; the next request starts a new one")]
    Failed(String),
    #[error("GDB did not answer within {0:?} and was stopped; the next request starts a new one")]
    Timeout(Duration),
}

/// One frame of a backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub level: u32,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// "0x..."
    pub pc: String,
}

/// An argument or local variable of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub value: String,
    pub type_name: String,
}

/// The value of an expression, as GDB prints it, and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub value: String,
    pub type_name: String,
}

/// A session's GDB, while it runs; held by the session's [`Debugger`].
#[derive(Default)]
pub struct Symbolic {
    /// Also the lock that serialises requests.
    process: tokio::sync::Mutex<Option<MiProcess>>,
}

/// The call stack of a halted session, innermost frame first.
pub async fn backtrace(gdb: &GdbLocator, debugger: &Debugger) -> Result<Vec<Frame>, SymbolicError> {
    request(gdb, debugger, async |mi: &mut MiProcess| {
        mi.backtrace().await
    })
    .await
}

/// Arguments, then locals, of frame `frame`.
pub async fn locals(
    gdb: &GdbLocator,
    debugger: &Debugger,
    frame: u32,
) -> Result<Vec<Variable>, SymbolicError> {
    request(gdb, debugger, async |mi: &mut MiProcess| {
        mi.locals(frame).await
    })
    .await
}

/// An expression in the scope of frame `frame`.
pub async fn evaluate(
    gdb: &GdbLocator,
    debugger: &Debugger,
    expression: &str,
    frame: u32,
) -> Result<Value, SymbolicError> {
    checked(expression)?;
    request(gdb, debugger, async |mi: &mut MiProcess| {
        mi.evaluate(expression, frame).await
    })
    .await
}

/// Assigns `value` (an expression) to `name` (an lvalue) in frame `frame`; returns the
/// new value.
pub async fn set_variable(
    gdb: &GdbLocator,
    debugger: &Debugger,
    name: &str,
    value: &str,
    frame: u32,
) -> Result<Value, SymbolicError> {
    checked(name)?;
    checked(value)?;
    request(gdb, debugger, async |mi: &mut MiProcess| {
        mi.assign(name, value, frame).await
    })
    .await
}

/// Refuses what GDB must not see from a user (see the module doc). Quoting is
/// `virserver-mi`'s; control characters are refused here too, for a clear message.
fn checked(text: &str) -> Result<(), SymbolicError> {
    if text.trim().is_empty() {
        return Err(SymbolicError::BadExpression(
            "the expression is empty".into(),
        ));
    }
    if text.len() > MAX_EXPRESSION {
        return Err(SymbolicError::BadExpression(format!(
            "the expression is longer than {MAX_EXPRESSION} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(SymbolicError::BadExpression(
            "control characters (new lines, tabs, ...) are not allowed in an expression".into(),
        ));
    }
    if text.contains("$_") {
        return Err(SymbolicError::BadExpression(
            "GDB's convenience functions and variables ($_...) are not available".into(),
        ));
    }
    Ok(())
}

/// Runs `work` on the session's GDB (started if needed) within [`REQUEST_TIMEOUT`].
async fn request<T>(
    gdb: &GdbLocator,
    debugger: &Debugger,
    work: impl AsyncFnOnce(&mut MiProcess) -> Result<T, SymbolicError>,
) -> Result<T, SymbolicError> {
    ensure_halted(debugger).await?;
    let mut slot = debugger.symbolic().process.lock().await;
    if slot.as_mut().is_some_and(|mi| !mi.usable()) {
        tracing::warn!("the session's GDB exited or lost its link; starting another");
        *slot = None;
    }
    let mi = match &mut *slot {
        Some(mi) => mi,
        None => slot.insert(start(gdb, debugger).await?),
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work(mi)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => {
            if matches!(error, SymbolicError::Failed(_)) || !mi.usable() {
                *slot = None;
            }
            Err(error)
        }
        Err(_) => {
            // Killed on drop. If the target was resumed meanwhile, GDB's request was
            // waiting in the mux for the next stop: say so.
            *slot = None;
            ensure_halted(debugger).await?;
            Err(SymbolicError::Timeout(REQUEST_TIMEOUT))
        }
    }
}

async fn ensure_halted(debugger: &Debugger) -> Result<(), SymbolicError> {
    match debugger.client().is_halted().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(SymbolicError::NotHalted),
        Err(error) => Err(SymbolicError::Failed(format!("the gateway: {error}"))),
    }
}

/// Starts GDB with the session's ELF and attaches it to the session's gateway.
async fn start(locator: &GdbLocator, debugger: &Debugger) -> Result<MiProcess, SymbolicError> {
    let gdb = locator.get().await?;
    // The DWARF the API itself uses; without it GDB would answer "??" everywhere.
    debugger
        .symbols()
        .await
        .map_err(|error| SymbolicError::NoSymbols(error.to_string()))?;
    let address = debugger
        .server_client_address("the symbolic API")
        .await
        .map_err(|error| SymbolicError::Failed(error.to_string()))?;
    let gateway = reachable(address);
    let mut mi = MiProcess::spawn(&gdb.path, debugger.elf(), gateway.port())?;
    let target = gateway.to_string();
    let elf = debugger.elf().display().to_string();
    let setup = async {
        for setting in [
            "confirm off",
            "pagination off",
            "width 0",
            "height 0",
            "auto-load off",
            "print entry-values no",
            "may-call-functions off",
            "stack-cache off",
            "code-cache off",
            "tcp connect-timeout 10",
        ] {
            let mut command = Command::new("gdb-set");
            for word in setting.split(' ') {
                command = command.word(word);
            }
            // Each one matters (may-call-functions keeps the target halted): a GDB
            // that lacks one is not used.
            mi.expect_done(&command)
                .await
                .map_err(|error| match error {
                    SymbolicError::BadExpression(message) => {
                        SymbolicError::Failed(format!("`set {setting}` failed: {message}"))
                    }
                    other => other,
                })?;
        }
        // A GDB built without debuginfod has the setting and refuses only "on"; older
        // ones lack it: either way nothing is fetched.
        let debuginfod = Command::new("gdb-set").word("debuginfod").word("enabled");
        mi.command(&debuginfod.word("off")).await?;
        mi.expect_done(&Command::new("file-exec-and-symbols").arg(&elf))
            .await
            .map_err(|error| match error {
                SymbolicError::BadExpression(message) => SymbolicError::NoSymbols(message),
                other => other,
            })?;
        let attach = Command::new("target-select")
            .word("extended-remote")
            .word(&target);
        let reply = mi.command(&attach).await?;
        match reply.record.class {
            ResultClass::Connected | ResultClass::Done => Ok(()),
            _ => Err(SymbolicError::Failed(format!(
                "cannot attach to the session's gateway: {}",
                clean(reply.record.error_message().unwrap_or("no reason given"))
            ))),
        }
    };
    match tokio::time::timeout(START_TIMEOUT, setup).await {
        Ok(Ok(())) => {
            mi.connected = true;
            tracing::info!(gdb = %gdb.path.display(), %target, "symbolic GDB attached");
            Ok(mi)
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(SymbolicError::Timeout(START_TIMEOUT)),
    }
}

/// The gateway's address as something to connect to (it may listen on all addresses).
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port())
        }
        _ => address,
    }
}

/// A GDB's message for a client: one line, bounded.
fn clean(message: &str) -> String {
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

/// `--thread T --frame N` before a command's own arguments.
fn in_frame(operation: &str, thread: &str, frame: u32) -> Command {
    Command::new(operation)
        .word("--thread")
        .word(thread)
        .word("--frame")
        .word(frame.to_string())
}

/// An answer and the console text GDB printed before it.
struct Reply {
    record: ResultRecord,
    console: String,
}

impl Reply {
    /// The `value` GDB answered, with its type.
    fn value(&self, type_name: String) -> Result<Value, SymbolicError> {
        let value = self
            .record
            .results
            .get_str("value")
            .ok_or_else(|| SymbolicError::Failed("no value in GDB's answer".into()))?;
        Ok(Value {
            value: value.to_owned(),
            type_name,
        })
    }
}

/// One running `gdb --interpreter=mi3`.
struct MiProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    decoder: Decoder,
    next_token: u64,
    /// Attached to the gateway; false once GDB reports the link gone.
    connected: bool,
}

impl MiProcess {
    fn spawn(gdb: &Path, elf: &Path, gateway_port: u16) -> Result<Self, SymbolicError> {
        let mut command = Process::new(gdb);
        command
            .args(["--interpreter=mi3", "-q", "-nx"])
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Confined like the DAP endpoint's GDB: API users are not trusted with the host.
        let prepared = confine(&mut command, gdb, elf, gateway_port)
            .map_err(|error| SymbolicError::Failed(format!("cannot confine GDB: {error}")))?;
        let mut child = command.spawn().map_err(|error| {
            SymbolicError::Failed(format!("cannot run {}: {error}", gdb.display()))
        })?;
        drop(prepared);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SymbolicError::Failed("GDB's pipes are missing".into()));
        };
        Ok(Self {
            child,
            stdin,
            stdout,
            decoder: Decoder::new(),
            next_token: 1,
            connected: false,
        })
    }

    /// Still running and attached.
    fn usable(&mut self) -> bool {
        self.connected && matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one command and reads up to its answer.
    async fn command(&mut self, command: &Command) -> Result<Reply, SymbolicError> {
        let token = self.next_token;
        self.next_token += 1;
        let line = command
            .encode(token)
            .map_err(|error| SymbolicError::BadExpression(error.to_string()))?;
        let exited = |error: std::io::Error| SymbolicError::Failed(format!("GDB exited ({error})"));
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(exited)?;
        self.stdin.flush().await.map_err(exited)?;
        let mut console = String::new();
        let mut buffer = [0u8; 8192];
        loop {
            while let Some(record) = self.decoder.next_record() {
                match record {
                    Ok(Record::Result(record)) if record.token == Some(token) => {
                        return Ok(Reply { record, console });
                    }
                    Ok(Record::Stream {
                        kind: StreamKind::Console,
                        text,
                    }) => {
                        if console.len() < 64 * 1024 {
                            console.push_str(&text);
                        }
                    }
                    Ok(Record::Async(record)) if record.class == "thread-group-exited" => {
                        self.connected = false;
                    }
                    Ok(other) => tracing::trace!(?other, "GDB/MI"),
                    Err(error) => tracing::debug!(%error, "not an MI record from GDB"),
                }
            }
            let read = self.stdout.read(&mut buffer).await.map_err(exited)?;
            if read == 0 {
                return Err(SymbolicError::Failed("GDB exited".into()));
            }
            self.decoder.feed(&buffer[..read]);
        }
    }

    /// A command that must answer `^done`; an `^error` is the user's expression's.
    async fn expect_done(&mut self, command: &Command) -> Result<Reply, SymbolicError> {
        let reply = self.command(command).await?;
        match reply.record.class {
            ResultClass::Done => Ok(reply),
            ResultClass::Error => Err(self.gdb_error(&reply.record)),
            other => Err(SymbolicError::Failed(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// What an `^error` means for the client.
    fn gdb_error(&self, record: &ResultRecord) -> SymbolicError {
        let message = clean(record.error_message().unwrap_or("GDB gave no reason"));
        if !self.connected
            || message.starts_with("No registers")
            || message.contains("Remote connection closed")
            || message.contains("not being run")
        {
            return SymbolicError::Failed(format!("GDB lost the target: {message}"));
        }
        if message.starts_with("No symbol table is loaded") {
            return SymbolicError::NoSymbols(message);
        }
        SymbolicError::BadExpression(message)
    }

    /// Forgets what GDB knows of the target's state (it ran since, behind GDB's back)
    /// and returns the current thread, for `--thread`.
    async fn refresh(&mut self) -> Result<String, SymbolicError> {
        let flush = Command::new("interpreter-exec")
            .arg("console")
            .arg("maintenance flush register-cache");
        self.expect_done(&flush).await?;
        let threads = self.expect_done(&Command::new("thread-info")).await?;
        threads
            .record
            .results
            .get_str("current-thread-id")
            .map(str::to_owned)
            .ok_or_else(|| SymbolicError::Failed("GDB knows no current thread".into()))
    }

    /// Runs a frame-bound command; GDB's "Invalid frame id" becomes [`SymbolicError::NoSuchFrame`].
    async fn framed(&mut self, command: Command, frame: u32) -> Result<Reply, SymbolicError> {
        match self.expect_done(&command).await {
            Err(SymbolicError::BadExpression(message)) if message.starts_with("Invalid frame") => {
                Err(SymbolicError::NoSuchFrame(frame))
            }
            other => other,
        }
    }

    async fn backtrace(&mut self) -> Result<Vec<Frame>, SymbolicError> {
        let thread = self.refresh().await?;
        let command = Command::new("stack-list-frames")
            .word("--thread")
            .word(thread)
            .word("0")
            .word((MAX_FRAMES - 1).to_string());
        let reply = self.expect_done(&command).await?;
        let stack = reply
            .record
            .results
            .get("stack")
            .ok_or_else(|| SymbolicError::Failed("no stack in GDB's answer".into()))?;
        Ok(stack
            .elements()
            .into_iter()
            .map(|frame| Frame {
                level: frame
                    .get_str("level")
                    .and_then(|level| level.parse().ok())
                    .unwrap_or(0),
                function: frame
                    .get_str("func")
                    .filter(|name| *name != "??")
                    .map(str::to_owned),
                file: frame.get_str("file").map(str::to_owned),
                line: frame.get_str("line").and_then(|line| line.parse().ok()),
                pc: frame
                    .get_str("addr")
                    .and_then(|addr| u64::from_str_radix(addr.trim_start_matches("0x"), 16).ok())
                    .map(|pc| format!("0x{pc:x}"))
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn locals(&mut self, frame: u32) -> Result<Vec<Variable>, SymbolicError> {
        // --simple-values has the types (and values of scalars), --all-values every
        // value; both list the same variables in the same order.
        let thread = self.refresh().await?;
        let list = |values| in_frame("stack-list-variables", &thread, frame).word(values);
        let typed = self.framed(list("--simple-values"), frame).await?;
        let valued = self.framed(list("--all-values"), frame).await?;
        let variables = |reply: &Reply| {
            reply
                .record
                .results
                .get("variables")
                .map(|variables| {
                    variables
                        .elements()
                        .into_iter()
                        .map(|variable| {
                            let field =
                                |name| variable.get_str(name).unwrap_or_default().to_owned();
                            (field("name"), field("type"), field("value"))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let values = variables(&valued);
        Ok(variables(&typed)
            .into_iter()
            .enumerate()
            .map(|(index, (name, type_name, simple))| {
                let value = values
                    .get(index)
                    .filter(|(other, _, _)| *other == name)
                    .map(|(_, _, value)| value.clone())
                    .unwrap_or(simple);
                Variable {
                    name,
                    value,
                    type_name,
                }
            })
            .collect())
    }

    /// The type through `whatis` first (no side effects: a bad expression is refused
    /// before anything is evaluated), then the value, evaluated once.
    async fn evaluate(&mut self, expression: &str, frame: u32) -> Result<Value, SymbolicError> {
        let thread = self.refresh().await?;
        let whatis = in_frame("interpreter-exec", &thread, frame)
            .arg("console")
            .arg(format!("whatis {expression}"));
        let typed = self.framed(whatis, frame).await?;
        let type_name = typed
            .console
            .lines()
            .find_map(|line| line.strip_prefix("type = "))
            .map(str::to_owned)
            .ok_or_else(|| SymbolicError::BadExpression("the expression has no type".into()))?;
        let evaluate = in_frame("data-evaluate-expression", &thread, frame).arg(expression);
        let reply = self.framed(evaluate, frame).await?;
        reply.value(type_name)
    }

    /// Through a variable object: `-var-assign` takes the value as one expression and
    /// refuses what cannot be assigned (an rvalue, an aggregate).
    async fn assign(
        &mut self,
        name: &str,
        value: &str,
        frame: u32,
    ) -> Result<Value, SymbolicError> {
        let thread = self.refresh().await?;
        let create = in_frame("var-create", &thread, frame)
            .arg("-")
            .arg("*")
            .arg(name);
        let created = self.framed(create, frame).await?;
        let results = &created.record.results;
        let (Some(object), Some(type_name)) = (results.get_str("name"), results.get_str("type"))
        else {
            return Err(SymbolicError::Failed(
                "no variable object in GDB's answer".into(),
            ));
        };
        let (object, type_name) = (object.to_owned(), type_name.to_owned());
        let assigned = self
            .expect_done(&Command::new("var-assign").arg(&object).arg(value))
            .await;
        let deleted = self
            .expect_done(&Command::new("var-delete").arg(&object))
            .await;
        let assigned = assigned?;
        deleted?;
        assigned.value(type_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_that_gdb_must_not_see_is_refused() {
        for text in [
            "",
            "  ",
            "1\n-gdb-exit",
            "1\r\n-gdb-exit",
            "a\tb",
            "$_shell(\"id\")",
            "$_as_string(x)",
        ] {
            assert!(
                matches!(checked(text), Err(SymbolicError::BadExpression(_))),
                "{text:?}"
            );
        }
        assert!(matches!(
            checked(&"x".repeat(MAX_EXPRESSION + 1)),
            Err(SymbolicError::BadExpression(_))
        ));
        for text in [
            "tick_count + 1",
            "1\"; shell echo pwned",
            "$pc",
            "*(int *)0x20000000",
            "é",
        ] {
            assert!(checked(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(
            clean(" No symbol \"x\"\nin context. "),
            "No symbol \"x\" in context."
        );
        let long = clean(&"é".repeat(MAX_MESSAGE + 10));
        assert_eq!(long.chars().count(), MAX_MESSAGE + 3);
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:4000".parse().unwrap()),
            "127.0.0.1:4000".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:4000".parse().unwrap()),
            "[::1]:4000".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.2:4000".parse().unwrap()),
            "10.0.0.2:4000".parse().unwrap()
        );
    }
}
