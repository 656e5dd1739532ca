//! One `Config` for the whole server, merged from three sources so that the server
//! works with nothing configured: built-in defaults, then an optional TOML file, then
//! `VIRSERVER_*` environment variables and command-line flags (clap reads both; a flag
//! wins over its variable). Every field has a default that needs no set-up.

use crate::auth::AuthMode;
use crate::backend::qemu::confine::ConfinementMode;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path}: {error}")]
    Parse {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error("cannot create data dir {path}: {error}")]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "allow_raw_monitor is refused: the GDB endpoints listen on {gdb_listen}, which is not \
         loopback, and QEMU's monitor runs host commands for anyone who reaches them"
    )]
    RawMonitorNotLoopback { gdb_listen: IpAddr },
    #[error(
        "allow_raw_monitor is refused while authentication is on: QEMU's monitor would give \
         every authenticated user the host"
    )]
    RawMonitorWithAuth,
    #[error(
        "the server listens on {listen}, which is not loopback, with authentication off: \
         anyone who reaches it could run firmware and debug every session. Start it with \
         `--auth required` (create a key first: `virserver keys create --name NAME --role \
         admin`), or with `--auth off` to accept that explicitly"
    )]
    OpenListen { listen: SocketAddr },
    #[error("--tls-cert and --tls-key go together: {given} was given without the other")]
    TlsHalf { given: &'static str },
    #[error("cors origin {origin:?} is not an origin: give scheme://host[:port] (no path), or *")]
    BadOrigin { origin: String },
}

/// The settings of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP/GraphQL listener.
    pub listen: SocketAddr,
    /// Root of everything the server writes: database, programs, per-session run dirs.
    pub data_dir: PathBuf,
    /// sea-orm database URL; `None` means the SQLite file `virserver.db` in `data_dir`.
    pub database: Option<String>,
    /// A folder of board templates (`*.yaml`) besides the built-in ones compiled into
    /// the binary; a board there replaces the built-in of the same id.
    pub boards_dir: Option<PathBuf>,
    /// Largest accepted program upload, in bytes.
    pub max_upload_bytes: u64,
    /// How many bytes of recent UART output a late subscriber is replayed.
    pub uart_replay_bytes: usize,
    /// How many bytes of snapshot images one session may keep.
    pub snapshot_quota_bytes: u64,
    /// A PAUSED session idle this long is hibernated (saved, its emulator ended) and
    /// woken on use; `None`: never.
    pub hibernate_after: Option<std::time::Duration>,
    /// This server's name in a cluster; jobs record which node ran them.
    pub node_name: String,
    /// Redis URL: jobs go through Redis Streams and events cross nodes. `None`: the
    /// embedded queue (persisted in the database).
    pub redis_url: Option<String>,
    /// Jobs this node runs at once.
    pub max_concurrent_jobs: usize,
    /// Jobs waiting or running before `createJob` answers QUEUE_FULL.
    pub max_queued_jobs: u64,
    /// A job whose node stopped heartbeating for this long is run again elsewhere.
    pub job_reclaim_seconds: u64,
    /// A job handed out more often than this without an end is given up (ERROR).
    pub job_max_deliveries: u64,
    /// The hit-count TCG plugin; `None` looks beside the executable.
    pub trace_plugin: Option<PathBuf>,
    /// Address the sessions' GDB endpoints bind to (each on a free port).
    pub gdb_listen: std::net::IpAddr,
    /// GDB `monitor` commands outside the gateway's allow-list go to QEMU's monitor
    /// (HMP), which runs host commands: a developer's own machine only, see
    /// [`check_raw_monitor`].
    pub allow_raw_monitor: bool,
    /// How QEMU processes are confined (seccomp, Landlock, no_new_privs).
    pub confinement: ConfinementMode,
    /// The GDB that serves DAP and GDB/MI (`gdb::locate`); `None` looks for the newest
    /// Python-enabled GDB >= 14 in the usual places.
    pub gdb_path: Option<PathBuf>,
    /// Whether requests need an API key (`auth`); `None` until [`Config::load`] decides
    /// from the listen address: off on loopback, refused elsewhere unless given.
    pub auth: Option<AuthMode>,
    /// Sessions one user may have (`sessions::quota`); `None`: no limit.
    pub max_sessions_per_user: Option<u64>,
    /// Powered sessions one user may have at once; `None`: no limit.
    pub max_powered_sessions: Option<u64>,
    /// Jobs one user may have waiting or running; `None`: no limit.
    pub max_queued_jobs_per_user: Option<u64>,
    /// GraphQL requests per second one user may send (a burst of as many); `None`: no
    /// limit.
    pub rate_limit: Option<u32>,
    /// Browser origins besides the server's own that may call the API (`api::origin`);
    /// `*` allows any. Empty: closed.
    pub cors_origins: Vec<String>,
    /// PEM certificate chain and private key: the listener serves HTTPS and WSS
    /// (`tls`). `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// A second listener that serves only `/metrics`, without authentication.
    pub metrics_listen: Option<SocketAddr>,
}

