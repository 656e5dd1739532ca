//! The host side of the guest's semihosting calls: what the gateway does
//! for a File-I/O request the mux has resolved ([`HostCall`]).
//!
//! Firmware is untrusted. QEMU's own semihosting (`target=native`) runs its
//! calls on the server's host as the server's user: `SYS_SYSTEM` runs a
//! shell command, `SYS_OPEN` opens any path. With `target=gdb` QEMU hands
//! the calls to the gateway instead, and this module answers them under one
//! policy:
//!
//! - descriptors 0, 1 and 2 are the console: writes go to the session's
//!   console log ([`SemihostingConfig::console`]), a read of 0 is end of
//!   file, and they report as terminals;
//! - files live in one directory per session ([`SemihostingConfig::sandbox`]):
//!   a path must be relative, with no `..` component and no symbolic link on
//!   the way, and is resolved below that directory; anything else fails with
//!   `EACCES` and never touches the host;
//! - `system` always fails with `EPERM`, and its command is not even read;
//! - bounded: at most [`SemihostingConfig::max_open_files`] open files and
//!   [`SemihostingConfig::max_written_bytes`] written over the session's
//!   life (`ENOSPC` after that), so a guest cannot fill the host's disk.
//!
//! The path check is pure ([`confine`]) and unit-tested; the rest is thin
//! file I/O, run on the gateway's own thread (files are local and small).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use virserver_rsp::packets::{FileStat, errno, open_flags, timeval_bytes};

use crate::hexdump;
use crate::mux::{HostCall, HostReply};

/// Where the console bytes of the guest's semihosting go.
pub type ConsoleSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How the gateway answers the guest's semihosting calls.
#[derive(Clone)]
pub struct SemihostingConfig {
    /// The session's sandbox directory; it must exist.
    pub sandbox: PathBuf,
    /// Receives what the guest writes to its console descriptors.
    pub console: ConsoleSink,
    /// Files open at once.
    pub max_open_files: usize,
    /// Bytes the guest may write to files over the session's life.
    pub max_written_bytes: u64,
}

impl SemihostingConfig {
    /// The defaults: 16 open files, 64 MiB written.
    pub fn new(sandbox: impl Into<PathBuf>, console: ConsoleSink) -> SemihostingConfig {
        SemihostingConfig {
            sandbox: sandbox.into(),
            console,
            max_open_files: 16,
            max_written_bytes: 64 << 20,
        }
    }
}

impl fmt::Debug for SemihostingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemihostingConfig")
            .field("sandbox", &self.sandbox)
            .field("max_open_files", &self.max_open_files)
            .field("max_written_bytes", &self.max_written_bytes)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SemihostingConfig {
    fn eq(&self, other: &Self) -> bool {
        self.sandbox == other.sandbox
            && Arc::ptr_eq(&self.console, &other.console)
            && self.max_open_files == other.max_open_files
            && self.max_written_bytes == other.max_written_bytes
    }
}

impl Eq for SemihostingConfig {}

/// The first descriptor handed out for a file (0-2 are the console).
const FIRST_FILE_FD: u32 = 3;
/// Longest path component.
const MAX_NAME: usize = 255;

/// Answers [`HostCall`]s for one gateway. Without a config every call but
/// the console's fails with `EPERM`.
pub(crate) struct Semihosting {
    config: Option<SemihostingConfig>,
    files: BTreeMap<u32, File>,
    written: u64,
}

impl Semihosting {
    pub(crate) fn new(config: Option<SemihostingConfig>) -> Semihosting {
        Semihosting {
            config,
            files: BTreeMap::new(),
            written: 0,
        }
    }

