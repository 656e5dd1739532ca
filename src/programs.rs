//! Programs: ELF files validated against a board before anything runs them, and stored
//! content-addressed (by SHA-256) under the data dir, so the same firmware uploaded twice
//! is kept once and a stored file can be checked against its database record.
//!
//! Validation is pure (bytes and a board in, a summary or a typed error out); only
//! `ProgramStore` touches the disk. An upload comes from an untrusted user: its header
//! tables are capped before they are read, and its file name is only ever a display
//! name (`display_name`), never part of a path.

use std::path::{Path, PathBuf};

use object::elf::PT_LOAD;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Architecture, Endianness, FileKind, Object};
use sha2::{Digest, Sha256};

use crate::boards::{Arch, BoardTemplate};

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("not an ELF file: {0}")]
    NotElf(String),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("the ELF is for {elf}, but board '{board}' is {board_arch}")]
    ArchMismatch {
        elf: String,
        board: String,
        board_arch: &'static str,
    },
    #[error(
        "loadable segment {index} ({what} 0x{start:x}..0x{end:x}) is outside the memory map of board '{board}'"
    )]
    OutsideMemoryMap {
        index: usize,
        what: &'static str,
        start: u64,
        end: u64,
        board: String,
    },
    #[error("the ELF has no entry point")]
    NoEntryPoint,
    #[error("the ELF has no loadable segment")]
    NoLoadableSegment,
    #[error("the ELF has {count} {what}; at most {limit} are accepted")]
    TooMany {
        what: &'static str,
        count: u32,
        limit: u32,
    },
    #[error("storing the program failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What validation learnt about an ELF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfSummary {
    pub entry_point: u64,
    pub arch: Arch,
    pub sha256: String,
    pub size: u64,
}

/// Checks that `data` is an ELF for `board`'s architecture whose loadable segments lie
/// in the board's memory regions (both where they are loaded and where they run).
pub fn validate_elf(data: &[u8], board: &BoardTemplate) -> Result<ElfSummary, ProgramError> {
    let kind = FileKind::parse(data).map_err(|e| ProgramError::NotElf(e.to_string()))?;
    let (entry_point, architecture, segments) = match kind {
        FileKind::Elf32 => read_elf::<object::elf::FileHeader32<Endianness>>(data)?,
        FileKind::Elf64 => read_elf::<object::elf::FileHeader64<Endianness>>(data)?,
        other => return Err(ProgramError::NotElf(format!("{other:?} file"))),
    };
    let arch = arch_of(architecture).ok_or_else(|| ProgramError::ArchMismatch {
        elf: format!("{architecture:?}"),
        board: board.id.clone(),
        board_arch: board.arch.as_str(),
    })?;
    if arch != board.arch {
        return Err(ProgramError::ArchMismatch {
            elf: arch.as_str().to_owned(),
            board: board.id.clone(),
            board_arch: board.arch.as_str(),
        });
    }
    if segments.is_empty() {
        return Err(ProgramError::NoLoadableSegment);
    }
    if entry_point == 0 && !board.memory.iter().any(|r| r.contains(0, 1)) {
        return Err(ProgramError::NoEntryPoint);
    }
    let fits =
        |start: u64, len: u64| len == 0 || board.memory.iter().any(|r| r.contains(start, len));
    for (index, segment) in segments.iter().enumerate() {
        let checks = [
            ("loaded at", segment.paddr, segment.filesz),
            ("running at", segment.vaddr, segment.memsz),
        ];
        for (what, start, len) in checks {
            if !fits(start, len) {
                return Err(ProgramError::OutsideMemoryMap {
                    index,
                    what,
                    start,
                    end: start.saturating_add(len),
                    board: board.id.clone(),
                });
            }
        }
    }
    if !board.memory.iter().any(|r| r.contains(entry_point & !1, 1)) {
        return Err(ProgramError::NoEntryPoint);
    }
    Ok(ElfSummary {
        entry_point,
        arch,
        sha256: sha256_hex(data),
        size: data.len() as u64,
    })
}

/// More section headers than any firmware has (a large one has a few dozen).
const MAX_SECTIONS: u32 = 4096;
/// More program headers than any firmware has (QEMU loads each PT_LOAD).
const MAX_PROGRAM_HEADERS: u32 = 64;

