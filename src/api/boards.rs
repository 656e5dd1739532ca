//! The boards domain of the API: board templates (built-in and user-defined), the
//! processor / peripheral / bus catalogues derived from them, and backend capabilities.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};

use super::errors::ApiResult;
use super::sessions::{BackendEnum, app};
use crate::boards::{Arch, BoardTemplate, ExitMechanism, MemoryKind};
use crate::catalog::{CatalogBoard, CatalogEntry, Origin};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Arch")]
pub enum ArchEnum {
    Arm,
    #[graphql(name = "AARCH64")]
    Aarch64,
    #[graphql(name = "RISCV32")]
    Riscv32,
    #[graphql(name = "RISCV64")]
    Riscv64,
}

impl From<Arch> for ArchEnum {
    fn from(arch: Arch) -> Self {
        match arch {
            Arch::Arm => Self::Arm,
            Arch::Aarch64 => Self::Aarch64,
            Arch::Riscv32 => Self::Riscv32,
            Arch::Riscv64 => Self::Riscv64,
        }
    }
}

fn hex(value: u64) -> String {
    format!("0x{value:x}")
}

#[derive(SimpleObject)]
#[graphql(name = "MemoryRegion")]
pub struct MemoryRegionObject {
    name: String,
    /// flash, rom or ram.
    kind: String,
    /// Start address as "0x...".
    start: String,
    /// Size in bytes as "0x...".
    size: String,
    /// Any of r, w, x.
    access: String,
}

#[derive(SimpleObject)]
#[graphql(name = "BoardPeripheral")]
pub struct BoardPeripheralObject {
    name: String,
    kind: String,
    model: String,
    base: Option<String>,
    bus: Option<String>,
    /// Whether this is the UART streamed as the session console.
    console: bool,
}

#[derive(SimpleObject)]
#[graphql(name = "BoardBus")]
pub struct BoardBusObject {
    name: String,
    kind: String,
}

#[derive(SimpleObject)]
#[graphql(name = "QemuBoardSection")]
pub struct QemuSectionObject {
    binary: String,
    machine: String,
    cpu: Option<String>,
    memory: Option<String>,
    extra_args: Vec<String>,
    /// semihosting, sifive-test or none.
    exit: String,
}

/// A board template.
pub struct BoardTemplateObject {
    board: BoardTemplate,
    origin: Origin,
}

impl From<CatalogBoard> for BoardTemplateObject {
    fn from(value: CatalogBoard) -> Self {
        Self {
            board: value.board,
            origin: value.origin,
        }
    }
}

#[Object(name = "BoardTemplate")]
impl BoardTemplateObject {
    async fn id(&self) -> ID {
        ID(self.board.id.clone())
    }

    async fn name(&self) -> &str {
        &self.board.name
    }

    async fn description(&self) -> &str {
        &self.board.description
    }

    async fn arch(&self) -> ArchEnum {
        self.board.arch.into()
    }

    async fn cpu(&self) -> &str {
        &self.board.cpu
    }

    /// Built-in templates come from the server's boards/ folder and are read-only.
    async fn built_in(&self) -> bool {
        self.origin == Origin::BuiltIn
    }

    async fn memory(&self) -> Vec<MemoryRegionObject> {
        self.board
            .memory
            .iter()
            .map(|region| MemoryRegionObject {
                name: region.name.clone(),
                kind: match region.kind {
                    MemoryKind::Flash => "flash",
                    MemoryKind::Rom => "rom",
                    MemoryKind::Ram => "ram",
                }
                .to_owned(),
                start: hex(region.start),
                size: hex(region.size),
                access: region.access.clone(),
            })
            .collect()
    }

    async fn peripherals(&self) -> Vec<BoardPeripheralObject> {
        self.board
            .peripherals
            .iter()
            .map(|p| BoardPeripheralObject {
                name: p.name.clone(),
                kind: p.kind.clone(),
                model: p.model.clone(),
                base: p.base.map(hex),
                bus: p.bus.clone(),
                console: p.console,
            })
            .collect()
    }

    async fn buses(&self) -> Vec<BoardBusObject> {
        self.board
            .buses
            .iter()
            .map(|b| BoardBusObject {
                name: b.name.clone(),
                kind: b.kind.clone(),
            })
            .collect()
    }

    async fn qemu(&self) -> Option<QemuSectionObject> {
        self.board
            .backends
            .qemu
            .as_ref()
            .map(|q| QemuSectionObject {
                binary: q.binary.clone(),
                machine: q.machine.clone(),
                cpu: q.cpu.clone(),
                memory: q.memory.clone(),
                extra_args: q.extra_args.clone(),
                exit: match q.exit {
                    ExitMechanism::Semihosting => "semihosting",
                    ExitMechanism::SifiveTest => "sifive-test",
                    ExitMechanism::None => "none",
                }
                .to_owned(),
            })
    }

    /// The template as a YAML document (the format of boards/*.yaml).
    async fn definition(&self) -> String {
        self.board.to_yaml()
    }
}

#[derive(SimpleObject)]
#[graphql(name = "EmulatorBinary")]
pub struct EmulatorBinaryObject {
    name: String,
    path: String,
    version: String,
}

