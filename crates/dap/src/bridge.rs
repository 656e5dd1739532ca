//! The bridge between one DAP client and one `gdb -i dap`, for one VirServer session.
//!
//! GDB does the debugging; the bridge does what GDB cannot know:
//!
//! - `launch` (`board`, `program`, `stopOnEntry`, `coverage`, `cwd`) and `attach`
//!   (`sessionId`) become session operations ([`Op`]), done by the driver. When the
//!   session is ready ([`Ready`]) GDB gets `cd CWD` and `file PROGRAM` first, so that
//!   breakpoints sent before `configurationDone` bind at once, then GDB's own `attach`
//!   with `target: HOST:PORT` (the session's gateway). GDB 16+ answers that `attach`
//!   only after `configurationDone`; its answer is the client's `launch` or `attach`
//!   response. GDB's `initialized` event is held until the symbols are loaded.
//! - After a launch, GDB's first stop (reason `attach`) is the entry: reported as
//!   `entry` with `stopOnEntry`, else swallowed and the CPU resumed.
//! - `disconnect` and `terminate` are the bridge's: a launched session is powered off
//!   (`terminateDebuggee`, default true for a launch), an attached one keeps running;
//!   GDB is then ended by the driver ([`Action::Close`]), which the gateway sees as a
//!   client leaving.
//! - Stops and resumes the client did not cause reach it: `continued` when another
//!   debugger or the API resumes the CPU it saw halted, `stopped` with reason `pause`
//!   when it halts again (and for GDB's report of a stop it did not ask for).
//! - `threads` while the CPU runs (which GDB's all-stop DAP refuses) is answered with
//!   the last stop's list.
//! - Once the session is ready the client gets a `virserverSession` event naming it.
//! - The console UART arrives as `output` events (category `stdout`) in order; chunks
//!   the subscription lost are reported, never dropped silently.
//! - GDB's exception breakpoint filters (Ada, C++) are dropped from its `initialize`
//!   answer: firmware raises neither.
//! - Sequence numbers: the bridge sends GDB requests of its own, so requests to GDB and
//!   messages to the client are renumbered; a GDB response goes back with the client's
//!   `request_seq` and command.
//! - With [`BridgeConfig::confined`] (a GDB on the server, driven by a client the server
//!   does not trust) requests that would reach the server's host are refused: Debug
//!   Console commands outside an allow-list (`shell`, `python`, `pipe`, `set logging`,
//!   `dump`, `source`, ... never run), GDB's `$_shell` function anywhere in a request,
//!   and `source` requests (GDB would read any file the firmware's DWARF names).

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};

/// How one bridge behaves.
#[derive(Debug, Clone, Default)]
pub struct BridgeConfig {
    /// A session's own endpoint: `launch` and `attach` both attach to this session.
    pub session: Option<String>,
    /// GDB runs on the server for a client the server does not trust.
    pub confined: bool,
    /// `board` and `program` for a `launch` that names none (the adapter's command
    /// line: `virserver dap --board B --program FW.elf`).
    pub launch_defaults: Option<(String, String)>,
    /// The session replays a recording: its CPU executes backwards. GDB's DAP has no
    /// `stepBack` or `reverseContinue`; the bridge offers them (`supportsStepBack`) and
    /// runs GDB's reverse commands for them.
    pub reverse: bool,
}

/// A session operation the driver performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a session on `board`, upload `program`, power it on halted.
    Launch {
        board: String,
        program: String,
        coverage: bool,
    },
    /// Find a session (and its program, for the symbols).
    Attach {
        session_id: String,
        /// A local copy of the program the client named, if any.
        program: Option<String>,
    },
    /// Power a launched session off.
    PowerOff { session_id: String },
}

/// What the driver found or made for a `launch` or `attach`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub session_id: String,
    /// The session's GDB gateway, `HOST:PORT`.
    pub gdb_address: String,
    /// The program's ELF, readable by GDB, for the symbols.
    pub program: String,
}

