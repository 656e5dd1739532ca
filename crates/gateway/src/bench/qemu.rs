//! [`QemuProcess`]: a QEMU started the way the server starts it (stub on a
//! unix socket, QMP on another, console on stdio), for the benchmark and the
//! integration tests. The process is killed when the value is dropped and
//! its socket directory removed; its console output is collected.
//!
//! This is the one place outside the backend that builds a QEMU command
//! line: the benchmark must run without the server.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// A running QEMU, halted at start (`-S`).
#[derive(Debug)]
pub struct QemuProcess {
    child: Child,
    directory: PathBuf,
    /// The GDB stub's unix socket.
    pub gdb_socket: PathBuf,
    /// The QMP unix socket.
    pub qmp_socket: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
}

impl QemuProcess {
    /// Starts `qemu` (such as `qemu-system-arm`) on `machine` with `kernel`,
    /// and waits until it answers QMP (the machine is built).
    pub async fn start(qemu: &Path, machine: &str, kernel: &Path) -> io::Result<QemuProcess> {
        QemuProcess::start_with(qemu, machine, kernel, &[]).await
    }

    /// [`QemuProcess::start`] with more arguments (`-bios none` for RISC-V
    /// `virt`, ...).
    pub async fn start_with(
        qemu: &Path,
        machine: &str,
        kernel: &Path,
        extra: &[&str],
    ) -> io::Result<QemuProcess> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let directory = std::env::temp_dir().join(format!(
            "virserver-gateway-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&directory)?;
        let gdb_socket = directory.join("gdb.sock");
        let qmp_socket = directory.join("qmp.sock");
        let mut child = Command::new(qemu)
            .args(["-M", machine, "-nodefaults", "-display", "none", "-S"])
            .args(["-chardev", "stdio,id=console,mux=on,signal=off"])
            .args(["-serial", "chardev:console"])
            .args([
                "-semihosting-config",
                "enable=on,target=native,chardev=console",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=gdb,path={},server=on,wait=off",
                gdb_socket.display()
            ))
            .args(["-gdb", "chardev:gdb"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
            .args(extra)
            .arg("-kernel")
            .arg(kernel)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut stdout) = child.stdout.take() {
            let output = output.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(count) = stdout.read(&mut buffer).await {
                    if count == 0 {
                        break;
                    }
                    if let Ok(mut output) = output.lock() {
                        output.extend_from_slice(&buffer[..count]);
                    }
                }
            });
        }
        let process = QemuProcess {
            child,
            directory,
            gdb_socket,
            qmp_socket,
            output,
        };
        for _ in 0..200 {
            // The sockets appear before the machine is built; QMP answers only
            // once it is (a stub asked earlier can answer for a CPU not yet reset).
            if process.gdb_socket.exists()
                && process.qmp_socket.exists()
                && process.qmp("query-status").await.is_ok()
            {
                return Ok(process);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "QEMU did not create its sockets",
        ))
    }

    /// Runs one QMP command (after `qmp_capabilities`) and returns its
    /// reply line.
    pub async fn qmp(&self, command: &str) -> io::Result<String> {
        let stream = UnixStream::connect(&self.qmp_socket).await?;
        let (reader, mut writer) = stream.into_split();
        let mut lines = BufReader::new(reader).lines();
        let mut reply = String::new();
        let exchange = async {
            lines.next_line().await?; // greeting
            for request in ["qmp_capabilities", command] {
                let line = format!("{{\"execute\":\"{request}\"}}\n");
                writer.write_all(line.as_bytes()).await?;
                loop {
                    let line = lines.next_line().await?.unwrap_or_default();
                    if line.contains("\"return\"") || line.contains("\"error\"") || line.is_empty()
                    {
                        reply = line;
                        break;
                    }
                }
            }
            io::Result::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "QMP timed out"))??;
        Ok(reply)
    }

    /// Everything QEMU printed on its console so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|output| String::from_utf8_lossy(&output).into_owned())
            .unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The socket directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
