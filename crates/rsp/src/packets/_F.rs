//! GDB File-I/O: the `F` requests a stub sends to its debugger when the
//! target asks the host for a file or console operation, and the `F` reply.
//!
//! QEMU run with `-semihosting-config target=gdb` sends the guest's
//! semihosting calls this way instead of running them on its own host: the
//! stub stops the VM and sends `Fopen,pathptr/len,flags,mode`,
//! `Fwrite,fd,bufptr,count` and so on. Whoever answers reads and writes the
//! guest's memory with ordinary `m`/`M` packets meanwhile, then sends
//! `Fretcode[,errno]`, and the stub resumes the VM. Numbers are hex; a
//! string is `pointer/length` with the length counting the trailing NUL.
//! QEMU 8.x and later write a stray `x` after that length (a format-string
//! slip in its gdbstub), which is accepted here.
//!
//! Flags, modes, errno values and the `struct stat` / `struct timeval`
//! layouts are the protocol's own (fixed, big-endian), not the host's.

use crate::error::ParseError;
use crate::hex::{parse_hex_u32, parse_hex_u64, write_hex_u64};

/// A guest memory range named by a request: a buffer, or a string whose
/// length counts its trailing NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestBuffer {
    /// Its address in the target's memory.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// One File-I/O request of the stub (the payload after `F`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileIoRequest {
    /// `open(path, flags, mode)`.
    Open {
        /// The path string.
        path: GuestBuffer,
        /// [`open_flags`] bits.
        flags: u32,
        /// The protocol's mode bits.
        mode: u32,
    },
    /// `close(fd)`.
    Close {
        /// The descriptor.
        fd: u32,
    },
    /// `read(fd, buffer, count)`: the answer's bytes go into `buffer`.
    Read {
        /// The descriptor.
        fd: u32,
        /// Where the data goes, and at most how much.
        buffer: GuestBuffer,
    },
    /// `write(fd, buffer, count)`.
    Write {
        /// The descriptor.
        fd: u32,
        /// The data to write.
        buffer: GuestBuffer,
    },
    /// `lseek(fd, offset, whence)`.
    Lseek {
        /// The descriptor.
        fd: u32,
        /// The offset (two's complement).
        offset: i64,
        /// 0 set, 1 current, 2 end.
        whence: u32,
    },
    /// `rename(old, new)`.
    Rename {
        /// The old path string.
        old: GuestBuffer,
        /// The new path string.
        new: GuestBuffer,
    },
    /// `unlink(path)`.
    Unlink {
        /// The path string.
        path: GuestBuffer,
    },
    /// `stat(path, buf)`: a [`STAT_SIZE`]-byte `struct stat` goes into `buf`.
    Stat {
        /// The path string.
        path: GuestBuffer,
        /// Where the structure goes.
        buf: u64,
    },
    /// `fstat(fd, buf)`.
    Fstat {
        /// The descriptor.
        fd: u32,
        /// Where the structure goes.
        buf: u64,
    },
    /// `gettimeofday(tv, tz)`: a [`TIMEVAL_SIZE`]-byte `struct timeval` goes into `tv`.
    Gettimeofday {
        /// Where the structure goes.
        tv: u64,
    },
    /// `isatty(fd)`.
    Isatty {
        /// The descriptor.
        fd: u32,
    },
    /// `system(command)`.
    System {
        /// The command string.
        command: GuestBuffer,
    },
    /// A call this codec does not know, by name.
    Unknown(String),
}

/// The protocol's `open` flags.
pub mod open_flags {
    /// Read only (no bit set).
    pub const RDONLY: u32 = 0x0;
    /// Write only.
    pub const WRONLY: u32 = 0x1;
    /// Read and write.
    pub const RDWR: u32 = 0x2;
    /// Append.
    pub const APPEND: u32 = 0x8;
    /// Create if missing.
    pub const CREAT: u32 = 0x200;
    /// Truncate.
    pub const TRUNC: u32 = 0x400;
    /// Fail if it exists (with CREAT).
    pub const EXCL: u32 = 0x800;
}

