//! A QEMU TCG plugin that counts how often each guest instruction of each
//! translated block runs and, when QEMU exits, writes the counts to a file
//! for `virserver-coverage`: source-line coverage with real hit counts, the
//! firmware left untouched.
//!
//! ```text
//! qemu-system-arm ... -plugin target/release/libvirserver_qemu_trace_plugin.so,out=run.blocks
//! ```
//!
//! # What it records
//!
//! For every translation: the start address, each instruction's size (so
//! every instruction address is recoverable) and how many times each
//! instruction ran, counted by *inline ops*: a single add QEMU emits into
//! the generated code in front of the instruction, no call into the plugin
//! (measured +0.15 to +0.35 ns per guest instruction with QEMU 7.2 by
//! `virserver-coverage`'s `examples/bench_coverage.rs`; a callback would cost +0.5 ns
//! from C and +5 ns through the `qemu-plugin` crate's closures, per block).
//! Counting per instruction
//! rather than per block keeps counts exact when a block stops midway: a
//! fault, the end of the run, or a device access that recent QEMU re-runs
//! on its own (see `blocks`). So, unlike the `-d in_asm` trace, an
//! instruction after the one that ended the run is not counted.
//!
//! Block-to-block edges (for branch coverage) are not recorded: they need a
//! callback per executed block that knows the previous one (a call into the
//! plugin and a table update, instead of one add), and taken/not-taken
//! reporting would also need the branch instructions decoded. The file
//! format reserves an edge section for them.
//!
//! The file is written by the plugin's atexit callback, which runs on every
//! orderly exit: semihosting `SYS_EXIT`, `quit`, SIGTERM/SIGINT. A QEMU that
//! is SIGKILLed or crashes writes nothing. The format is specified in
//! `virserver_coverage::hitcounts` (writer: [`output`]).
//!
//! # One build for every QEMU
//!
//! QEMU accepts a plugin whose exported `qemu_plugin_version` lies in its
//! own [min, cur] range: 0-1 for QEMU 6.0 to 8.2 (7.2 here), 2 up to 4 or 5
//! from QEMU 9.0 on (10.0 accepts 2-4). No single number fits both, and the
//! inline-counter functions changed at level 2 (see [`api`]). The `qemu-plugin`
//! crate chooses the level at compile time through mutually exclusive cargo
//! features, and cargo unifies features across a workspace build, so two
//! such builds cannot live in one `cargo build --workspace`.
//!
//! This crate needs no features and no system headers or libraries:
//!
//! - `qemu_plugin_version` is a writable exported `int` that a constructor
//!   (`.init_array`, run by `dlopen` *before* QEMU reads the symbol) sets to
//!   2 when the host exports the scoreboard API, else 1;
//! - every API function is looked up with `dlsym(RTLD_DEFAULT, ..)` in the
//!   QEMU executable (which exports its plugin API), never linked.
//!
//! So `cargo build --release -p virserver-qemu-trace-plugin` gives one
//! `libvirserver_qemu_trace_plugin.so` that loads in QEMU 7.2 (declares 1,
//! plain-memory counters) and in QEMU 9.x/10.x (declares 2, per-vCPU
//! scoreboards), checked with Debian's 7.2 and bookworm-backports' 10.0.2.
//! The server passes the same path whatever `qemu-system-* --version` says;
//! for QEMU older than 6.0 (level 0), loading fails with QEMU's own message.
//!
//! # Layout
//!
//! - [`api`]: the plugin API functions used, resolved by name; the API level.
//! - `blocks`: the translated blocks and their counters (plain memory or
//!   scoreboards), and why counters are per instruction.
//! - [`output`]: the file's encoder and its atomic write.
//! - this file: the exported symbols, arguments, the callbacks.
//!
//! # Arguments
//!
//! `out=FILE` (required): where to write the counts (QEMU splits plugin
//! arguments at commas, so FILE cannot hold one). It is written through
//! `FILE.tmp` and a rename. Any other argument is refused at load, so a typo
//! does not silently produce no coverage: QEMU prints the plugin's message
//! and exits with status 1.

pub mod api;
mod blocks;
pub mod output;

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use api::{Api, Info, PluginId, Tb};
use blocks::BlockTable;

/// The plugin API level QEMU reads right after `dlopen`. Written once, by
/// the load-time constructor `declare_api_level`, before QEMU can look at
/// it; an `AtomicI32` has the layout of a C `int`.
#[unsafe(no_mangle)]
pub static qemu_plugin_version: AtomicI32 = AtomicI32::new(1);

