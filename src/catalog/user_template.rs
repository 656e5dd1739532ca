//! The rules a user template (`createBoardTemplate`, `updateBoardTemplate`) keeps on top
//! of the board format, so that a template from an untrusted user cannot make QEMU read
//! or write files, open sockets or run programs on the server's host. Every field that
//! reaches the emulator's command line is checked against an allow-list: `binary`,
//! `machine`, `cpu`, `memory` and `extra_args` of the QEMU section. The Renode and SkyEye
//! sections reach no emulator yet, but name files: their values must stay relative.
//! Built-in templates (boards/*.yaml, the operator's own files) keep their freedom.
//!
//! QEMU reads `,` in an option's value as the start of sub-options (`virt,memory-backend=`,
//! `shift=auto,rr=record,rrfile=`) and `,,` as an escaped comma. So names must be plain,
//! and the values of the few options that take sub-options are split at every `,` and each
//! item must be a sub-option known to be harmless, with a number (or on/off) as its value.

use std::collections::BTreeMap;

use crate::boards::{BoardTemplate, QemuSection};

/// Why a well-formed user template was refused: `field` names it as the board format
/// does (`backends.qemu.extra_args[1]`), `reason` says why it could reach the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct UnsafeTemplate {
    pub field: String,
    pub reason: String,
}

/// What a sub-option's value (or an option's bare first item) may be.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// Decimal digits, at most 5.
    Count,
    /// A count or `auto`.
    CountOrAuto,
    /// `on` or `off`.
    Switch,
}

impl Value {
    fn accepts(self, text: &str) -> bool {
        match self {
            Value::Count => count(text),
            Value::CountOrAuto => text == "auto" || count(text),
            Value::Switch => matches!(text, "on" | "off"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Value::Count => "a number",
            Value::CountOrAuto => "a number or 'auto'",
            Value::Switch => "'on' or 'off'",
        }
    }
}

/// The value an extra QEMU option may take in a user template.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Exactly `none` (`-bios none`: any other value names a firmware file).
    OnlyNone,
    /// A size such as `128M` (`-m`).
    Size,
    /// Comma-separated sub-options from `keys`, the first item possibly bare.
    SubOptions {
        bare: Value,
        keys: &'static [(&'static str, Value)],
    },
}

/// The extra QEMU options a user template may pass, each followed by one value.
const USER_QEMU_OPTIONS: [(&str, Shape); 4] = [
    ("-bios", Shape::OnlyNone),
    (
        "-smp",
        Shape::SubOptions {
            bare: Value::Count,
            keys: &[
                ("cpus", Value::Count),
                ("maxcpus", Value::Count),
                ("sockets", Value::Count),
                ("dies", Value::Count),
                ("clusters", Value::Count),
                ("cores", Value::Count),
                ("threads", Value::Count),
            ],
        },
    ),
    ("-m", Shape::Size),
    (
        "-icount",
        Shape::SubOptions {
            bare: Value::CountOrAuto,
            keys: &[
                ("shift", Value::CountOrAuto),
                ("align", Value::Switch),
                ("sleep", Value::Switch),
            ],
        },
    ),
];

const ALLOWED_OPTIONS: &str = "-bios none, -smp, -m and -icount";

/// Checks a parsed user template against the rules above.
pub fn check(board: &BoardTemplate) -> Result<(), UnsafeTemplate> {
    if let Some(qemu) = &board.backends.qemu {
        check_qemu(qemu)?;
    }
    check_file_names("backends.renode", board.backends.renode.as_ref())?;
    check_file_names("backends.skyeye", board.backends.skyeye.as_ref())
}