/// The protocol's errno values.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: u32 = 1;
    /// No such file or directory.
    pub const ENOENT: u32 = 2;
    /// Interrupted.
    pub const EINTR: u32 = 4;
    /// Bad file descriptor.
    pub const EBADF: u32 = 9;
    /// Permission denied.
    pub const EACCES: u32 = 13;
    /// Bad address.
    pub const EFAULT: u32 = 14;
    /// Busy.
    pub const EBUSY: u32 = 16;
    /// Exists.
    pub const EEXIST: u32 = 17;
    /// No such device.
    pub const ENODEV: u32 = 19;
    /// Not a directory.
    pub const ENOTDIR: u32 = 20;
    /// Is a directory.
    pub const EISDIR: u32 = 21;
    /// Invalid argument.
    pub const EINVAL: u32 = 22;
    /// Too many open files in the system.
    pub const ENFILE: u32 = 23;
    /// Too many open files.
    pub const EMFILE: u32 = 24;
    /// File too large.
    pub const EFBIG: u32 = 27;
    /// No space left.
    pub const ENOSPC: u32 = 28;
    /// Illegal seek.
    pub const ESPIPE: u32 = 29;
    /// Read-only file system.
    pub const EROFS: u32 = 30;
    /// Name too long.
    pub const ENAMETOOLONG: u32 = 91;
    /// Anything else.
    pub const EUNKNOWN: u32 = 9999;
}

/// Size of the protocol's `struct stat`.
pub const STAT_SIZE: usize = 64;
/// Size of the protocol's `struct timeval`.
pub const TIMEVAL_SIZE: usize = 12;

/// What `stat`/`fstat` report, in the protocol's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Mode: file type and permission bits (0o100000 regular file,
    /// 0o40000 directory, 0o20000 character device).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
}

impl FileStat {
    /// The [`STAT_SIZE`]-byte big-endian `struct stat`.
    pub fn to_bytes(&self) -> [u8; STAT_SIZE] {
        let mut out = [0u8; STAT_SIZE];
        // st_dev, st_ino (0..8), st_mode
        out[8..12].copy_from_slice(&self.mode.to_be_bytes());
        // st_nlink
        out[12..16].copy_from_slice(&1u32.to_be_bytes());
        // st_uid, st_gid, st_rdev (16..28), st_size
        out[28..36].copy_from_slice(&self.size.to_be_bytes());
        // st_blksize, st_blocks
        out[36..44].copy_from_slice(&512u64.to_be_bytes());
        out[44..52].copy_from_slice(&self.size.div_ceil(512).to_be_bytes());
        // st_atime, st_mtime, st_ctime
        for field in [52, 56, 60] {
            out[field..field + 4].copy_from_slice(&self.mtime.to_be_bytes());
        }
        out
    }
}

/// The [`TIMEVAL_SIZE`]-byte big-endian `struct timeval`.
pub fn timeval_bytes(seconds: u32, microseconds: u64) -> [u8; TIMEVAL_SIZE] {
    let mut out = [0u8; TIMEVAL_SIZE];
    out[..4].copy_from_slice(&seconds.to_be_bytes());
    out[4..].copy_from_slice(&microseconds.to_be_bytes());
    out
}

impl FileIoRequest {
    /// Parses a stub packet's payload, `F` included; `None` if it is not a
    /// File-I/O request at all (it does not start with `F`).
    pub fn parse(payload: &[u8]) -> Option<Result<FileIoRequest, ParseError>> {
        let body = payload.strip_prefix(b"F")?;
        Some(parse_body(body))
    }

    /// The call's name, for logs.
    pub fn name(&self) -> &str {
        match self {
            FileIoRequest::Open { .. } => "open",
            FileIoRequest::Close { .. } => "close",
            FileIoRequest::Read { .. } => "read",
            FileIoRequest::Write { .. } => "write",
            FileIoRequest::Lseek { .. } => "lseek",
            FileIoRequest::Rename { .. } => "rename",
            FileIoRequest::Unlink { .. } => "unlink",
            FileIoRequest::Stat { .. } => "stat",
            FileIoRequest::Fstat { .. } => "fstat",
            FileIoRequest::Gettimeofday { .. } => "gettimeofday",
            FileIoRequest::Isatty { .. } => "isatty",
            FileIoRequest::System { .. } => "system",
            FileIoRequest::Unknown(name) => name,
        }
    }
}

const PACKET: &str = "F";