/// The certificate chain and key the listener serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("var"),
            database: None,
            boards_dir: None,
            max_upload_bytes: 32 * 1024 * 1024,
            uart_replay_bytes: 64 * 1024,
            snapshot_quota_bytes: 256 * 1024 * 1024,
            hibernate_after: None,
            node_name: default_node_name(),
            redis_url: None,
            max_concurrent_jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queued_jobs: 1000,
            job_reclaim_seconds: 30,
            job_max_deliveries: 5,
            trace_plugin: None,
            gdb_listen: std::net::IpAddr::from([127, 0, 0, 1]),
            allow_raw_monitor: false,
            confinement: ConfinementMode::On,
            gdb_path: None,
            auth: None,
            max_sessions_per_user: None,
            max_powered_sessions: None,
            max_queued_jobs_per_user: None,
            rate_limit: None,
            cors_origins: Vec::new(),
            tls: None,
            metrics_listen: None,
        }
    }
}

/// The host name, which is what a node is called unless told otherwise.
fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

/// The optional config file: the same keys as `Config`, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub boards_dir: Option<PathBuf>,
    pub max_upload_bytes: Option<u64>,
    pub uart_replay_bytes: Option<usize>,
    pub snapshot_quota_bytes: Option<u64>,
    /// A duration ("10m", "90s", "500ms") or "off".
    pub hibernate_after: Option<Hibernate>,
    pub node_name: Option<String>,
    pub redis_url: Option<String>,
    pub max_concurrent_jobs: Option<usize>,
    pub max_queued_jobs: Option<u64>,
    pub job_reclaim_seconds: Option<u64>,
    pub job_max_deliveries: Option<u64>,
    pub trace_plugin: Option<PathBuf>,
    pub gdb_listen: Option<std::net::IpAddr>,
    pub allow_raw_monitor: Option<bool>,
    pub confinement: Option<ConfinementMode>,
    pub gdb_path: Option<PathBuf>,
    pub auth: Option<AuthMode>,
    pub max_sessions_per_user: Option<u64>,
    pub max_powered_sessions: Option<u64>,
    pub max_queued_jobs_per_user: Option<u64>,
    pub rate_limit: Option<u32>,
    pub cors_origins: Option<Vec<String>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
}