    /// Files the guest holds open.
    pub(crate) fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Carries out one call.
    pub(crate) fn call(&mut self, call: HostCall) -> HostReply {
        let Some(config) = self.config.clone() else {
            tracing::warn!(
                ?call,
                "File-I/O request but no semihosting is configured; refused"
            );
            return HostReply::error(errno::EPERM);
        };
        match call {
            HostCall::Write { fd: 1 | 2, data } => {
                (config.console)(&data);
                HostReply::value(data.len() as u64)
            }
            HostCall::Read { fd: 0, .. } => HostReply::value(0),
            HostCall::Close { fd: 0..=2 } => HostReply::value(0),
            HostCall::Isatty { fd: 0..=2 } => HostReply::value(1),
            HostCall::Fstat { fd: 0..=2 } => stat_reply(FileStat {
                mode: 0o20666,
                size: 0,
                mtime: 0,
            }),
            HostCall::Isatty { fd } => match self.files.contains_key(&fd) {
                true => HostReply::value(0),
                false => HostReply::error(errno::EBADF),
            },
            HostCall::Open { path, flags, mode } => self.open(&config, &path, flags, mode),
            HostCall::Close { fd } => match self.files.remove(&fd) {
                Some(_) => HostReply::value(0),
                None => HostReply::error(errno::EBADF),
            },
            HostCall::Read { fd, count } => self.read(fd, count),
            HostCall::Write { fd, data } => self.write(&config, fd, &data),
            HostCall::Lseek { fd, offset, whence } => self.lseek(fd, offset, whence),
            HostCall::Fstat { fd } => match self.files.get(&fd) {
                Some(file) => match file.metadata() {
                    Ok(metadata) => {
                        // Returns the size where the protocol says 0: QEMU up to 8.0
                        // (Debian's 7.2) fails SYS_FLEN with EOVERFLOW unless the
                        // return value equals st_size; later versions read st_size
                        // from the structure and ignore the value.
                        let stat = file_stat(&metadata);
                        HostReply {
                            result: Ok(stat.size),
                            data: stat.to_bytes().to_vec(),
                        }
                    }
                    Err(error) => HostReply::error(host_errno(&error)),
                },
                None => HostReply::error(errno::EBADF),
            },
            HostCall::Stat { path } => match resolve(&config, &path) {
                Ok(full) => match std::fs::symlink_metadata(&full) {
                    Ok(metadata) => stat_reply(file_stat(&metadata)),
                    Err(error) => HostReply::error(host_errno(&error)),
                },
                Err(code) => HostReply::error(code),
            },
            HostCall::Unlink { path } => match resolve(&config, &path) {
                Ok(full) => result_reply(std::fs::remove_file(full).map(|()| 0)),
                Err(code) => HostReply::error(code),
            },
            HostCall::Rename { old, new } => {
                match (resolve(&config, &old), resolve(&config, &new)) {
                    (Ok(old), Ok(new)) => result_reply(std::fs::rename(old, new).map(|()| 0)),
                    (Err(code), _) | (_, Err(code)) => HostReply::error(code),
                }
            }
            HostCall::Gettimeofday => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                HostReply {
                    result: Ok(0),
                    data: timeval_bytes(now.as_secs() as u32, u64::from(now.subsec_micros()))
                        .to_vec(),
                }
            }
            HostCall::System { .. } => {
                tracing::warn!(
                    "the guest asked the host to run a command (semihosting SYS_SYSTEM); refused"
                );
                HostReply::error(errno::EPERM)
            }
        }
    }

    fn open(
        &mut self,
        config: &SemihostingConfig,
        path: &[u8],
        flags: u32,
        mode: u32,
    ) -> HostReply {
        if self.files.len() >= config.max_open_files {
            return HostReply::error(errno::EMFILE);
        }
        let full = match resolve(config, path) {
            Ok(full) => full,
            Err(code) => return HostReply::error(code),
        };
        let mut options = OpenOptions::new();
        match flags & 3 {
            open_flags::RDONLY => options.read(true),
            open_flags::WRONLY => options.write(true),
            open_flags::RDWR => options.read(true).write(true),
            _ => return HostReply::error(errno::EINVAL),
        };
        let writes = flags & 3 != open_flags::RDONLY;
        options
            .append(flags & open_flags::APPEND != 0)
            .truncate(writes && flags & open_flags::TRUNC != 0);
        if flags & open_flags::CREAT != 0 {
            if !writes {
                return HostReply::error(errno::EINVAL);
            }
            if flags & open_flags::EXCL != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
        }
        options
            .mode(0o600 | (mode & 0o644))
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
        let file = match options.open(&full) {
            Ok(file) => file,
            Err(error) => return HostReply::error(host_errno(&error)),
        };
        match file.metadata() {
            Ok(metadata) if metadata.is_dir() => return HostReply::error(errno::EISDIR),
            Ok(metadata) if !metadata.is_file() => return HostReply::error(errno::EACCES),
            Ok(_) => {}
            Err(error) => return HostReply::error(host_errno(&error)),
        }
        let fd = (FIRST_FILE_FD..)
            .find(|fd| !self.files.contains_key(fd))
            .unwrap_or(FIRST_FILE_FD);
        self.files.insert(fd, file);
        HostReply::value(u64::from(fd))
    }

    fn read(&mut self, fd: u32, count: u64) -> HostReply {
        let Some(file) = self.files.get_mut(&fd) else {
            return HostReply::error(errno::EBADF);
        };
        let mut data = Vec::new();
        match file.take(count).read_to_end(&mut data) {
            Ok(read) => HostReply {
                result: Ok(read as u64),
                data,
            },
            Err(error) => HostReply::error(host_errno(&error)),
        }
    }

    fn write(&mut self, config: &SemihostingConfig, fd: u32, data: &[u8]) -> HostReply {
        let Some(file) = self.files.get_mut(&fd) else {
            return HostReply::error(errno::EBADF);
        };
        if self.written.saturating_add(data.len() as u64) > config.max_written_bytes {
            tracing::warn!(
                limit = config.max_written_bytes,
                "the guest wrote its whole semihosting quota; refused"
            );
            return HostReply::error(errno::ENOSPC);
        }
        match file.write_all(data) {
            Ok(()) => {
                self.written += data.len() as u64;
                HostReply::value(data.len() as u64)
            }
            Err(error) => HostReply::error(host_errno(&error)),
        }
    }

    fn lseek(&mut self, fd: u32, offset: i64, whence: u32) -> HostReply {
        let Some(file) = self.files.get_mut(&fd) else {
            return HostReply::error(errno::EBADF);
        };
        let position = match whence {
            0 if offset >= 0 => SeekFrom::Start(offset as u64),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => return HostReply::error(errno::EINVAL),
        };
        result_reply(file.seek(position))
    }
}