/// A user's text as a message shows it (and the log, for stored templates): control
/// characters escaped, cut after 80 characters.
fn shown(text: &str) -> String {
    const SHOWN: usize = 80;
    let mut out = String::new();
    for character in text.chars().take(SHOWN) {
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    if text.chars().nth(SHOWN).is_some() {
        out.push_str("...");
    }
    out
}

fn quoted(text: &str) -> String {
    format!("'{}'", shown(text))
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> UnsafeTemplate {
    UnsafeTemplate {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_qemu(qemu: &QemuSection) -> Result<(), UnsafeTemplate> {
    if !crate::backend::qemu::BINARIES.contains(&qemu.binary.as_str()) {
        return Err(refuse(
            "backends.qemu.binary",
            format!(
                "{} is not allowed in a user template: it must be one of {}",
                quoted(&qemu.binary),
                crate::backend::qemu::BINARIES.join(", ")
            ),
        ));
    }
    check_plain_name("backends.qemu.machine", &qemu.machine)?;
    if let Some(cpu) = &qemu.cpu {
        check_plain_name("backends.qemu.cpu", cpu)?;
    }
    if let Some(memory) = &qemu.memory
        && !size(memory)
    {
        return Err(refuse(
            "backends.qemu.memory",
            format!(
                "{} is not allowed in a user template: {SIZE_RULE}",
                quoted(memory)
            ),
        ));
    }
    check_extra_args(&qemu.extra_args)
}

fn check_plain_name(field: &str, name: &str) -> Result<(), UnsafeTemplate> {
    let plain = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain {
        return Ok(());
    }
    Err(refuse(
        field,
        format!(
            "{} is not allowed in a user template: it must be a plain name of up to 64 \
             letters, digits, '-', '_' and '.', because QEMU reads ',' as the start of \
             sub-options such as memory-backend= or file=",
            quoted(name)
        ),
    ))
}

const SIZE_RULE: &str = "a size is 1 to 12 digits with an optional K, M, G or T";

fn size(text: &str) -> bool {
    let digits = text.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(text);
    (1..=12).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

fn count(text: &str) -> bool {
    (1..=5).contains(&text.len()) && text.chars().all(|c| c.is_ascii_digit())
}

fn check_extra_args(args: &[String]) -> Result<(), UnsafeTemplate> {
    let field = |index: usize| format!("backends.qemu.extra_args[{index}]");
    let mut index = 0;
    while index < args.len() {
        let option = args[index].as_str();
        let Some((_, shape)) = USER_QEMU_OPTIONS.iter().find(|(name, _)| *name == option) else {
            return Err(refuse(
                field(index),
                format!(
                    "{} is not allowed in a user template: options other than \
                     {ALLOWED_OPTIONS} could read or write files on the server's host",
                    quoted(option)
                ),
            ));
        };
        let Some(value) = args.get(index + 1) else {
            return Err(refuse(
                field(index),
                format!("'{option}' needs a value after it"),
            ));
        };
        check_value(*shape, value).map_err(|why| {
            refuse(
                field(index + 1),
                format!(
                    "{} is not allowed in a user template: {why}",
                    quoted(&format!("{option} {value}"))
                ),
            )
        })?;
        index += 2;
    }
    Ok(())
}

/// Whether `value` has `shape`; the error says what is wrong with it.
fn check_value(shape: Shape, value: &str) -> Result<(), String> {
    match shape {
        Shape::OnlyNone if value == "none" => Ok(()),
        Shape::OnlyNone => {
            Err("any value but 'none' names a firmware file on the server's host".into())
        }
        Shape::Size if size(value) => Ok(()),
        Shape::Size => Err(SIZE_RULE.into()),
        Shape::SubOptions { bare, keys } => {
            for (position, item) in value.split(',').enumerate() {
                check_sub_option(position, item, bare, keys)?;
            }
            Ok(())
        }
    }
}

fn check_sub_option(
    position: usize,
    item: &str,
    bare: Value,
    keys: &[(&str, Value)],
) -> Result<(), String> {
    let known = || {
        keys.iter()
            .map(|(key, _)| format!("{key}="))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match item.split_once('=') {
        None if item.is_empty() => Err("an empty sub-option (QEMU reads ',,' as a ',')".into()),
        None if position == 0 && bare.accepts(item) => Ok(()),
        None if position == 0 => Err(format!(
            "{} must be {} or one of {}",
            quoted(item),
            bare.describe(),
            known()
        )),
        None => Err(format!("{} must be one of {}", quoted(item), known())),
        Some((key, text)) => match keys.iter().find(|(name, _)| *name == key) {
            Some((_, value)) if value.accepts(text) => Ok(()),
            Some((_, value)) => Err(format!("{key}= must be {}", value.describe())),
            None => Err(format!(
                "{} is not a sub-option a user template may set (only {})",
                quoted(&format!("{key}=")),
                known()
            )),
        },
    }
}

/// The values of a section that is a map of settings, some of which name files.
fn check_file_names(
    section: &str,
    settings: Option<&BTreeMap<String, String>>,
) -> Result<(), UnsafeTemplate> {
    for (key, value) in settings.into_iter().flatten() {
        let relative = (1..=200).contains(&value.len())
            && !value.starts_with('/')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !value.split('/').any(|part| part == "..");
        if !relative {
            return Err(refuse(
                format!("{section}.{}", shown(key)),
                format!(
                    "{} is not allowed in a user template: a value must be a relative path of \
                     letters, digits, '-', '_', '.' and '/', with no '..'",
                    quoted(value)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOARD: &str = r#"
id: user-board
name: User board
arch: arm
cpu: cortex-m3
memory:
  - { name: flash, kind: flash, start: 0x0, size: 0x40000, access: rx }
backends:
  qemu: { QEMU }
  renode: { platform: platforms/cpus/cortex-m3.repl }
"#;

    /// The board with `edit` (YAML fields) in its QEMU section, which has the binary and
    /// machine of mps2-an385 unless `edit` sets them.
    fn board_with_qemu(edit: &str) -> BoardTemplate {
        let mut fields = Vec::new();
        for (key, default) in [("binary:", "qemu-system-arm"), ("machine:", "mps2-an385")] {
            if !edit.contains(key) {
                fields.push(format!("{key} {default}"));
            }
        }
        fields.push("exit: semihosting".to_owned());
        fields.push(edit.to_owned());
        BoardTemplate::parse("test", &BOARD.replace("QEMU", &fields.join(", "))).unwrap()
    }

    /// Checks the board with `edit` in its QEMU section: `expected` is None for an
    /// accepted template, else the field and a part of the reason.
    fn check_qemu_edit(edit: &str, expected: Option<(&str, &str)>) {
        let board = board_with_qemu(edit);
        match (check(&board), expected) {
            (Ok(()), None) => {}
            (Err(error), Some((field, reason))) => {
                assert_eq!(error.field, field, "{edit}: {error}");
                assert!(error.reason.contains(reason), "{edit}: {error}");
            }
            (result, expected) => panic!("{edit}: {result:?}, expected {expected:?}"),
        }
    }

    fn extra_args(args: &[&str]) -> String {
        format!("extra_args: {}", serde_json::to_string(args).unwrap())
    }

    #[test]
    fn the_shipped_boards_would_pass_as_user_templates() {
        let loaded = crate::boards::load(None);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        for board in &loaded.boards {
            assert_eq!(check(board), Ok(()), "{}", board.id);
        }
    }

    #[test]
    fn safe_shapes_are_accepted() {
        check_qemu_edit("cpu: cortex-m3, memory: 16M", None);
        check_qemu_edit("memory: \"512\"", None);
        for args in [
            &["-bios", "none"][..],
            &["-smp", "2"],
            &["-smp", "4,cores=2,threads=1"],
            &["-smp", "cpus=2,sockets=1,maxcpus=2"],
            &["-m", "64M"],
            &["-icount", "shift=auto"],
            &["-icount", "shift=3,align=off,sleep=off"],
            &["-icount", "auto"],
            &["-icount", "0"],
            &[
                "-smp", "2", "-m", "1G", "-icount", "shift=0", "-bios", "none",
            ],
        ] {
            check_qemu_edit(&extra_args(args), None);
        }
    }

    #[test]
    fn fields_that_reach_the_command_line_must_be_plain() {
        let machine = Some(("backends.qemu.machine", "memory-backend="));
        check_qemu_edit("machine: \"virt,memory-backend=mem\"", machine);
        check_qemu_edit("machine: \"virt,dumpdtb=/tmp/x.dtb\"", machine);
        check_qemu_edit("machine: ../virt", machine);
        check_qemu_edit("machine: \"-virt\"", machine);
        let cpu = Some(("backends.qemu.cpu", "plain name"));
        check_qemu_edit("cpu: \"max,x-file=/etc/passwd\"", cpu);
        check_qemu_edit("cpu: a=b", cpu);
        let memory = Some(("backends.qemu.memory", "a size"));
        check_qemu_edit("memory: \"64M,slots=2,maxmem=1G\"", memory);
        check_qemu_edit("memory: \"size=64M\"", memory);
        check_qemu_edit("memory: 1.5G", memory);
    }

    #[test]
    fn the_binary_must_be_a_known_emulator_name() {
        let binary = Some(("backends.qemu.binary", "must be one of qemu-system-arm"));
        check_qemu_edit("binary: qemu-system-x86_64", binary);
        check_qemu_edit("binary: qemu-system-arm.sh", binary);
        check_qemu_edit("binary: qemu-system-../../bin/sh", binary);
    }

    #[test]
    fn options_that_reach_the_host_are_refused() {
        let host = "could read or write files on the server's host";
        for (args, field, reason) in [
            (&["-chardev", "file,id=x,path=/tmp/x"][..], "[0]", host),
            (&["-D", "/etc/passwd"], "[0]", host),
            (&["-smp", "2", "-drive", "file=/etc/shadow"], "[2]", host),
            (&["--smp", "2"], "[0]", host),
            (&["-nographic"], "[0]", host),
            (&["-smp"], "[0]", "needs a value"),
            (&["-bios", "/etc/passwd"], "[1]", "names a firmware file"),
            (&["-bios", "none,x"], "[1]", "names a firmware file"),
            (&["-m", "64M,maxmem=1G"], "[1]", "a size"),
            (
                &["-icount", "shift=auto,rr=record,rrfile=/etc/x"],
                "[1]",
                "'rr=' is not a sub-option",
            ),
            (
                &["-icount", "shift=auto,,rrfile=x"],
                "[1]",
                "an empty sub-option",
            ),
            (&["-icount", "shift=auto,"], "[1]", "an empty sub-option"),
            (&["-icount", "rrfile"], "[1]", "'rrfile' must be a number"),
            (&["-icount", "shift=/x"], "[1]", "shift= must be a number"),
            (&["-icount", "0,5"], "[1]", "'5' must be one of shift="),
            (&["-smp", "cpus=2,path=/x"], "[1]", "'path=' is not"),
            (&["-smp", "-chardev"], "[1]", "must be a number"),
            (&["-smp", "123456"], "[1]", "must be a number"),
        ] {
            let field = format!("backends.qemu.extra_args{field}");
            check_qemu_edit(&extra_args(args), Some((&field, reason)));
        }
    }

    #[test]
    fn other_backends_may_name_only_relative_files() {
        for value in [
            "/etc/passwd",
            "../../etc/passwd",
            "platforms/../../x",
            "a b",
        ] {
            let text = BOARD
                .replace("QEMU", "binary: qemu-system-arm, machine: virt, exit: none")
                .replace("platforms/cpus/cortex-m3.repl", &format!("'{value}'"));
            let board = BoardTemplate::parse("test", &text).unwrap();
            let error = check(&board).unwrap_err();
            assert_eq!(error.field, "backends.renode.platform", "{value}");
            assert!(error.reason.contains("relative path"), "{error}");
        }
    }

    #[test]
    fn messages_show_a_users_text_escaped_and_cut() {
        let long = format!("virt\n{}", "x".repeat(200));
        let board = board_with_qemu(&format!(
            "machine: {}",
            serde_json::to_string(&long).unwrap()
        ));
        let reason = check(&board).unwrap_err().reason;
        assert!(
            reason.starts_with(&format!("'virt\\n{}...' is not allowed", "x".repeat(75))),
            "{reason}"
        );
        assert!(!reason.contains('\n'), "{reason}");
    }

    #[test]
    fn the_message_names_the_field_and_the_reason() {
        let board = board_with_qemu("extra_args: [-chardev, 'stdio,id=x']");
        let error = check(&board).unwrap_err();
        assert_eq!(
            error.to_string(),
            "backends.qemu.extra_args[0]: '-chardev' is not allowed in a user template: options \
             other than -bios none, -smp, -m and -icount could read or write files on the \
             server's host"
        );
    }
}
