//! Board templates: data, not code. Built-in boards are the YAML files under `boards/`,
//! compiled into the binary so that an installed `virserver` works from any directory;
//! `--boards-dir` adds boards from files (and replaces a built-in of the same id); user
//! boards are the same documents stored in the database. One parser and one validator
//! serve all three, so a board behaves the same wherever it came from.
//!
//! Loading never stops at the first bad file: each error names the file and the field,
//! and the good boards still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// Why a board document was rejected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BoardError {
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {field}: {message}")]
    Invalid {
        source_name: String,
        field: String,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// The instruction-set family a board's CPU belongs to; ELF files are checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Arm,
    Aarch64,
    Riscv32,
    Riscv64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Arm => "arm",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv32 => "riscv32",
            Arch::Riscv64 => "riscv64",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    Flash,
    Rom,
    Ram,
}

/// A region of the board's memory map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryRegion {
    pub name: String,
    pub kind: MemoryKind,
    #[serde(deserialize_with = "de_u64")]
    pub start: u64,
    #[serde(deserialize_with = "de_u64")]
    pub size: u64,
    /// Any of `r`, `w`, `x`.
    pub access: String,
}

impl MemoryRegion {
    /// One past the last address; saturates so that a region at the top of the space works.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    pub fn contains(&self, start: u64, len: u64) -> bool {
        start >= self.start && start.saturating_add(len) <= self.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peripheral {
    pub name: String,
    /// uart, timer, gpio, ...
    pub kind: String,
    /// Device model, e.g. `cmsdk-apb-uart`, `pl011`, `ns16550`.
    pub model: String,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub base: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// The UART that the server streams as the session console.
    #[serde(default)]
    pub console: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bus {
    pub name: String,
    /// ahb, apb, axi, tilelink, ...
    pub kind: String,
}

/// How a firmware reports its exit status on this board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitMechanism {
    /// ARM semihosting SYS_EXIT / SYS_EXIT_EXTENDED.
    Semihosting,
    /// The `sifive_test` device of RISC-V `virt`.
    SifiveTest,
    /// No exit device: the session runs until powered off.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuSection {
    /// `qemu-system-*` binary name, e.g. `qemu-system-arm`.
    pub binary: String,
    pub machine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    pub exit: ExitMechanism,
}

/// Backend-specific sections. Only QEMU is runnable on this host kind; the others are
/// kept so that one board file can describe every backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSections {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu: Option<QemuSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renode: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skyeye: Option<BTreeMap<String, String>>,
}

/// One board template, as written in YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardTemplate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub arch: Arch,
    pub cpu: String,
    pub memory: Vec<MemoryRegion>,
    #[serde(default)]
    pub peripherals: Vec<Peripheral>,
    #[serde(default)]
    pub buses: Vec<Bus>,
    pub backends: BackendSections,
}

impl BoardTemplate {
    /// Parses and validates one document; `source_name` names it in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, BoardError> {
        let board: BoardTemplate =
            serde_yaml::from_str(text).map_err(|error| BoardError::Parse {
                source_name: source_name.to_owned(),
                message: error.to_string(),
            })?;
        board.validate(source_name)?;
        Ok(board)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    pub fn console(&self) -> Option<&Peripheral> {
        self.peripherals.iter().find(|p| p.console)
    }