/// Why a session operation failed, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub String);

/// A stop or resume of the session's CPU, whoever caused it (another editor, a GDB
/// client, the API, or this client's own GDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNotice {
    Stopped,
    Resumed,
}

/// Whether the CPU runs, as this client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum View {
    #[default]
    Stopped,
    /// This client's GDB resumed it: GDB reports the stop itself.
    Running,
    /// Someone else resumed it while GDB thought it halted: the bridge reports the stop.
    RunningByOthers,
}

/// The requests that resume the CPU.
const RESUMES: &[&str] = &[
    "continue",
    "next",
    "stepIn",
    "stepOut",
    "stepBack",
    "reverseContinue",
    "goto",
];

/// Something that happened, fed to [`Bridge::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A message from the DAP client.
    Client(Value),
    /// A message from GDB.
    Gdb(Value),
    /// The operation asked for by the last [`Action::Op`] finished.
    OpDone(Result<Option<Ready>, OpError>),
    /// Console output of the session; `dropped` chunks were lost just before it.
    Uart { data: String, dropped: u64 },
    /// The client's stream was garbage that cannot be resynchronised.
    ClientGarbage(String),
    /// GDB's process ended.
    GdbExited(String),
    /// The session's CPU stopped or resumed.
    Run(RunNotice),
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    ToClient(Value),
    ToGdb(Value),
    Op(Op),
    /// End: stop GDB, close the client (after sending what came before).
    Close,
}

/// Who a request sent to GDB is for.
#[derive(Debug, Clone)]
enum Pending {
    /// The client's request `seq`, named `command` by the client.
    Client { seq: u64, command: String },
    /// `cd` and `file` before the attach.
    Setup,
    /// The resume after a launch without `stopOnEntry`.
    EntryResume,
    /// GDB's register cache dropped after a stop it did not see.
    Refresh,
}

/// The client's `launch`/`attach` waiting on its session operation.
#[derive(Debug, Clone)]
struct Starting {
    seq: u64,
    command: String,
    stop_on_entry: bool,
    cwd: Option<String>,
    launched: bool,
}

/// A `disconnect` or `terminate` waiting on a power-off.
#[derive(Debug, Clone)]
struct Ending {
    seq: u64,
    command: String,
}