fn parse_body(body: &[u8]) -> Result<FileIoRequest, ParseError> {
    let mut fields = body.split(|&byte| byte == b',');
    let name = fields.next().unwrap_or_default();
    if name.is_empty() {
        return Err(ParseError::malformed(PACKET, "no call name"));
    }
    let args: Vec<&[u8]> = fields.collect();
    let want = |count: usize| {
        if args.len() == count {
            Ok(())
        } else {
            Err(ParseError::malformed(PACKET, "wrong number of arguments"))
        }
    };
    let number = |index: usize| parse_hex_u64(args[index]).map_err(ParseError::hex(PACKET));
    let small = |index: usize| parse_hex_u32(args[index]).map_err(ParseError::hex(PACKET));
    let buffer = |pointer: usize, count: usize| -> Result<GuestBuffer, ParseError> {
        Ok(GuestBuffer {
            addr: number(pointer)?,
            len: number(count)?,
        })
    };
    let string = |index: usize| parse_string(args[index]);
    Ok(match name {
        b"open" => {
            // The mode is optional in the protocol when O_CREAT is not set.
            if !(2..=3).contains(&args.len()) {
                return Err(ParseError::malformed(PACKET, "wrong number of arguments"));
            }
            FileIoRequest::Open {
                path: string(0)?,
                flags: small(1)?,
                mode: if args.len() == 3 { small(2)? } else { 0 },
            }
        }
        b"close" => {
            want(1)?;
            FileIoRequest::Close { fd: small(0)? }
        }
        b"read" => {
            want(3)?;
            FileIoRequest::Read {
                fd: small(0)?,
                buffer: buffer(1, 2)?,
            }
        }
        b"write" => {
            want(3)?;
            FileIoRequest::Write {
                fd: small(0)?,
                buffer: buffer(1, 2)?,
            }
        }
        b"lseek" => {
            want(3)?;
            FileIoRequest::Lseek {
                fd: small(0)?,
                offset: parse_signed(args[1])?,
                whence: small(2)?,
            }
        }
        b"rename" => {
            want(2)?;
            FileIoRequest::Rename {
                old: string(0)?,
                new: string(1)?,
            }
        }
        b"unlink" => {
            want(1)?;
            FileIoRequest::Unlink { path: string(0)? }
        }
        b"stat" => {
            want(2)?;
            FileIoRequest::Stat {
                path: string(0)?,
                buf: number(1)?,
            }
        }
        b"fstat" => {
            want(2)?;
            FileIoRequest::Fstat {
                fd: small(0)?,
                buf: number(1)?,
            }
        }
        b"gettimeofday" => {
            want(2)?;
            FileIoRequest::Gettimeofday { tv: number(0)? }
        }
        b"isatty" => {
            want(1)?;
            FileIoRequest::Isatty { fd: small(0)? }
        }
        b"system" => {
            want(1)?;
            FileIoRequest::System {
                command: string(0)?,
            }
        }
        other => FileIoRequest::Unknown(String::from_utf8_lossy(other).into_owned()),
    })
}

/// `pointer/length`, the length optionally followed by QEMU's stray `x`.
fn parse_string(field: &[u8]) -> Result<GuestBuffer, ParseError> {
    let (addr, len) = super::split_once(field, b'/')
        .ok_or(ParseError::malformed(PACKET, "a string is pointer/length"))?;
    let len = len.strip_suffix(b"x").unwrap_or(len);
    Ok(GuestBuffer {
        addr: parse_hex_u64(addr).map_err(ParseError::hex(PACKET))?,
        len: parse_hex_u64(len).map_err(ParseError::hex(PACKET))?,
    })
}