/// The host path for a guest path, below `config.sandbox`, or the errno
/// that refuses it. No symbolic link may be on the way.
fn resolve(config: &SemihostingConfig, guest: &[u8]) -> Result<PathBuf, u32> {
    let relative = confine(guest).inspect_err(|_| {
        tracing::warn!(
            path = %hexdump(guest),
            "semihosting path outside the session's sandbox; refused"
        );
    })?;
    let mut full = config.sandbox.clone();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        full.push(component);
        if components.peek().is_some() {
            match std::fs::symlink_metadata(&full) {
                Ok(metadata) if metadata.file_type().is_symlink() => return Err(errno::EACCES),
                Ok(metadata) if !metadata.is_dir() => return Err(errno::ENOTDIR),
                Ok(_) => {}
                Err(error) => return Err(host_errno(&error)),
            }
        }
    }
    Ok(full)
}

/// The policy for a guest path: relative, no `..`, no NUL, no over-long
/// component. Returns it cleaned of `.` and empty components.
pub fn confine(guest: &[u8]) -> Result<PathBuf, u32> {
    if guest.is_empty() {
        return Err(errno::ENOENT);
    }
    if guest.contains(&0) {
        return Err(errno::EINVAL);
    }
    let path = Path::new(OsStr::from_bytes(guest));
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) if name.len() > MAX_NAME => return Err(errno::ENAMETOOLONG),
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(errno::EACCES);
            }
        }
    }
    if clean.as_os_str().is_empty() {
        // "." or "./": the sandbox itself, which is no file.
        return Err(errno::EISDIR);
    }
    Ok(clean)
}