/// Runs when the shared object is loaded (before `dlopen` returns).
extern "C" fn declare_api_level() {
    qemu_plugin_version.store(api::host_api_level(), Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static DECLARE_API_LEVEL: extern "C" fn() = declare_api_level;

/// What the plugin was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file written at exit.
    pub out: PathBuf,
}

impl Config {
    /// Parses QEMU's `key=value` plugin arguments.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Config, String> {
        let mut out = None;
        for arg in args {
            let arg = arg.as_ref();
            match arg.split_once('=') {
                Some(("out", path)) if !path.is_empty() => out = Some(PathBuf::from(path)),
                _ => return Err(format!("unknown argument {arg:?} (expected out=FILE)")),
            }
        }
        let out = out.ok_or_else(|| "missing argument out=FILE".to_owned())?;
        Ok(Config { out })
    }
}

/// Everything the callbacks share.
struct Plugin {
    config: Config,
    target: String,
    api_level: u16,
    table: BlockTable,
}

static PLUGIN: OnceLock<Mutex<Plugin>> = OnceLock::new();

fn plugin() -> Option<MutexGuard<'static, Plugin>> {
    let mutex = PLUGIN.get()?;
    Some(
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// QEMU's entry point: checks the host and the arguments, registers the
/// translation and exit callbacks. Nonzero makes QEMU refuse the plugin.
///
/// # Safety
/// Called by QEMU with a valid `info` and `argc` C strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    info: *const Info,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded from QEMU's contract.
    match unsafe { install(id, info, argc, argv) } {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("virserver-qemu-trace-plugin: {message}");
            -1
        }
    }
}

/// # Safety
/// As [`qemu_plugin_install`].
unsafe fn install(
    id: PluginId,
    info: *const Info,
    argc: c_int,
    argv: *const *const c_char,
) -> Result<(), String> {
    let mut args = Vec::new();
    for index in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: QEMU passes argc valid, NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(index)) };
        args.push(arg.to_string_lossy().into_owned());
    }
    let config = Config::from_args(&args)?;
    let api = Api::resolve().map_err(|missing| missing.to_string())?;
    // SAFETY: QEMU passes a valid info (its target name may be null).
    let (target, host_levels) = unsafe {
        let info = info.as_ref().ok_or("QEMU passed no qemu_info_t")?;
        let target = if info.target_name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(info.target_name)
                .to_string_lossy()
                .into_owned()
        };
        (target, info.version)
    };
    let api_level = qemu_plugin_version.load(Ordering::Relaxed);
    if api_level < host_levels.min || api_level > host_levels.cur {
        return Err(format!(
            "declared plugin API {api_level} but QEMU accepts {}..={}",
            host_levels.min, host_levels.cur
        ));
    }
    let plugin = Plugin {
        config,
        target,
        api_level: u16::try_from(api_level).unwrap_or(0),
        table: BlockTable::new(api),
    };
    PLUGIN
        .set(Mutex::new(plugin))
        .map_err(|_| "loaded twice in one QEMU".to_owned())?;
    // SAFETY: registering our own `extern "C"` callbacks with our id.
    unsafe {
        (api.common.register_vcpu_tb_trans_cb)(id, Some(on_translate));
        (api.common.register_atexit_cb)(id, Some(on_exit), std::ptr::null_mut());
    }
    Ok(())
}

/// Translation callback: record the block and instrument it.
unsafe extern "C" fn on_translate(_id: PluginId, tb: *mut Tb) {
    if let Some(mut plugin) = plugin() {
        // SAFETY: QEMU passes the block being translated.
        unsafe { plugin.table.translate(tb) };
    }
}

/// Exit callback: write the file.
unsafe extern "C" fn on_exit(_id: PluginId, _userdata: *mut c_void) {
    let Some(plugin) = plugin() else { return };
    let counted: Vec<_> = plugin.table.counted().collect();
    let bytes = output::encode(
        plugin.api_level,
        &plugin.target,
        counted
            .iter()
            .map(|(record, executions)| output::BlockCount {
                start: record.start,
                sizes: &record.sizes,
                executions,
            }),
    );
    if let Err(error) = output::write_atomically(&plugin.config.out, &bytes) {
        eprintln!(
            "virserver-qemu-trace-plugin: cannot write {}: {error} ({} blocks lost)",
            plugin.config.out.display(),
            plugin.table.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(
            Config::from_args(&["out=/tmp/x.blocks"]),
            Ok(Config {
                out: PathBuf::from("/tmp/x.blocks")
            })
        );
        assert!(
            Config::from_args::<&str>(&[])
                .unwrap_err()
                .contains("missing")
        );
        assert!(Config::from_args(&["out="]).is_err());
        assert!(
            Config::from_args(&["out=a", "outt=b"])
                .unwrap_err()
                .contains("outt=b")
        );
    }

    #[test]
    fn constructor_declared_level_one_outside_qemu() {
        assert_eq!(qemu_plugin_version.load(Ordering::Relaxed), 1);
    }
}