/// Values that came from flags or the environment; `None` where neither was given.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigOverrides {
    /// Address to listen on for HTTP, GraphQL and WebSocket.
    #[arg(long, env = "VIRSERVER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite file, uploaded programs and session sockets.
    #[arg(long, env = "VIRSERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (sqlite://FILE?mode=rwc or postgres://...). Default: SQLite in the data dir.
    #[arg(long, env = "VIRSERVER_DATABASE")]
    pub database: Option<String>,
    /// A folder of board templates (*.yaml) to add to the built-in ones; a board there
    /// replaces the built-in of the same id.
    #[arg(long, env = "VIRSERVER_BOARDS_DIR")]
    pub boards_dir: Option<PathBuf>,
    /// Largest program upload accepted, in bytes.
    #[arg(long, env = "VIRSERVER_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Bytes of recent console output a late subscriber is replayed (default 64 KiB).
    #[arg(long, env = "VIRSERVER_UART_REPLAY_BYTES")]
    pub uart_replay_bytes: Option<usize>,
    /// Bytes of snapshot images one session may keep (default 256 MiB).
    #[arg(long, env = "VIRSERVER_SNAPSHOT_QUOTA_BYTES")]
    pub snapshot_quota_bytes: Option<u64>,
    /// Hibernate PAUSED sessions idle this long ("10m", "90s", "500ms"; default off):
    /// their machine is saved to disk and its emulator ends; any use wakes it.
    #[arg(long, env = "VIRSERVER_HIBERNATE_AFTER", value_parser = parse_hibernate_after)]
    pub hibernate_after: Option<Hibernate>,
    /// Name of this node in a cluster (default: the host name).
    #[arg(long, env = "VIRSERVER_NODE_NAME")]
    pub node_name: Option<String>,
    /// Redis URL: share jobs and events with other nodes through Redis Streams.
    #[arg(long = "redis", env = "VIRSERVER_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Jobs this node runs at once (default: the number of cores).
    #[arg(long, env = "VIRSERVER_MAX_CONCURRENT_JOBS")]
    pub max_concurrent_jobs: Option<usize>,
    /// Jobs waiting or running before createJob answers QUEUE_FULL.
    #[arg(long, env = "VIRSERVER_MAX_QUEUED_JOBS")]
    pub max_queued_jobs: Option<u64>,
    /// Seconds without a heartbeat before another node takes a job over.
    #[arg(long, env = "VIRSERVER_JOB_RECLAIM_SECONDS")]
    pub job_reclaim_seconds: Option<u64>,
    /// Deliveries after which a job that never finishes (every node that took it died)
    /// is given up as ERROR.
    #[arg(long, env = "VIRSERVER_JOB_MAX_DELIVERIES")]
    pub job_max_deliveries: Option<u64>,
    /// The hit-count TCG plugin (.so) for coverage with counts.
    #[arg(long, env = "VIRSERVER_TRACE_PLUGIN")]
    pub trace_plugin: Option<PathBuf>,
    /// Address the sessions' GDB endpoints bind to (loopback by default; use
    /// createAttachTicket for one-time access when it is not loopback).
    #[arg(long, env = "VIRSERVER_GDB_LISTEN")]
    pub gdb_listen: Option<std::net::IpAddr>,
    /// Pass GDB `monitor` commands the gateway does not answer to QEMU's monitor (HMP),
    /// which can run host commands: for a developer's own machine. Refused unless the
    /// GDB endpoints are loopback (`--allow-raw-monitor`, or `=false`).
    #[arg(
        long,
        env = "VIRSERVER_ALLOW_RAW_MONITOR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_raw_monitor: Option<bool>,
    /// How QEMU runs confined: `on` (what this host supports, the rest reported),
    /// `required` (refuse to launch without every confinement), `off` (benchmarks and
    /// debugging only).
    #[arg(long, env = "VIRSERVER_CONFINEMENT", value_enum)]
    pub confinement: Option<ConfinementMode>,
    /// The GDB (>= 14, with Python) behind the DAP endpoints and the symbolic debug API.
    /// Default: the newest found on PATH and in the set-up's target/tools.
    #[arg(long = "gdb", env = "VIRSERVER_GDB")]
    pub gdb_path: Option<PathBuf>,
    /// Whether requests need an API key: `required` or `off`. Default: off on a
    /// loopback listen address; elsewhere the server refuses to start until one is given.
    #[arg(long, env = "VIRSERVER_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Sessions one user (API key; `local` with auth off) may have. Default: no limit.
    #[arg(long, env = "VIRSERVER_MAX_SESSIONS_PER_USER")]
    pub max_sessions_per_user: Option<u64>,
    /// Powered sessions (emulators) one user may have at once. Default: no limit.
    #[arg(long, env = "VIRSERVER_MAX_POWERED_SESSIONS")]
    pub max_powered_sessions: Option<u64>,
    /// Jobs one user may have waiting or running; more get LIMIT_EXCEEDED. Default: no
    /// limit (the node's --max-queued-jobs still holds).
    #[arg(long, env = "VIRSERVER_MAX_QUEUED_JOBS_PER_USER")]
    pub max_queued_jobs_per_user: Option<u64>,
    /// GraphQL requests per second one user may send, in bursts of as many; more get
    /// LIMIT_EXCEEDED (HTTP 429). Default: no limit.
    #[arg(long, env = "VIRSERVER_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// A browser origin (scheme://host[:port]) besides the server's own that may call
    /// the API, e.g. a lab dashboard; repeat it, or `*` for any. Default: none, and a
    /// request a browser sends from another origin is refused (FORBIDDEN_ORIGIN).
    #[arg(
        long = "cors-origin",
        env = "VIRSERVER_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// PEM certificate chain: serve HTTPS and WSS (with --tls-key).
    #[arg(long, env = "VIRSERVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "VIRSERVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Also serve /metrics, and only that, without authentication on this address
    /// (for example an internal interface Prometheus scrapes).
    #[arg(long, env = "VIRSERVER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// TOML config file with the same keys (snake_case).
    #[arg(long, env = "VIRSERVER_CONFIG")]
    pub config: Option<PathBuf>,
}