fn file_stat(metadata: &std::fs::Metadata) -> FileStat {
    FileStat {
        mode: metadata.mode(),
        size: metadata.len(),
        mtime: metadata.mtime().clamp(0, i64::from(u32::MAX)) as u32,
    }
}

fn stat_reply(stat: FileStat) -> HostReply {
    HostReply {
        result: Ok(0),
        data: stat.to_bytes().to_vec(),
    }
}

fn result_reply(result: std::io::Result<u64>) -> HostReply {
    match result {
        Ok(value) => HostReply::value(value),
        Err(error) => HostReply::error(host_errno(&error)),
    }
}

/// The protocol's errno for a host error.
fn host_errno(error: &std::io::Error) -> u32 {
    match error.raw_os_error() {
        Some(libc::EPERM) => errno::EPERM,
        Some(libc::ENOENT) => errno::ENOENT,
        Some(libc::EINTR) => errno::EINTR,
        Some(libc::EBADF) => errno::EBADF,
        // O_NOFOLLOW on a symbolic link.
        Some(libc::EACCES | libc::ELOOP) => errno::EACCES,
        Some(libc::EFAULT) => errno::EFAULT,
        Some(libc::EBUSY) => errno::EBUSY,
        Some(libc::EEXIST) => errno::EEXIST,
        Some(libc::ENODEV) => errno::ENODEV,
        Some(libc::ENOTDIR) => errno::ENOTDIR,
        Some(libc::EISDIR) => errno::EISDIR,
        Some(libc::EINVAL) => errno::EINVAL,
        Some(libc::ENFILE) => errno::ENFILE,
        Some(libc::EMFILE) => errno::EMFILE,
        Some(libc::EFBIG) => errno::EFBIG,
        Some(libc::ENOSPC) => errno::ENOSPC,
        Some(libc::ESPIPE) => errno::ESPIPE,
        Some(libc::EROFS) => errno::EROFS,
        Some(libc::ENAMETOOLONG) => errno::ENAMETOOLONG,
        _ => errno::EUNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn check(guest: &str, expected: Result<&str, u32>) {
        assert_eq!(
            confine(guest.as_bytes()),
            expected.map(PathBuf::from),
            "{guest:?}"
        );
    }

    #[test]
    fn paths_stay_in_the_sandbox() {
        check("out.txt", Ok("out.txt"));
        check("./out.txt", Ok("out.txt"));
        check("dir//a.bin", Ok("dir/a.bin"));
        check("/etc/passwd", Err(errno::EACCES));
        check("//etc/passwd", Err(errno::EACCES));
        check("../x", Err(errno::EACCES));
        check("sub/../../x", Err(errno::EACCES));
        check("sub/..", Err(errno::EACCES));
        check("a/b/../c", Err(errno::EACCES));
        check("", Err(errno::ENOENT));
        check(".", Err(errno::EISDIR));
        check(&"n".repeat(256), Err(errno::ENAMETOOLONG));
        assert_eq!(confine(b"a\0b"), Err(errno::EINVAL));
    }

    fn sandbox() -> (tempfile::TempDir, Semihosting, Arc<Mutex<Vec<u8>>>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("files")).unwrap();
        let console = Arc::new(Mutex::new(Vec::new()));
        let sink = console.clone();
        let config = SemihostingConfig::new(
            dir.path().join("files"),
            Arc::new(move |bytes: &[u8]| sink.lock().unwrap().extend_from_slice(bytes)),
        );
        (dir, Semihosting::new(Some(config)), console)
    }

    fn open(host: &mut Semihosting, path: &str, flags: u32) -> Result<u64, u32> {
        host.call(HostCall::Open {
            path: path.as_bytes().to_vec(),
            flags,
            mode: 0o644,
        })
        .result
    }

    const CREATE: u32 = open_flags::WRONLY | open_flags::CREAT | open_flags::TRUNC;

    #[test]
    fn files_round_trip_inside_the_sandbox() {
        let (dir, mut host, _) = sandbox();
        let fd = open(&mut host, "out.txt", CREATE).unwrap() as u32;
        assert_eq!(fd, FIRST_FILE_FD);
        let write = host.call(HostCall::Write {
            fd,
            data: b"hello\n".to_vec(),
        });
        assert_eq!(write.result, Ok(6));
        assert_eq!(host.call(HostCall::Close { fd }).result, Ok(0));
        assert_eq!(
            std::fs::read(dir.path().join("files/out.txt")).unwrap(),
            b"hello\n"
        );
        let fd = open(&mut host, "out.txt", open_flags::RDONLY).unwrap() as u32;
        let stat = host.call(HostCall::Fstat { fd });
        assert_eq!(&stat.data[28..36], &6u64.to_be_bytes());
        assert_eq!(stat.result, Ok(6), "QEMU 7.2 wants st_size as the value");
        let read = host.call(HostCall::Read { fd, count: 100 });
        assert_eq!((read.result, read.data), (Ok(6), b"hello\n".to_vec()));
        assert_eq!(
            host.call(HostCall::Lseek {
                fd,
                offset: 1,
                whence: 0
            })
            .result,
            Ok(1)
        );
        assert_eq!(host.call(HostCall::Isatty { fd }).result, Ok(0));
        assert_eq!(
            host.call(HostCall::Rename {
                old: b"out.txt".to_vec(),
                new: b"moved.txt".to_vec()
            })
            .result,
            Ok(0)
        );
        assert_eq!(
            host.call(HostCall::Unlink {
                path: b"moved.txt".to_vec()
            })
            .result,
            Ok(0)
        );
        assert_eq!(
            host.call(HostCall::Close { fd: 99 }).result,
            Err(errno::EBADF)
        );
    }

    #[test]
    fn escapes_are_refused_and_touch_nothing() {
        let (dir, mut host, _) = sandbox();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("files/link")).unwrap();
        assert_eq!(open(&mut host, "/etc/passwd", 0), Err(errno::EACCES));
        assert_eq!(open(&mut host, "../secret", 0), Err(errno::EACCES));
        assert_eq!(open(&mut host, "link/secret", 0), Err(errno::EACCES));
        assert_eq!(open(&mut host, "link", 0), Err(errno::EACCES));
        assert_eq!(open(&mut host, "../escaped", CREATE), Err(errno::EACCES));
        assert_eq!(
            host.call(HostCall::Unlink {
                path: b"../secret".to_vec()
            })
            .result,
            Err(errno::EACCES)
        );
        assert_eq!(
            host.call(HostCall::Rename {
                old: b"link/secret".to_vec(),
                new: b"mine".to_vec()
            })
            .result,
            Err(errno::EACCES)
        );
        assert_eq!(
            host.call(HostCall::System {
                command: b"touch /tmp/x".to_vec()
            })
            .result,
            Err(errno::EPERM)
        );
        assert!(dir.path().join("secret").exists());
        assert!(!dir.path().join("escaped").exists());
        assert!(!dir.path().join("files/mine").exists());
    }

    #[test]
    fn console_and_limits() {
        let (_dir, mut host, console) = sandbox();
        let write = host.call(HostCall::Write {
            fd: 2,
            data: b"semihosted\n".to_vec(),
        });
        assert_eq!(write.result, Ok(11));
        assert_eq!(*console.lock().unwrap(), b"semihosted\n");
        assert_eq!(host.call(HostCall::Read { fd: 0, count: 8 }).result, Ok(0));
        assert_eq!(host.call(HostCall::Isatty { fd: 1 }).result, Ok(1));
        for index in 0..16 {
            assert!(open(&mut host, &format!("f{index}"), CREATE).is_ok());
        }
        assert_eq!(open(&mut host, "one-too-many", CREATE), Err(errno::EMFILE));
        host.config.as_mut().unwrap().max_written_bytes = 4;
        let write = host.call(HostCall::Write {
            fd: FIRST_FILE_FD,
            data: b"12345".to_vec(),
        });
        assert_eq!(write.result, Err(errno::ENOSPC));
        assert_eq!(
            Semihosting::new(None)
                .call(HostCall::Write {
                    fd: 1,
                    data: b"x".to_vec()
                })
                .result,
            Err(errno::EPERM)
        );
    }
}
