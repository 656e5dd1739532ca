//! The few QEMU TCG plugin API functions this plugin calls, found by name in
//! the running QEMU (`dlsym(RTLD_DEFAULT, ..)`) instead of being linked.
//!
//! Linking them would tie the shared object to one API level: QEMU loads
//! plugins with `RTLD_NOW`, so a single reference to a function the host
//! lacks makes the load fail, and the inline-counter functions differ by
//! level. Up to API 1 (QEMU 6.0 to 8.2) an inline op adds to a plain memory
//! address (`qemu_plugin_register_vcpu_insn_exec_inline`); from API 2 (QEMU
//! 9.0, still so in 10.x) that function is gone and an inline op adds to a
//! per-vCPU *scoreboard* entry (`..._insn_exec_inline_per_vcpu`,
//! `qemu_plugin_scoreboard_new`, `qemu_plugin_u64_sum`). Everything else used
//! here is the same at every level. Resolving by name lets one build pick
//! the right family on the host it finds itself in.
//!
//! The declarations transcribe `include/qemu/qemu-plugin.h` (QEMU 7.2 and
//! 10.0); opaque handles are zero-sized `#[repr(C)]` types, C enums are
//! passed as `c_uint` (their ABI on every Linux target QEMU runs on).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};

/// `qemu_plugin_id_t`.
pub type PluginId = u64;

/// `struct qemu_plugin_tb`: opaque, valid during the translation callback.
#[repr(C)]
pub struct Tb {
    _opaque: [u8; 0],
}

/// `struct qemu_plugin_insn`: opaque, valid during the translation callback.
#[repr(C)]
pub struct Insn {
    _opaque: [u8; 0],
}

/// `struct qemu_plugin_scoreboard`: opaque, API 2 and later.
#[repr(C)]
pub struct Scoreboard {
    _opaque: [u8; 0],
}

/// `qemu_plugin_u64`: one u64 at `offset` in every vCPU's scoreboard element.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ScoreboardU64 {
    /// The scoreboard.
    pub score: *mut Scoreboard,
    /// Byte offset inside one vCPU's element.
    pub offset: usize,
}

/// The `version` member of `qemu_info_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InfoVersion {
    /// Oldest plugin API level the host accepts.
    pub min: c_int,
    /// Newest plugin API level the host accepts.
    pub cur: c_int,
}

/// The leading members of `qemu_info_t` (identical from API 0 to 5); the
/// union after them is not read, so it is not declared.
#[repr(C)]
pub struct Info {
    /// Guest architecture, e.g. `arm`, `riscv32`.
    pub target_name: *const c_char,
    /// Plugin API levels the host accepts.
    pub version: InfoVersion,
    /// False in user-mode emulation.
    pub system_emulation: bool,
}

/// `QEMU_PLUGIN_INLINE_ADD_U64` of `enum qemu_plugin_op` (0 at every level).
pub const INLINE_ADD_U64: c_uint = 0;

/// `qemu_plugin_vcpu_tb_trans_cb_t`.
pub type TbTransCallback = unsafe extern "C" fn(id: PluginId, tb: *mut Tb);
/// `qemu_plugin_udata_cb_t` (used for atexit).
pub type UdataCallback = unsafe extern "C" fn(id: PluginId, userdata: *mut c_void);

/// Functions present at every API level from 1 on, with one signature.
#[derive(Debug, Clone, Copy)]
pub struct Common {
    pub register_vcpu_tb_trans_cb: unsafe extern "C" fn(PluginId, Option<TbTransCallback>),
    pub register_atexit_cb: unsafe extern "C" fn(PluginId, Option<UdataCallback>, *mut c_void),
    pub tb_n_insns: unsafe extern "C" fn(*const Tb) -> usize,
    pub tb_get_insn: unsafe extern "C" fn(*const Tb, usize) -> *mut Insn,
    pub insn_vaddr: unsafe extern "C" fn(*const Insn) -> u64,
    pub insn_size: unsafe extern "C" fn(*const Insn) -> usize,
}

/// How an instruction's execution counter is bumped by generated code.
#[derive(Debug, Clone, Copy)]
pub enum Counting {
    /// API 0-1: add to a plain `u64` in plugin memory (not atomic: with
    /// several vCPUs running in parallel threads, counts may be low).
    Shared {
        insn_exec_inline: unsafe extern "C" fn(*mut Insn, c_uint, *mut c_void, u64),
    },
    /// API 2 and later: add to this vCPU's copy of a scoreboard entry, summed
    /// over vCPUs at exit (exact with any number of vCPUs).
    PerVcpu {
        insn_exec_inline_per_vcpu: unsafe extern "C" fn(*mut Insn, c_uint, ScoreboardU64, u64),
        scoreboard_new: unsafe extern "C" fn(usize) -> *mut Scoreboard,
        u64_sum: unsafe extern "C" fn(ScoreboardU64) -> u64,
    },
}