/// What one backend can do on this host, found by probing it at start-up.
#[derive(SimpleObject)]
#[graphql(name = "Capability")]
pub struct CapabilityObject {
    backend: BackendEnum,
    available: bool,
    /// Why it is unavailable, or what is missing.
    reason: Option<String>,
    binaries: Vec<EmulatorBinaryObject>,
    gdb: bool,
    snapshots: bool,
    reverse: bool,
    trace: bool,
    /// Coverage with execution counts (the TCG plugin) is possible.
    hit_counts: bool,
    /// Why hit counts are unavailable.
    hit_counts_reason: Option<String>,
    /// How this backend's emulator processes are kept from the host (seccomp, landlock,
    /// no_new_privs, semihosting, monitor), as `virserver doctor` prints them.
    confinements: Vec<ConfinementObject>,
}

/// One confinement of emulator processes on this host.
#[derive(SimpleObject)]
#[graphql(name = "Confinement")]
pub struct ConfinementObject {
    name: String,
    active: bool,
    /// What is enforced, or why it is not.
    detail: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "Processor")]
pub struct ProcessorObject {
    cpu: String,
    arch: String,
    boards: Vec<ID>,
}

#[derive(SimpleObject)]
#[graphql(name = "Peripheral")]
pub struct PeripheralObject {
    model: String,
    kind: String,
    boards: Vec<ID>,
}

#[derive(SimpleObject)]
#[graphql(name = "Bus")]
pub struct BusObject {
    kind: String,
    boards: Vec<ID>,
}

fn ids(boards: Vec<String>) -> Vec<ID> {
    boards.into_iter().map(ID).collect()
}

#[derive(Default)]
pub struct BoardQuery;

#[Object]
impl BoardQuery {
    async fn board_templates(&self, ctx: &Context<'_>) -> ApiResult<Vec<BoardTemplateObject>> {
        let boards = app(ctx).catalog.boards().await?;
        Ok(boards.into_iter().map(BoardTemplateObject::from).collect())
    }

    async fn board_template(&self, ctx: &Context<'_>, id: ID) -> ApiResult<BoardTemplateObject> {
        Ok(app(ctx).catalog.board(&id).await?.into())
    }

    async fn capabilities(&self, ctx: &Context<'_>) -> Vec<CapabilityObject> {
        app(ctx)
            .backends
            .all()
            .iter()
            .map(|backend| {
                let availability = backend.availability();
                let features = backend.features();
                let hit_counts = backend
                    .trace()
                    .map_or(Err("no execution trace".to_owned()), |t| t.hit_counts());
                CapabilityObject {
                    backend: backend.kind().into(),
                    available: availability.available,
                    reason: availability.reason.clone(),
                    binaries: availability
                        .binaries
                        .iter()
                        .map(|b| EmulatorBinaryObject {
                            name: b.name.clone(),
                            path: b.path.display().to_string(),
                            version: b.version.clone(),
                        })
                        .collect(),
                    gdb: features.gdb,
                    snapshots: features.snapshots,
                    reverse: features.reverse,
                    trace: features.trace,
                    hit_counts: hit_counts.is_ok(),
                    hit_counts_reason: hit_counts.err(),
                    confinements: crate::doctor::report(
                        backend.confinements(),
                        app(ctx).config.allow_raw_monitor,
                    )
                    .into_iter()
                    .map(|c| ConfinementObject {
                        name: c.name.to_owned(),
                        active: c.active,
                        detail: c.detail,
                    })
                    .collect(),
                }
            })
            .collect()
    }

    async fn processors(&self, ctx: &Context<'_>) -> ApiResult<Vec<ProcessorObject>> {
        let entries = app(ctx).catalog.processors().await?;
        Ok(entries
            .into_iter()
            .map(
                |CatalogEntry {
                     name,
                     detail,
                     boards,
                 }| ProcessorObject {
                    cpu: name,
                    arch: detail,
                    boards: ids(boards),
                },
            )
            .collect())
    }

    async fn peripherals(&self, ctx: &Context<'_>) -> ApiResult<Vec<PeripheralObject>> {
        let entries = app(ctx).catalog.peripherals().await?;
        Ok(entries
            .into_iter()
            .map(
                |CatalogEntry {
                     name,
                     detail,
                     boards,
                 }| PeripheralObject {
                    model: name,
                    kind: detail,
                    boards: ids(boards),
                },
            )
            .collect())
    }

    async fn buses(&self, ctx: &Context<'_>) -> ApiResult<Vec<BusObject>> {
        let entries = app(ctx).catalog.buses().await?;
        Ok(entries
            .into_iter()
            .map(|CatalogEntry { name, boards, .. }| BusObject {
                kind: name,
                boards: ids(boards),
            })
            .collect())
    }
}

#[derive(Default)]
pub struct BoardMutation;

#[Object]
impl BoardMutation {
    /// Adds a user board template. `definition` is a YAML (or JSON) document with the
    /// fields of boards/*.yaml; it is validated like a built-in file.
    async fn create_board_template(
        &self,
        ctx: &Context<'_>,
        definition: String,
    ) -> ApiResult<BoardTemplateObject> {
        let board = app(ctx).catalog.create(&definition).await?;
        Ok(BoardTemplateObject {
            board,
            origin: Origin::User,
        })
    }

    /// Replaces a user board template; built-in ones are read-only.
    async fn update_board_template(
        &self,
        ctx: &Context<'_>,
        id: ID,
        definition: String,
    ) -> ApiResult<BoardTemplateObject> {
        let board = app(ctx).catalog.update(&id, &definition).await?;
        Ok(BoardTemplateObject {
            board,
            origin: Origin::User,
        })
    }

    /// Deletes a user board template no session uses.
    async fn delete_board_template(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        app(ctx).catalog.delete(&id).await?;
        Ok(true)
    }
}