    fn validate(&self, source_name: &str) -> Result<(), BoardError> {
        let invalid = |field: String, message: &str| BoardError::Invalid {
            source_name: source_name.to_owned(),
            field,
            message: message.to_owned(),
        };
        if !valid_id(&self.id) {
            return Err(invalid(
                "id".into(),
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name".into(), "must not be empty"));
        }
        if self.memory.is_empty() {
            return Err(invalid("memory".into(), "at least one region is required"));
        }
        for (i, region) in self.memory.iter().enumerate() {
            if region.size == 0 {
                return Err(invalid(
                    format!("memory[{i}].size"),
                    "must be greater than 0",
                ));
            }
            if region.start.checked_add(region.size - 1).is_none() {
                return Err(invalid(format!("memory[{i}]"), "region wraps past 2^64"));
            }
            if region.access.is_empty() || !region.access.chars().all(|c| "rwx".contains(c)) {
                return Err(invalid(
                    format!("memory[{i}].access"),
                    "must be a combination of r, w, x",
                ));
            }
            for (j, other) in self.memory.iter().enumerate().take(i) {
                if region.start < other.end() && other.start < region.end() {
                    return Err(invalid(
                        format!("memory[{i}]"),
                        &format!("overlaps memory[{j}] ({})", other.name),
                    ));
                }
            }
        }
        if self.peripherals.iter().filter(|p| p.console).count() > 1 {
            return Err(invalid(
                "peripherals".into(),
                "at most one peripheral can be the console",
            ));
        }
        for (i, peripheral) in self.peripherals.iter().enumerate() {
            if let Some(bus) = &peripheral.bus
                && !self.buses.iter().any(|b| &b.name == bus)
            {
                return Err(invalid(
                    format!("peripherals[{i}].bus"),
                    &format!("no bus named '{bus}' in buses"),
                ));
            }
        }
        if let Some(qemu) = &self.backends.qemu {
            if !qemu.binary.starts_with("qemu-system-") {
                return Err(invalid(
                    "backends.qemu.binary".into(),
                    "must name a qemu-system-* binary",
                ));
            }
            if qemu.machine.is_empty() {
                return Err(invalid("backends.qemu.machine".into(), "must not be empty"));
            }
        }
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Accepts an integer or a string such as "0x2000_0000", "64K" is deliberately not
/// accepted: addresses and sizes are exact.
fn de_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Text(String),
    }
    match Number::deserialize(deserializer)? {
        Number::Int(value) => Ok(value),
        Number::Text(text) => parse_u64(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("'{text}' is not a number (use 123 or 0x7b)"))
        }),
    }
}

fn de_opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    de_u64(deserializer).map(Some)
}

/// Parses a decimal or `0x` hexadecimal number; `_` separators are allowed.
pub fn parse_u64(text: &str) -> Option<u64> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    match cleaned
        .strip_prefix("0x")
        .or_else(|| cleaned.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => cleaned.parse().ok(),
    }
}

/// The result of loading a folder: the boards that loaded, and an error for each that did not.
#[derive(Debug, Default)]
pub struct LoadedBoards {
    pub boards: Vec<BoardTemplate>,
    pub errors: Vec<BoardError>,
}

/// The built-in boards: every file of the source tree's `boards/` (a unit test keeps
/// this list and the folder equal).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "aarch64-virt.yaml",
        include_str!("../boards/aarch64-virt.yaml"),
    ),
    (
        "lm3s6965evb.yaml",
        include_str!("../boards/lm3s6965evb.yaml"),
    ),
    ("mps2-an385.yaml", include_str!("../boards/mps2-an385.yaml")),
    (
        "riscv32-virt.yaml",
        include_str!("../boards/riscv32-virt.yaml"),
    ),
    (
        "stm32f4-disco.yaml",
        include_str!("../boards/stm32f4-disco.yaml"),
    ),
];

/// The built-in boards, then those of `dir` when one is given: a board there with a
/// built-in's id replaces the built-in, any other is added. A missing or unreadable
/// folder is an error in the result, and the built-ins still load.
pub fn load(dir: Option<&Path>) -> LoadedBoards {
    let mut loaded = LoadedBoards::default();
    for (file, text) in BUILT_IN {
        match BoardTemplate::parse(&format!("built-in {file}"), text) {
            Ok(board) => loaded.boards.push(board),
            Err(error) => loaded.errors.push(error),
        }
    }
    if let Some(dir) = dir {
        let from_dir = load_dir(dir);
        loaded.errors.extend(from_dir.errors);
        for board in from_dir.boards {
            match loaded.boards.iter_mut().find(|b| b.id == board.id) {
                Some(built_in) => {
                    tracing::info!(board = %board.id, dir = %dir.display(), "board replaces the built-in of that id");
                    *built_in = board;
                }
                None => loaded.boards.push(board),
            }
        }
    }
    loaded
}