struct Segment {
    paddr: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn read_elf<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<(u64, Architecture, Vec<Segment>), ProgramError> {
    let malformed = |e: object::Error| ProgramError::Malformed(e.to_string());
    // The counts come from the header (or section 0, for extended numbering): check
    // them before anything walks the tables.
    let file_header = H::parse(data).map_err(malformed)?;
    let endian = file_header.endian().map_err(malformed)?;
    for (what, count, limit) in [
        ("sections", file_header.shnum(endian, data), MAX_SECTIONS),
        (
            "program headers",
            file_header.phnum(endian, data),
            MAX_PROGRAM_HEADERS,
        ),
    ] {
        let count = count.map_err(malformed)?;
        if count > limit {
            return Err(ProgramError::TooMany { what, count, limit });
        }
    }
    let file = object::read::elf::ElfFile::<H>::parse(data).map_err(malformed)?;
    let mut segments = Vec::new();
    for header in file.elf_program_headers() {
        if header.p_type(endian) != PT_LOAD {
            continue;
        }
        let memsz: u64 = header.p_memsz(endian).into();
        if memsz == 0 {
            continue;
        }
        segments.push(Segment {
            paddr: header.p_paddr(endian).into(),
            vaddr: header.p_vaddr(endian).into(),
            filesz: header.p_filesz(endian).into(),
            memsz,
        });
    }
    Ok((file.entry(), file.architecture(), segments))
}

fn arch_of(architecture: Architecture) -> Option<Arch> {
    match architecture {
        Architecture::Arm => Some(Arch::Arm),
        Architecture::Aarch64 => Some(Arch::Aarch64),
        Architecture::Riscv32 => Some(Arch::Riscv32),
        Architecture::Riscv64 => Some(Arch::Riscv64),
        _ => None,
    }
}

/// The name an upload is shown by (in the API, history and logs): the last component
/// of what the client sent, without control or bidirectional-formatting characters, at
/// most 200 characters; `program.elf` when nothing is left. Programs are stored by hash,
/// so this name never becomes part of a path.
pub fn display_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_format_control(*c))
        .take(200)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().all(|c| c == '.') {
        "program.elf".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Zero-width and bidirectional controls, which can make a name read as another.
fn is_format_control(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Program files on disk, named by their SHA-256.
#[derive(Debug, Clone)]
pub struct ProgramStore {
    dir: PathBuf,
}

impl ProgramStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("programs"),
        }
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.elf"))
    }

    /// Writes the file unless a file with the same hash is already stored. The write
    /// goes to a temporary name first, so a crash never leaves a truncated program.
    pub async fn put(&self, sha256: &str, data: &[u8]) -> Result<PathBuf, ProgramError> {
        let path = self.path_of(sha256);
        if tokio::fs::try_exists(&path).await? {
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.dir).await?;
        let temporary = self
            .dir
            .join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4()));
        tokio::fs::write(&temporary, data).await?;
        tokio::fs::rename(&temporary, &path).await?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(id: &str) -> BoardTemplate {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("boards/{id}.yaml"));
        BoardTemplate::parse(id, &std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn firmware(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/firmware/bin")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn example_firmware_validates_on_its_board() {
        let summary =
            validate_elf(&firmware("hello-mps2-an385.elf"), &board("mps2-an385")).unwrap();
        assert_eq!(summary.arch, Arch::Arm);
        assert_eq!(summary.sha256.len(), 64);
        let summary =
            validate_elf(&firmware("hello-riscv32-virt.elf"), &board("riscv32-virt")).unwrap();
        assert_eq!(summary.entry_point, 0x8000_0000);
    }

    #[test]
    fn wrong_arch_and_memory_map_are_refused() {
        let riscv = firmware("hello-riscv32-virt.elf");
        assert!(matches!(
            validate_elf(&riscv, &board("mps2-an385")),
            Err(ProgramError::ArchMismatch { .. })
        ));
        // The same board without its code memory at 0x0 cannot hold the vector table.
        let mut no_flash = board("mps2-an385");
        no_flash.memory.retain(|r| r.start != 0);
        assert!(matches!(
            validate_elf(&firmware("hello-mps2-an385.elf"), &no_flash),
            Err(ProgramError::OutsideMemoryMap { .. })
        ));
    }

    /// hello-mps2-an385.elf (ELF32, little endian) with `edit` applied to its bytes.
    fn edited_hello(edit: impl Fn(&mut Vec<u8>)) -> Result<ElfSummary, ProgramError> {
        let mut elf = firmware("hello-mps2-an385.elf");
        edit(&mut elf);
        validate_elf(&elf, &board("mps2-an385"))
    }

    fn put_u16(elf: &mut [u8], at: usize, value: u16) {
        elf[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u32(elf: &mut [u8], at: usize, value: u32) {
        elf[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Where section header 0 starts (e_shoff).
    fn section_0(elf: &[u8]) -> usize {
        u32::from_le_bytes(elf[0x20..0x24].try_into().unwrap()) as usize
    }

    fn assert_too_many(result: Result<ElfSummary, ProgramError>, what: &str, count: u32) {
        match result {
            Err(ProgramError::TooMany {
                what: w, count: c, ..
            }) if w == what && c == count => {}
            other => panic!("{other:?}, expected {count} {what} to be too many"),
        }
    }

    #[test]
    fn huge_header_tables_are_refused_before_they_are_read() {
        // e_shnum (0x30) and e_phnum (0x2c), then the extended counts of section 0:
        // sh_size (+20) when e_shnum is 0, sh_info (+28) when e_phnum is PN_XNUM.
        assert_too_many(edited_hello(|e| put_u16(e, 0x30, 5000)), "sections", 5000);
        assert_too_many(
            edited_hello(|e| put_u16(e, 0x2c, 65)),
            "program headers",
            65,
        );
        assert_too_many(
            edited_hello(|e| {
                put_u16(e, 0x30, 0);
                let at = section_0(e) + 20;
                put_u32(e, at, 0xffff_fff0);
            }),
            "sections",
            0xffff_fff0,
        );
        assert_too_many(
            edited_hello(|e| {
                put_u16(e, 0x2c, 0xffff);
                let at = section_0(e) + 28;
                put_u32(e, at, 1_000_000);
            }),
            "program headers",
            1_000_000,
        );
        let message = edited_hello(|e| put_u16(e, 0x30, 5000))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the ELF has 5000 sections; at most 4096 are accepted"
        );
        // At the limits, the counts pass (and the tables, now out of bounds, do not).
        assert!(matches!(
            edited_hello(|e| put_u16(e, 0x30, 4096)),
            Err(ProgramError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_and_corrupted_files_are_refused_without_panicking() {
        let hello = firmware("hello-mps2-an385.elf");
        let board = board("mps2-an385");
        for len in 0..hello.len() {
            if let Ok(summary) = validate_elf(&hello[..len], &board) {
                panic!("{len} bytes of hello validated: {summary:?}");
            }
        }
        // Every byte of the header and the program and section header tables in turn
        // set to 0xff or 0x00: any verdict, never a panic.
        let shoff = section_0(&hello);
        let regions = [0..0x34 + 0x20 * 4, shoff..hello.len()];
        for at in regions.into_iter().flatten() {
            for value in [0x00, 0xff] {
                let mut elf = hello.clone();
                elf[at] = value;
                let _ = validate_elf(&elf, &board);
            }
        }
    }

    #[test]
    fn display_names_are_one_clean_component() {
        for (sent, shown) in [
            ("hello.elf", "hello.elf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\fw\\app.elf", "app.elf"),
            ("/abs/path/fw.elf", "fw.elf"),
            ("fw\nFAKE LOG LINE.elf", "fwFAKE LOG LINE.elf"),
            ("evil\u{202E}fle.exe", "evilfle.exe"),
            ("nul\0.elf", "nul.elf"),
            ("  spaced.elf  ", "spaced.elf"),
            ("..", "program.elf"),
            ("dir/", "program.elf"),
            ("", "program.elf"),
        ] {
            assert_eq!(display_name(sent), shown, "{sent:?}");
        }
        assert_eq!(display_name(&"x".repeat(10_000)).chars().count(), 200);
    }

    #[test]
    fn garbage_is_not_an_elf() {
        for input in [&b""[..], b"hello", b"\x7fELF", &[0u8; 64]] {
            assert!(
                matches!(
                    validate_elf(input, &board("mps2-an385")),
                    Err(ProgramError::NotElf(_) | ProgramError::Malformed(_))
                ),
                "{input:?}"
            );
        }
    }
}
