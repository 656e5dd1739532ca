//! Programs: ELF files validated against a board before anything runs them, and stored
//! content-addressed (by SHA-256) under the data dir, so the same firmware uploaded twice
//! is kept once and a stored file can be checked against its database record.
//!
//! Validation is pure (bytes and a board in, a summary or a typed error out); only
//! `ProgramStore` touches the disk.

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
    let file = object::read::elf::ElfFile::<H>::parse(data).map_err(malformed)?;
    let endian = file.endian();
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