impl Config {
    /// Defaults, then the file named by `--config`, then flags and environment; then
    /// the checks a server must pass before it listens (auth, raw monitor access).
    pub fn load(overrides: &ConfigOverrides) -> Result<Self, ConfigError> {
        let mut config = Self::load_unchecked(overrides)?;
        let auth = match config.auth {
            Some(mode) => mode,
            None if config.listen.ip().is_loopback() => AuthMode::Off,
            None => {
                return Err(ConfigError::OpenListen {
                    listen: config.listen,
                });
            }
        };
        config.auth = Some(auth);
        if let Some(origin) = config
            .cors_origins
            .iter()
            .find(|origin| !crate::api::origin::is_origin(origin))
        {
            return Err(ConfigError::BadOrigin {
                origin: origin.clone(),
            });
        }
        if config.allow_raw_monitor {
            check_raw_monitor(config.gdb_listen, auth == AuthMode::Required)?;
        }
        Ok(config)
    }

    /// The merged settings without the server's checks: for commands that only open
    /// the database (`virserver keys`).
    pub fn load_unchecked(overrides: &ConfigOverrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => ConfigFile::default(),
        };
        let mut config = Config::default();
        let mut tls = (file.tls_cert.clone(), file.tls_key.clone());
        config.apply_file(file);
        config.apply_overrides(overrides);
        set_opt(&mut tls.0, overrides.tls_cert.clone());
        set_opt(&mut tls.1, overrides.tls_key.clone());
        config.tls = match tls {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::TlsHalf {
                    given: "--tls-cert",
                });
            }
            (None, Some(_)) => return Err(ConfigError::TlsHalf { given: "--tls-key" }),
        };
        Ok(config)
    }

    /// Whether requests need an API key (off until [`Config::load`] decided otherwise).
    pub fn auth_mode(&self) -> AuthMode {
        self.auth.unwrap_or(AuthMode::Off)
    }

    fn apply_file(&mut self, file: ConfigFile) {
        set(&mut self.listen, file.listen);
        set(&mut self.data_dir, file.data_dir);
        set_opt(&mut self.database, file.database);
        set_opt(&mut self.boards_dir, file.boards_dir);
        set(&mut self.max_upload_bytes, file.max_upload_bytes);
        set(&mut self.uart_replay_bytes, file.uart_replay_bytes);
        set(&mut self.snapshot_quota_bytes, file.snapshot_quota_bytes);
        if let Some(Hibernate(after)) = file.hibernate_after {
            self.hibernate_after = after;
        }
        set(&mut self.node_name, file.node_name);
        set_opt(&mut self.redis_url, file.redis_url);
        set(&mut self.max_concurrent_jobs, file.max_concurrent_jobs);
        set(&mut self.max_queued_jobs, file.max_queued_jobs);
        set(&mut self.job_reclaim_seconds, file.job_reclaim_seconds);
        set(&mut self.job_max_deliveries, file.job_max_deliveries);
        set_opt(&mut self.trace_plugin, file.trace_plugin);
        set(&mut self.gdb_listen, file.gdb_listen);
        set(&mut self.allow_raw_monitor, file.allow_raw_monitor);
        set(&mut self.confinement, file.confinement);
        set_opt(&mut self.gdb_path, file.gdb_path);
        set_opt(&mut self.auth, file.auth);
        set_opt(&mut self.max_sessions_per_user, file.max_sessions_per_user);
        set_opt(&mut self.max_powered_sessions, file.max_powered_sessions);
        set_opt(
            &mut self.max_queued_jobs_per_user,
            file.max_queued_jobs_per_user,
        );
        set_opt(&mut self.rate_limit, file.rate_limit);
        set(&mut self.cors_origins, file.cors_origins);
        set_opt(&mut self.metrics_listen, file.metrics_listen);
    }

    fn apply_overrides(&mut self, overrides: &ConfigOverrides) {
        set(&mut self.listen, overrides.listen);
        set(&mut self.data_dir, overrides.data_dir.clone());
        set_opt(&mut self.database, overrides.database.clone());
        set_opt(&mut self.boards_dir, overrides.boards_dir.clone());
        set(&mut self.max_upload_bytes, overrides.max_upload_bytes);
        set(&mut self.uart_replay_bytes, overrides.uart_replay_bytes);
        set(
            &mut self.snapshot_quota_bytes,
            overrides.snapshot_quota_bytes,
        );
        if let Some(Hibernate(after)) = overrides.hibernate_after {
            self.hibernate_after = after;
        }
        set(&mut self.node_name, overrides.node_name.clone());
        set_opt(&mut self.redis_url, overrides.redis_url.clone());
        set(&mut self.max_concurrent_jobs, overrides.max_concurrent_jobs);
        set(&mut self.max_queued_jobs, overrides.max_queued_jobs);
        set(&mut self.job_reclaim_seconds, overrides.job_reclaim_seconds);
        set(&mut self.job_max_deliveries, overrides.job_max_deliveries);
        set_opt(&mut self.trace_plugin, overrides.trace_plugin.clone());
        set(&mut self.gdb_listen, overrides.gdb_listen);
        set(&mut self.allow_raw_monitor, overrides.allow_raw_monitor);
        set(&mut self.confinement, overrides.confinement);
        set_opt(&mut self.gdb_path, overrides.gdb_path.clone());
        set_opt(&mut self.auth, overrides.auth);
        set_opt(
            &mut self.max_sessions_per_user,
            overrides.max_sessions_per_user,
        );
        set_opt(
            &mut self.max_powered_sessions,
            overrides.max_powered_sessions,
        );
        set_opt(
            &mut self.max_queued_jobs_per_user,
            overrides.max_queued_jobs_per_user,
        );
        set_opt(&mut self.rate_limit, overrides.rate_limit);
        if !overrides.cors_origins.is_empty() {
            self.cors_origins = overrides.cors_origins.clone();
        }
        set_opt(&mut self.metrics_listen, overrides.metrics_listen);
    }

    /// Creates the data dir and makes it absolute, so that socket paths handed to
    /// emulators do not depend on their working directory.
    pub fn prepare_data_dir(&mut self) -> Result<(), ConfigError> {
        let wrap = |error| ConfigError::DataDir {
            path: self.data_dir.clone(),
            error,
        };
        std::fs::create_dir_all(&self.data_dir).map_err(wrap)?;
        self.data_dir = std::fs::canonicalize(&self.data_dir).map_err(wrap)?;
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("virserver.db").display()
            ),
        }
    }
}

