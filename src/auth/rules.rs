//! What every root field of the schema needs: a [`Need`] and the arguments that name
//! what it acts on (whose owner an operator must be). One table for the whole API, so
//! the rules are reviewable in one place; `every_root_field_has_exactly_one_rule` keeps
//! it equal to the schema, and the guard refuses a field it does not list.

use super::Need;

/// What an argument names, so the guard can find its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Session(&'static str),
    Job(&'static str),
    /// A snapshot: owned by its session's owner.
    Snapshot(&'static str),
    /// A recording: owned by its session's owner.
    Recording(&'static str),
    /// An uploaded program: owned by its session's owner (`createJob`'s `programId`).
    Program(&'static str),
}

impl Target {
    pub fn argument(self) -> &'static str {
        match self {
            Target::Session(name)
            | Target::Job(name)
            | Target::Snapshot(name)
            | Target::Recording(name)
            | Target::Program(name) => name,
        }
    }
}

/// One root field's rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub field: &'static str,
    pub need: Need,
    pub targets: &'static [Target],
}

const fn rule(field: &'static str, need: Need, targets: &'static [Target]) -> Rule {
    Rule {
        field,
        need,
        targets,
    }
}

use Need::{Admin, Operate, Read};
use Target::{Job, Recording, Session, Snapshot};

const SESSION_ID: &[Target] = &[Session("sessionId")];
const ID_IS_SESSION: &[Target] = &[Session("id")];

pub const QUERIES: &[Rule] = &[
    rule("sessions", Read, &[]),
    rule("session", Read, ID_IS_SESSION),
    rule("boardTemplates", Read, &[]),
    rule("boardTemplate", Read, &[]),
    rule("capabilities", Read, &[]),
    rule("processors", Read, &[]),
    rule("peripherals", Read, &[]),
    rule("buses", Read, &[]),
    rule("coverage", Read, &[Session("sessionId"), Job("jobId")]),
    rule("job", Read, &[Job("id")]),
    rule("jobs", Read, &[]),
    rule("registers", Read, SESSION_ID),
    rule("readMemory", Read, SESSION_ID),
    rule("debugger", Read, &[]),
    rule("backtrace", Read, SESSION_ID),
    rule("locals", Read, SESSION_ID),
    rule("evaluate", Read, SESSION_ID),
    rule("apiKeys", Admin, &[]),
    // Everyone but an admin reads only their own entries (the resolver filters).
    rule("auditLog", Read, &[Session("sessionId"), Job("jobId")]),
];

pub const MUTATIONS: &[Rule] = &[
    rule("createSession", Operate, &[]),
    rule("deleteSession", Operate, ID_IS_SESSION),
    rule("powerSession", Operate, ID_IS_SESSION),
    rule("uploadProgram", Operate, SESSION_ID),
    rule("startProgram", Operate, SESSION_ID),
    rule("pauseProgram", Operate, SESSION_ID),
    rule("stopProgram", Operate, SESSION_ID),
    rule("sendUartInput", Operate, SESSION_ID),
    rule("createBoardTemplate", Admin, &[]),
    rule("updateBoardTemplate", Admin, &[]),
    rule("deleteBoardTemplate", Admin, &[]),
    rule("createJob", Operate, &[]),
    rule("debugJob", Operate, &[Job("id")]),
    rule("cancelJob", Operate, &[Job("id")]),
    rule("haltSession", Operate, SESSION_ID),
    rule("continueSession", Operate, SESSION_ID),
    rule("reverseStep", Operate, SESSION_ID),
    rule("reverseContinue", Operate, SESSION_ID),
    rule("stepSession", Operate, SESSION_ID),
    rule("writeRegister", Operate, SESSION_ID),
    rule("writeMemory", Operate, SESSION_ID),
    rule("addBreakpoint", Operate, SESSION_ID),
    rule("removeBreakpoint", Operate, SESSION_ID),
    rule("addWatchpoint", Operate, SESSION_ID),
    rule("removeWatchpoint", Operate, SESSION_ID),
    rule("createAttachTicket", Operate, SESSION_ID),
    rule("setVariable", Operate, SESSION_ID),
    rule("createSnapshot", Operate, SESSION_ID),
    rule("restoreSnapshot", Operate, &[Snapshot("id")]),
    rule("deleteSnapshot", Operate, &[Snapshot("id")]),
    rule("forkSession", Operate, &[Snapshot("snapshotId")]),
    rule("replaySession", Operate, &[Recording("recordingId")]),
    rule("createApiKey", Admin, &[]),
    rule("revokeApiKey", Admin, &[]),
];

pub const SUBSCRIPTIONS: &[Rule] = &[
    rule("uartOutput", Read, SESSION_ID),
    rule("sessionEvents", Read, SESSION_ID),
    rule("jobEvents", Read, &[Job("jobId")]),
    rule("runEvents", Read, SESSION_ID),
];

/// The rule of root field `field` of the `QueryRoot`, `MutationRoot` or
/// `SubscriptionRoot` type; `None` for any other type or an unlisted field.
pub fn find(root: &str, field: &str) -> Option<&'static Rule> {
    let table = match root {
        "QueryRoot" => QUERIES,
        "MutationRoot" => MUTATIONS,
        "SubscriptionRoot" => SUBSCRIPTIONS,
        _ => return None,
    };
    table.iter().find(|rule| rule.field == field)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The root fields of `root` in the SDL and each one's argument names.
    fn schema_fields(sdl: &str, root: &str) -> Vec<(String, BTreeSet<String>)> {
        let start = sdl
            .find(&format!("type {root} {{"))
            .unwrap_or_else(|| panic!("no {root}"));
        let body = &sdl[start..];
        let body = &body[..body.find("\n}").unwrap()];
        let mut fields = Vec::new();
        let mut in_doc = false;
        for line in body.lines().skip(1) {
            let line = line.trim();
            if line.starts_with("\"\"\"") {
                in_doc = !(in_doc || line.len() > 3 && line.ends_with("\"\"\""));
                continue;
            }
            if in_doc || line.starts_with('"') || line.is_empty() {
                continue;
            }
            let name_end = line.find(['(', ':']).unwrap();
            let arguments = line[name_end..]
                .strip_prefix('(')
                .map(|rest| {
                    rest.split(", ")
                        .filter_map(|a| a.split(':').next())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            fields.push((line[..name_end].to_owned(), arguments));
        }
        fields
    }

    #[test]
    fn every_root_field_has_exactly_one_rule() {
        let sdl = crate::api::schema::sdl();
        for (root, table) in [
            ("QueryRoot", QUERIES),
            ("MutationRoot", MUTATIONS),
            ("SubscriptionRoot", SUBSCRIPTIONS),
        ] {
            let fields = schema_fields(&sdl, root);
            let names: BTreeSet<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let ruled: BTreeSet<&str> = table.iter().map(|r| r.field).collect();
            assert_eq!(ruled.len(), table.len(), "{root}: a field has two rules");
            assert_eq!(
                names, ruled,
                "{root}: every field needs an authorization rule in auth/rules.rs"
            );
            for (name, arguments) in &fields {
                let rule = find(root, name).unwrap();
                for target in rule.targets {
                    assert!(
                        arguments.contains(target.argument()),
                        "{root}.{name} has no argument {}",
                        target.argument()
                    );
                }
                // An argument that names a session or job but is not a target would
                // let an operator reach another user's.
                for argument in arguments {
                    let names_a_record = argument == "sessionId"
                        || argument == "jobId"
                        || argument == "snapshotId"
                        || argument == "recordingId";
                    assert!(
                        !names_a_record || rule.targets.iter().any(|t| t.argument() == argument),
                        "{root}.{name}({argument}) is not checked for its owner"
                    );
                }
            }
        }
    }
}