/// A hex number with an optional `-`, or a 64-bit two's complement.
fn parse_signed(field: &[u8]) -> Result<i64, ParseError> {
    let (negative, digits) = match field.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, field),
    };
    let value = parse_hex_u64(digits).map_err(ParseError::hex(PACKET))? as i64;
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Appends the reply `F<retcode>` or `F-1,<errno>`: `result` is the call's
/// non-negative return value, or the protocol errno it failed with.
pub fn write_file_io_reply(result: Result<u64, u32>, out: &mut Vec<u8>) {
    out.push(b'F');
    match result {
        Ok(value) => write_hex_u64(value, out),
        Err(errno) => {
            out.extend_from_slice(b"-1,");
            write_hex_u64(u64::from(errno), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(payload: &str, expected: Result<FileIoRequest, ()>) {
        assert_eq!(
            FileIoRequest::parse(payload.as_bytes()).map(|r| r.map_err(drop)),
            Some(expected),
            "{payload:?}"
        );
    }

    fn buffer(addr: u64, len: u64) -> GuestBuffer {
        GuestBuffer { addr, len }
    }

    #[test]
    fn requests_as_qemu_sends_them() {
        check(
            "Fopen,20001000/b,0,1b6",
            Ok(FileIoRequest::Open {
                path: buffer(0x2000_1000, 0xb),
                flags: 0,
                mode: 0o666,
            }),
        );
        // QEMU 8 and later: a stray 'x' after the string length.
        check(
            "Fopen,20001000/bx,601,1b6",
            Ok(FileIoRequest::Open {
                path: buffer(0x2000_1000, 0xb),
                flags: 0x601,
                mode: 0o666,
            }),
        );
        check(
            "Fwrite,2,200003f0,d",
            Ok(FileIoRequest::Write {
                fd: 2,
                buffer: buffer(0x2000_03f0, 0xd),
            }),
        );
        check(
            "Fread,3,20000000,40",
            Ok(FileIoRequest::Read {
                fd: 3,
                buffer: buffer(0x2000_0000, 0x40),
            }),
        );
        check("Fclose,3", Ok(FileIoRequest::Close { fd: 3 }));
        check(
            "Flseek,3,-10,2",
            Ok(FileIoRequest::Lseek {
                fd: 3,
                offset: -16,
                whence: 2,
            }),
        );
        check(
            "Frename,100/5,200/6",
            Ok(FileIoRequest::Rename {
                old: buffer(0x100, 5),
                new: buffer(0x200, 6),
            }),
        );
        check(
            "Funlink,100/5",
            Ok(FileIoRequest::Unlink {
                path: buffer(0x100, 5),
            }),
        );
        check(
            "Ffstat,3,20003fc0",
            Ok(FileIoRequest::Fstat {
                fd: 3,
                buf: 0x2000_3fc0,
            }),
        );
        check(
            "Fsystem,100/1a",
            Ok(FileIoRequest::System {
                command: buffer(0x100, 0x1a),
            }),
        );
        check("Fisatty,1", Ok(FileIoRequest::Isatty { fd: 1 }));
        check(
            "Fgettimeofday,100,0",
            Ok(FileIoRequest::Gettimeofday { tv: 0x100 }),
        );
        check(
            "Fmkdir,100/5,1ff",
            Ok(FileIoRequest::Unknown("mkdir".into())),
        );
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        for payload in [
            "F",
            "Fopen",
            "Fopen,100,0,0",
            "Fopen,zz/5,0",
            "Fwrite,2,100",
            "Fwrite,2,100,5,6",
            "Fclose,",
            "Flseek,3,-,0",
            "Frename,100/5",
            "Fread,123456789,0,0",
        ] {
            assert!(
                matches!(FileIoRequest::parse(payload.as_bytes()), Some(Err(_))),
                "{payload:?}"
            );
        }
        assert_eq!(FileIoRequest::parse(b"OK"), None);
        assert_eq!(FileIoRequest::parse(b"T05"), None);
    }

    #[test]
    fn replies() {
        let reply = |result| {
            let mut out = Vec::new();
            write_file_io_reply(result, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(reply(Ok(0)), "F0");
        assert_eq!(reply(Ok(0x1d)), "F1d");
        assert_eq!(reply(Err(errno::EACCES)), "F-1,d");
    }

    #[test]
    fn structures_are_big_endian_and_sized() {
        let stat = FileStat {
            mode: 0o100644,
            size: 0x1234,
            mtime: 7,
        }
        .to_bytes();
        assert_eq!(&stat[8..12], &0o100644u32.to_be_bytes());
        assert_eq!(&stat[28..36], &0x1234u64.to_be_bytes());
        assert_eq!(&stat[56..60], &7u32.to_be_bytes());
        let tv = timeval_bytes(1, 2);
        assert_eq!(tv, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
}