/// Loads every `*.yaml` / `*.yml` in `dir`, sorted by file name. A missing folder
/// yields no boards and one error.
fn load_dir(dir: &Path) -> LoadedBoards {
    let mut loaded = LoadedBoards::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            loaded.errors.push(BoardError::Read {
                path: dir.to_owned(),
                message: error.to_string(),
            });
            return loaded;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .collect();
    paths.sort();
    for path in paths {
        let name = path.display().to_string();
        let result = std::fs::read_to_string(&path)
            .map_err(|error| BoardError::Read {
                path: path.clone(),
                message: error.to_string(),
            })
            .and_then(|text| BoardTemplate::parse(&name, &text));
        match result {
            Ok(board) if loaded.boards.iter().any(|b| b.id == board.id) => {
                loaded.errors.push(BoardError::Invalid {
                    source_name: name,
                    field: "id".into(),
                    message: format!("duplicate board id '{}'", board.id),
                })
            }
            Ok(board) => loaded.boards.push(board),
            Err(error) => loaded.errors.push(error),
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id: test-board
name: Test board
arch: arm
cpu: cortex-m3
memory:
  - { name: flash, kind: flash, start: 0x0, size: 0x40000, access: rx }
  - { name: ram, kind: ram, start: "0x2000_0000", size: 65536, access: rwx }
peripherals:
  - { name: uart0, kind: uart, model: pl011, base: 0x4000c000, bus: apb, console: true }
buses:
  - { name: apb, kind: apb }
backends:
  qemu: { binary: qemu-system-arm, machine: lm3s6965evb, exit: semihosting }
"#;

    fn check_error(edit: (&str, &str), expected: &str) {
        let text = GOOD.replace(edit.0, edit.1);
        let error = BoardTemplate::parse("x.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "{error} does not contain {expected}"
        );
        assert!(error.starts_with("x.yaml"), "{error}");
    }

    #[test]
    fn the_built_in_list_is_the_boards_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        let on_disk = load_dir(&dir);
        assert!(on_disk.errors.is_empty(), "{:?}", on_disk.errors);
        let built_in = load(None);
        assert!(built_in.errors.is_empty(), "{:?}", built_in.errors);
        assert_eq!(built_in.boards, on_disk.boards);
    }

    #[test]
    fn a_folder_adds_boards_and_replaces_a_built_in() {
        let dir = tempfile::tempdir().unwrap();
        let own = GOOD.replace("name: Test board", "name: Mine");
        std::fs::write(dir.path().join("own.yaml"), &own).unwrap();
        let (_, mps2) = BUILT_IN
            .iter()
            .find(|(f, _)| *f == "mps2-an385.yaml")
            .unwrap();
        let replaced = mps2.replacen("name: ", "name: Replaced ", 1);
        std::fs::write(dir.path().join("mps2.yaml"), &replaced).unwrap();
        let loaded = load(Some(dir.path()));
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert_eq!(loaded.boards.len(), BUILT_IN.len() + 1);
        let mps2 = loaded.boards.iter().find(|b| b.id == "mps2-an385").unwrap();
        assert!(mps2.name.starts_with("Replaced "), "{}", mps2.name);
        let missing = load(Some(&dir.path().join("nowhere")));
        assert_eq!(missing.boards.len(), BUILT_IN.len());
        assert!(matches!(missing.errors[..], [BoardError::Read { .. }]));
    }

    #[test]
    fn good_board_parses() {
        let board = BoardTemplate::parse("x.yaml", GOOD).unwrap();
        assert_eq!(board.memory[1].start, 0x2000_0000);
        assert_eq!(board.console().unwrap().base, Some(0x4000_c000));
        let again = BoardTemplate::parse("again", &board.to_yaml()).unwrap();
        assert_eq!(board, again);
    }

    #[test]
    fn bad_boards_name_the_field() {
        check_error(("size: 65536", "size: 0"), "memory[1].size");
        check_error(("access: rwx", "access: rwz"), "memory[1].access");
        check_error(("start: 0x0,", "start: 0x20000000,"), "overlaps");
        check_error(("bus: apb,", "bus: ahb,"), "peripherals[0].bus");
        check_error(("id: test-board", "id: Test Board"), "id");
        check_error(("arch: arm", "arch: sparc"), "arch");
        check_error(("size: 65536", "size: lots"), "not a number");
        check_error(
            (
                "machine: lm3s6965evb,",
                "machine: lm3s6965evb, colour: red,",
            ),
            "colour",
        );
    }
}