/// Whether raw monitor access may be on. QEMU's monitor runs host commands (`migrate
/// "exec:CMD"`) for whoever reaches a session's GDB endpoint, so only while the
/// endpoints are loopback (the host's own users, who could run those commands anyway)
/// and no authentication promises a user less than the host.
pub fn check_raw_monitor(gdb_listen: IpAddr, auth_enabled: bool) -> Result<(), ConfigError> {
    if !gdb_listen.is_loopback() {
        return Err(ConfigError::RawMonitorNotLoopback { gdb_listen });
    }
    if auth_enabled {
        return Err(ConfigError::RawMonitorWithAuth);
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        error,
    })
}

/// `--hibernate-after`: a duration, or `None` for "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hibernate(pub Option<std::time::Duration>);

impl<'de> Deserialize<'de> for Hibernate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_hibernate_after(&text).map_err(serde::de::Error::custom)
    }
}

/// "off", or a whole number with a unit: `ms`, `s`, `m` or `h` ("10m", "90s").
pub fn parse_hibernate_after(text: &str) -> Result<Hibernate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Hibernate(None));
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad = || format!("'{text}' is not a duration such as 500ms, 90s, 10m, 2h or off");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    };
    match millis {
        Some(0) => Err(format!(
            "'{text}': a hibernation delay must be more than zero (or off)"
        )),
        Some(millis) => Ok(Hibernate(Some(std::time::Duration::from_millis(millis)))),
        None => Err(bad()),
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn set_opt<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_off_on_loopback_and_must_be_chosen_elsewhere() {
        let with = |listen: &str, auth: Option<AuthMode>, gdb: Option<&str>| {
            Config::load(&ConfigOverrides {
                listen: Some(listen.parse().unwrap()),
                auth,
                gdb_listen: gdb.map(|g| g.parse().unwrap()),
                ..Default::default()
            })
        };
        assert_eq!(
            with("127.0.0.1:8080", None, None).unwrap().auth,
            Some(AuthMode::Off)
        );
        let open = with("0.0.0.0:8080", None, None).unwrap_err().to_string();
        assert!(
            open.contains("--auth required") && open.contains("--auth off"),
            "{open}"
        );
        assert_eq!(
            with("0.0.0.0:8080", Some(AuthMode::Off), None)
                .unwrap()
                .auth,
            Some(AuthMode::Off)
        );
        assert_eq!(
            with("0.0.0.0:8080", Some(AuthMode::Required), None)
                .unwrap()
                .auth_mode(),
            AuthMode::Required
        );
        // Under auth the GDB and DAP endpoints take tickets only, so they may be exposed.
        assert!(with("0.0.0.0:8080", Some(AuthMode::Required), Some("0.0.0.0")).is_ok());
    }

    #[test]
    fn hibernation_delays_parse_with_their_unit_or_off() {
        use std::time::Duration;
        let parse = |text| parse_hibernate_after(text).map(|Hibernate(after)| after);
        assert_eq!(parse("10m"), Ok(Some(Duration::from_secs(600))));
        assert_eq!(parse("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse("2h"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(parse("off"), Ok(None));
        for bad in [
            "",
            "10",
            "m",
            "1.5m",
            "-1s",
            "0s",
            "10 days",
            "99999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("virserver-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("virserver.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/v\"\n",
        )
        .unwrap();
        let overrides = ConfigOverrides {
            config: Some(path),
            data_dir: Some(PathBuf::from("/flag")),
            ..Default::default()
        };
        let config = Config::load(&overrides).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/flag"));
        assert_eq!(config.boards_dir, None);
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("virserver-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let overrides = ConfigOverrides {
            config: Some(path),
            ..Default::default()
        };
        let error = Config::load(&overrides).unwrap_err().to_string();
        assert!(error.contains("bad.toml"), "{error}");
    }

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        overrides: ConfigOverrides,
    }

    fn serve(args: &[&str]) -> Result<Config, ConfigError> {
        let parsed = <Serve as clap::Parser>::try_parse_from(
            std::iter::once("serve").chain(args.iter().copied()),
        )
        .unwrap();
        Config::load(&parsed.overrides)
    }

    #[test]
    fn raw_monitor_is_off_unless_asked_and_needs_loopback_endpoints() {
        assert!(!serve(&[]).unwrap().allow_raw_monitor);
        assert!(serve(&["--allow-raw-monitor"]).unwrap().allow_raw_monitor);
        assert!(
            !serve(&["--allow-raw-monitor=false"])
                .unwrap()
                .allow_raw_monitor
        );
        assert!(
            serve(&["--allow-raw-monitor=1", "--gdb-listen", "::1"])
                .unwrap()
                .allow_raw_monitor
        );
        for exposed in ["0.0.0.0", "192.168.1.7", "::"] {
            let error = serve(&["--allow-raw-monitor", "--gdb-listen", exposed])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(exposed) && error.contains("not loopback"),
                "{error}"
            );
            // Without raw monitor access, any address is fine.
            assert!(serve(&["--gdb-listen", exposed]).is_ok());
        }
        assert!(matches!(
            check_raw_monitor(IpAddr::from([127, 0, 0, 1]), true),
            Err(ConfigError::RawMonitorWithAuth)
        ));
    }

    #[test]
    fn raw_monitor_from_the_file_is_checked_and_a_flag_turns_it_off() {
        let dir = std::env::temp_dir().join(format!("virserver-config-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("raw.toml");
        std::fs::write(
            &path,
            "allow_raw_monitor = true\ngdb_listen = \"0.0.0.0\"\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        assert!(matches!(
            serve(&["--config", config]),
            Err(ConfigError::RawMonitorNotLoopback { .. })
        ));
        assert!(
            !serve(&["--config", config, "--allow-raw-monitor=false"])
                .unwrap()
                .allow_raw_monitor
        );
    }
}