#[derive(Debug, Default)]
pub struct Bridge {
    config: BridgeConfig,
    actions: VecDeque<Action>,
    to_client_seq: u64,
    to_gdb_seq: u64,
    pending: HashMap<u64, Pending>,
    starting: Option<Starting>,
    /// The session once ready, and whether the bridge launched it.
    session: Option<(String, bool)>,
    stop_on_entry: bool,
    /// GDB's `initialized`, held until the symbols are loaded.
    held_initialized: Option<Value>,
    setup_left: usize,
    /// The first stop after a launch is the entry.
    entry_pending: bool,
    ending: Option<Ending>,
    closed: bool,
    /// The launch or attach has been answered: the CPU's state is this client's.
    attached: bool,
    view: View,
    /// This client asked for the current run / for a pause.
    own_resume: bool,
    own_pause: bool,
    /// The thread of the last stop, for events the bridge makes.
    thread: Option<Value>,
    /// GDB's last thread list.
    threads: Option<Value>,
    /// A confined GDB's breakpoints by file name, mapped back for the editor.
    sources: crate::sources::SourceMap,
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The session once launched or attached.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|(id, _)| id.as_str())
    }

    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn handle(&mut self, input: Input) {
        if self.closed {
            return;
        }
        match input {
            Input::Client(message) => self.on_client(message),
            Input::Gdb(message) => self.on_gdb(message),
            Input::OpDone(result) => self.op_done(result),
            Input::Uart { data, dropped } => {
                if dropped > 0 {
                    self.event(
                        "output",
                        json!({"category": "important",
                               "output": format!("[virserver: {dropped} chunks of UART output were lost]\n")}),
                    );
                }
                self.event("output", json!({"category": "stdout", "output": data}));
            }
            Input::ClientGarbage(reason) => {
                self.event(
                    "output",
                    json!({"category": "important",
                           "output": format!("virserver: {reason}; closing\n")}),
                );
                self.close();
            }
            Input::Run(notice) => self.run(notice),
            Input::GdbExited(reason) => {
                if self.ending.is_none() {
                    self.event(
                        "output",
                        json!({"category": "important", "output": format!("virserver: GDB ended: {reason}\n")}),
                    );
                    self.event("terminated", json!({}));
                }
                self.close();
            }
        }
    }

    fn on_client(&mut self, message: Value) {
        let seq = message.get("seq").and_then(Value::as_u64);
        let kind = message.get("type").and_then(Value::as_str);
        let command = message.get("command").and_then(Value::as_str);
        let (Some(seq), Some("request"), Some(command)) = (seq, kind, command) else {
            // Responses to reverse requests and events have nothing to answer.
            if kind == Some("request") || kind.is_none() {
                self.event(
                    "output",
                    json!({"category": "important",
                           "output": "virserver: ignored a message that is not a DAP request (seq, type, command)\n"}),
                );
            }
            return;
        };
        let command = command.to_owned();
        let arguments = message
            .get("arguments")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if self.ending.is_some() {
            return self.respond_error(seq, &command, "the session is ending");
        }
        match command.as_str() {
            "launch" | "attach" => self.start(seq, &command, &arguments),
            "stepBack" | "reverseContinue" => self.reverse(seq, &command, &arguments),
            "disconnect" => self.end(seq, &command, &arguments),
            "terminate" => self.end(seq, &command, &arguments),
            _ => {
                if let Err(reason) = self.allowed(&command, &arguments) {
                    return self.respond_error(seq, &command, &reason);
                }
                if RESUMES.contains(&command.as_str()) {
                    self.own_resume = true;
                    self.view = View::Running;
                } else if command == "pause" {
                    self.own_pause = true;
                }
                let mut forwarded = message;
                if self.config.confined && command == "setBreakpoints" {
                    self.sources.to_gdb(&mut forwarded["arguments"]);
                }
                self.send_gdb(
                    &mut forwarded,
                    Pending::Client {
                        seq,
                        command: command.clone(),
                    },
                );
            }
        }
    }

    /// `stepBack` (a line back, or an instruction with `granularity: instruction`) and
    /// `reverseContinue` (back to the previous breakpoint hit) as GDB's reverse commands;
    /// GDB reports the stop as for any command it ran.
    fn reverse(&mut self, seq: u64, command: &str, arguments: &Value) {
        if !self.config.reverse {
            return self.respond_error(
                seq,
                command,
                "this session does not replay a recording: it cannot execute backwards",
            );
        }
        let line = match (
            command,
            arguments.get("granularity").and_then(Value::as_str),
        ) {
            ("reverseContinue", _) => "reverse-continue",
            (_, Some("instruction")) => "reverse-stepi",
            _ => "reverse-next",
        };
        self.own_resume = true;
        self.view = View::Running;
        let mut request = json!({"type": "request", "command": "evaluate",
                                 "arguments": {"expression": line, "context": "repl"}});
        self.send_gdb(
            &mut request,
            Pending::Client {
                seq,
                command: command.to_owned(),
            },
        );
    }

    /// What a confined GDB refuses.
    fn allowed(&self, command: &str, arguments: &Value) -> Result<(), String> {
        if !self.config.confined {
            return Ok(());
        }
        if command == "source" {
            return Err("the server does not serve source files: open them in the editor".into());
        }
        if arguments.to_string().contains("$_shell") {
            return Err("$_shell runs commands on the server's host: refused".into());
        }
        if command == "evaluate" && arguments.get("context").and_then(Value::as_str) == Some("repl")
        {
            let expression = arguments
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return console::allowed(expression);
        }
        Ok(())
    }

    fn start(&mut self, seq: u64, command: &str, arguments: &Value) {
        if self.starting.is_some() || self.session.is_some() {
            return self.respond_error(seq, command, "this debug session has already started");
        }
        let text = |name: &str| {
            arguments
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let flag = |name: &str| arguments.get(name).and_then(Value::as_bool);
        if ["program", "cwd", "board", "sessionId"]
            .iter()
            .filter_map(|name| text(name))
            .any(|value| value.chars().any(char::is_control))
        {
            return self.respond_error(seq, command, "arguments must not hold control characters");
        }
        let launch = command == "launch" && self.config.session.is_none();
        let op = if launch {
            let defaults = self.config.launch_defaults.clone().unzip();
            let (Some(board), Some(program)) = (
                defaults.0.or_else(|| text("board")),
                defaults.1.or_else(|| text("program")),
            ) else {
                return self.respond_error(
                    seq,
                    command,
                    "launch needs `board` (a board template id) and `program` (an ELF path)",
                );
            };
            Op::Launch {
                board,
                program,
                coverage: flag("coverage").unwrap_or(false),
            }
        } else {
            let requested = text("sessionId");
            let session_id = match (&self.config.session, requested) {
                (Some(own), Some(asked)) if *own != asked => {
                    return self.respond_error(
                        seq,
                        command,
                        &format!("this endpoint belongs to session {own}, not {asked}"),
                    );
                }
                (Some(own), _) => own.clone(),
                (None, Some(asked)) => asked,
                (None, None) => {
                    return self.respond_error(seq, command, "attach needs `sessionId`");
                }
            };
            Op::Attach {
                session_id,
                program: if self.config.confined {
                    None
                } else {
                    text("program")
                },
            }
        };
        self.starting = Some(Starting {
            seq,
            command: command.to_owned(),
            stop_on_entry: flag("stopOnEntry").unwrap_or(false),
            cwd: if self.config.confined {
                None
            } else {
                text("cwd")
            },
            launched: launch,
        });
        self.actions.push_back(Action::Op(op));
    }

    fn op_done(&mut self, result: Result<Option<Ready>, OpError>) {
        if let Some(ending) = self.ending.take() {
            // The power-off of a disconnect or terminate.
            match result {
                Ok(_) => self.respond(ending.seq, &ending.command, json!(null)),
                Err(OpError(reason)) => self.respond_error(ending.seq, &ending.command, &reason),
            }
            if ending.command == "terminate" {
                self.event("terminated", json!({}));
            }
            return self.close();
        }
        let Some(starting) = self.starting.take() else {
            return;
        };
        let ready = match result {
            Ok(Some(ready)) => ready,
            Ok(None) => {
                return self.respond_error(starting.seq, &starting.command, "no session");
            }
            Err(OpError(reason)) => {
                return self.respond_error(starting.seq, &starting.command, &reason);
            }
        };
        self.session = Some((ready.session_id.clone(), starting.launched));
        // VirServer's own event: which session this is (an editor opens its UART, its
        // coverage, its view entry).
        self.event("virserverSession", json!({"sessionId": ready.session_id}));
        self.stop_on_entry = starting.stop_on_entry;
        self.entry_pending = starting.launched;
        let mut setup = Vec::new();
        if let Some(cwd) = &starting.cwd {
            // `cd` takes the rest of the line as it is (quotes would be part of the name).
            setup.push(format!("cd {cwd}"));
        }
        setup.push(format!("file {}", quote(&ready.program)));
        self.setup_left = setup.len();
        for line in setup {
            let mut request = json!({"type": "request", "command": "evaluate",
                                     "arguments": {"expression": line, "context": "repl"}});
            self.send_gdb(&mut request, Pending::Setup);
        }
        let mut attach = json!({"type": "request", "command": "attach",
                                "arguments": {"target": ready.gdb_address}});
        self.send_gdb(
            &mut attach,
            Pending::Client {
                seq: starting.seq,
                command: starting.command,
            },
        );
    }

    fn end(&mut self, seq: u64, command: &str, arguments: &Value) {
        let launched = match &self.session {
            Some((id, true)) => Some(id.clone()),
            _ => None,
        };
        let terminate = command == "terminate"
            || arguments
                .get("terminateDebuggee")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        match launched {
            Some(session_id) if terminate => {
                self.ending = Some(Ending {
                    seq,
                    command: command.to_owned(),
                });
                self.actions
                    .push_back(Action::Op(Op::PowerOff { session_id }));
            }
            _ => {
                self.respond(seq, command, json!(null));
                if command == "terminate" {
                    self.event("terminated", json!({}));
                }
                self.close();
            }
        }
    }

    fn on_gdb(&mut self, mut message: Value) {
        match message.get("type").and_then(Value::as_str) {
            Some("response") => {
                let Some(request_seq) = message.get("request_seq").and_then(Value::as_u64) else {
                    return;
                };
                match self.pending.remove(&request_seq) {
                    Some(Pending::Client { seq, command }) => {
                        if matches!(command.as_str(), "launch" | "attach") {
                            self.attached = message.get("success") == Some(&json!(true));
                        }
                        if command == "threads" {
                            self.threads_answer(&mut message);
                        }
                        if command == "initialize" && message["body"].is_object() {
                            // GDB offers Ada and C++ exception breakpoints; firmware has
                            // neither, and an editor would list six dead checkboxes.
                            message["body"]["exceptionBreakpointFilters"] = json!([]);
                            if self.config.reverse {
                                message["body"]["supportsStepBack"] = json!(true);
                            }
                        }
                        if matches!(command.as_str(), "stepBack" | "reverseContinue") {
                            // The evaluate's result is GDB's console text, not DAP's.
                            message["body"] = json!({});
                        }
                        message["request_seq"] = json!(seq);
                        message["command"] = json!(command);
                        self.send_client(message);
                    }
                    Some(Pending::Setup) => {
                        if message.get("success") != Some(&json!(true)) {
                            let reason = message
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("failed");
                            self.event(
                                "output",
                                json!({"category": "important",
                                       "output": format!("virserver: loading the program's symbols: {reason}\n")}),
                            );
                        }
                        self.setup_left = self.setup_left.saturating_sub(1);
                        if self.setup_left == 0
                            && let Some(initialized) = self.held_initialized.take()
                        {
                            self.send_client(initialized);
                        }
                    }
                    Some(Pending::Refresh) => {
                        let mut body = json!({"reason": "pause", "allThreadsStopped": true,
                                              "description": "Paused by another debugger or the API"});
                        body["threadId"] = self.thread.clone().unwrap_or(json!(1));
                        self.event("stopped", body);
                    }
                    Some(Pending::EntryResume) | None => {}
                }
            }
            Some("event") => {
                let event = message
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let event = event.as_str();
                if event == "initialized" && (self.session.is_none() || self.setup_left > 0) {
                    self.held_initialized = Some(message);
                    return;
                }
                if event == "stopped" {
                    self.view = View::Stopped;
                    self.own_resume = false;
                    if let Some(thread) = message["body"].get("threadId") {
                        self.thread = Some(thread.clone());
                    }
                    // A stop this client did not ask for, reported to GDB as the signal
                    // of someone else's halt (SIGINT) or breakpoint (SIGTRAP).
                    if message["body"]["reason"] == "signal" && !self.own_pause {
                        message["body"]["reason"] = json!("pause");
                        message["body"]["description"] =
                            json!("Paused by another debugger or the API");
                    }
                    self.own_pause = false;
                }
                if event == "continued" {
                    self.view = View::Running;
                }
                if event == "stopped" && self.entry_pending {
                    self.entry_pending = false;
                    if self.stop_on_entry {
                        message["body"]["reason"] = json!("entry");
                    } else {
                        let thread = message["body"].get("threadId").cloned().unwrap_or(json!(1));
                        self.own_resume = true;
                        self.view = View::Running;
                        let mut resume = json!({"type": "request", "command": "continue",
                                                "arguments": {"threadId": thread}});
                        return self.send_gdb(&mut resume, Pending::EntryResume);
                    }
                }
                self.send_client(message);
            }
            // GDB sends no reverse requests; anything else is not DAP.
            _ => {}
        }
    }

    /// Stops and resumes others caused: a `continued` event when someone else resumes
    /// the CPU this client saw halted; when it stops again, GDB (which saw neither)
    /// drops its register cache, then the client gets `stopped` (reason `pause`). Runs
    /// this client's GDB started end with GDB's own `stopped`.
    fn run(&mut self, notice: RunNotice) {
        if !self.attached {
            return;
        }
        match (notice, self.view) {
            (RunNotice::Resumed, View::Stopped) if !self.own_resume => {
                self.view = View::RunningByOthers;
                let mut body = json!({"allThreadsContinued": true});
                body["threadId"] = self.thread.clone().unwrap_or(json!(1));
                self.event("continued", body);
            }
            (RunNotice::Stopped, View::RunningByOthers) => {
                self.view = View::Stopped;
                let mut refresh = json!({"type": "request", "command": "evaluate",
                    "arguments": {"expression": "maintenance flush register-cache", "context": "repl"}});
                self.send_gdb(&mut refresh, Pending::Refresh);
            }
            _ => {}
        }
    }

    /// GDB's all-stop DAP cannot list threads while the CPU runs, and an editor asks
    /// right after `continued`: it gets the list of the last stop (QEMU's threads are
    /// its CPUs, which do not come and go).
    fn threads_answer(&mut self, message: &mut Value) {
        if message.get("success") == Some(&json!(true)) {
            self.threads = Some(message["body"].clone());
        } else if self.view != View::Stopped {
            let mut thread = json!({"name": "CPU"});
            thread["id"] = self.thread.clone().unwrap_or(json!(1));
            let body = self
                .threads
                .clone()
                .unwrap_or_else(|| json!({"threads": [thread]}));
            message["success"] = json!(true);
            message["body"] = body;
            if let Some(object) = message.as_object_mut() {
                object.remove("message");
            }
        }
    }

    fn send_gdb(&mut self, request: &mut Value, pending: Pending) {
        self.to_gdb_seq += 1;
        request["seq"] = json!(self.to_gdb_seq);
        self.pending.insert(self.to_gdb_seq, pending);
        self.actions.push_back(Action::ToGdb(request.take()));
    }

    fn send_client(&mut self, mut message: Value) {
        self.sources.to_client(&mut message);
        self.to_client_seq += 1;
        message["seq"] = json!(self.to_client_seq);
        self.actions.push_back(Action::ToClient(message));
    }

    fn event(&mut self, event: &str, body: Value) {
        self.send_client(json!({"type": "event", "event": event, "body": body}));
    }

    fn respond(&mut self, seq: u64, command: &str, body: Value) {
        let mut response =
            json!({"type": "response", "request_seq": seq, "command": command, "success": true});
        if !body.is_null() {
            response["body"] = body;
        }
        self.send_client(response);
    }

    fn respond_error(&mut self, seq: u64, command: &str, message: &str) {
        self.send_client(
            json!({"type": "response", "request_seq": seq, "command": command,
                              "success": false, "message": message,
                              "body": {"error": {"id": 1, "format": message}}}),
        );
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.actions.push_back(Action::Close);
        }
    }
}

/// A GDB CLI argument in double quotes, for file names with spaces or quotes.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

mod console;
#[cfg(test)]
mod tests;