/// Everything the plugin calls, resolved in the host.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub common: Common,
    pub counting: Counting,
}

/// Why the host's API could not be used.
#[derive(Debug)]
pub struct MissingSymbol(pub &'static CStr);

impl std::fmt::Display for MissingSymbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the QEMU loading this plugin does not export {} (QEMU 6.0 or later with TCG plugin support is needed)",
            self.0.to_string_lossy()
        )
    }
}

/// The address of `name` in the process, if any loaded object exports it.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global
    // scope (the QEMU executable exports its plugin API there).
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

/// Resolves `name` as a function of type `$ty`, or returns `MissingSymbol`.
macro_rules! resolve {
    ($name:literal as $ty:ty) => {{
        let name: &'static CStr = $name;
        match lookup(name) {
            // SAFETY: the symbol is the QEMU function of that name, whose C
            // prototype `$ty` transcribes for the API level being resolved.
            Some(address) => unsafe { std::mem::transmute::<*mut c_void, $ty>(address) },
            None => return Err(MissingSymbol(name)),
        }
    }};
}

/// The plugin API level this build declares to the host, decided from what
/// the host exports: 2 where scoreboards exist (QEMU 9.0 to at least 10.x
/// accept 2), else 1 (QEMU 6.0 to 8.2 accept 1).
pub fn host_api_level() -> c_int {
    let per_vcpu = lookup(c"qemu_plugin_scoreboard_new").is_some()
        && lookup(c"qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu").is_some();
    if per_vcpu { 2 } else { 1 }
}

impl Api {
    /// Resolves every function for the host's API level.
    pub fn resolve() -> Result<Api, MissingSymbol> {
        let common = Common {
            register_vcpu_tb_trans_cb: resolve!(
                c"qemu_plugin_register_vcpu_tb_trans_cb"
                    as unsafe extern "C" fn(PluginId, Option<TbTransCallback>)
            ),
            register_atexit_cb: resolve!(
                c"qemu_plugin_register_atexit_cb"
                    as unsafe extern "C" fn(PluginId, Option<UdataCallback>, *mut c_void)
            ),
            tb_n_insns: resolve!(
                c"qemu_plugin_tb_n_insns" as unsafe extern "C" fn(*const Tb) -> usize
            ),
            tb_get_insn: resolve!(
                c"qemu_plugin_tb_get_insn" as unsafe extern "C" fn(*const Tb, usize) -> *mut Insn
            ),
            insn_vaddr: resolve!(
                c"qemu_plugin_insn_vaddr" as unsafe extern "C" fn(*const Insn) -> u64
            ),
            insn_size: resolve!(
                c"qemu_plugin_insn_size" as unsafe extern "C" fn(*const Insn) -> usize
            ),
        };
        let counting = if host_api_level() >= 2 {
            Counting::PerVcpu {
                insn_exec_inline_per_vcpu: resolve!(
                    c"qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu"
                        as unsafe extern "C" fn(*mut Insn, c_uint, ScoreboardU64, u64)
                ),
                scoreboard_new: resolve!(
                    c"qemu_plugin_scoreboard_new" as unsafe extern "C" fn(usize) -> *mut Scoreboard
                ),
                u64_sum: resolve!(
                    c"qemu_plugin_u64_sum" as unsafe extern "C" fn(ScoreboardU64) -> u64
                ),
            }
        } else {
            Counting::Shared {
                insn_exec_inline: resolve!(
                    c"qemu_plugin_register_vcpu_insn_exec_inline"
                        as unsafe extern "C" fn(*mut Insn, c_uint, *mut c_void, u64)
                ),
            }
        };
        Ok(Api { common, counting })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_qemu_nothing_resolves() {
        assert_eq!(host_api_level(), 1, "no scoreboard API in a test binary");
        let error = Api::resolve().expect_err("no QEMU here");
        assert_eq!(error.0, c"qemu_plugin_register_vcpu_tb_trans_cb");
        assert!(error.to_string().contains("QEMU 6.0 or later"));
    }

    #[test]
    fn info_prefix_has_the_c_layout() {
        // const char *; struct { int min, cur; }; bool
        assert_eq!(std::mem::offset_of!(Info, version), size_of::<usize>());
        assert_eq!(
            std::mem::offset_of!(Info, system_emulation),
            size_of::<usize>() + 8
        );
    }
}
