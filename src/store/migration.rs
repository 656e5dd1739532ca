//! Schema migrations, applied on every start. Each migration is append-only: a
//! released migration is never edited, a change is a new one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002Jobs),
            Box::new(M0003JobCollector),
            Box::new(M0004TimeControl),
            Box::new(M0005Hibernation),
            Box::new(M0006Tenancy),
            Box::new(M0007Audit),
        ]
    }
}

#[derive(DeriveIden)]
enum BoardTemplates {
    Table,
    Id,
    Definition,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Name,
    Backend,
    BoardId,
    State,
    ExitCode,
    StateReason,
    CurrentProgramId,
    Coverage,
    CoverageCollector,
    Deterministic,
    Record,
    ReplayOf,
    Hibernated,
    Owner,
    Node,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    Id,
    SessionId,
    Kind,
    State,
    ExitCode,
    Message,
    At,
}

#[derive(DeriveIden)]
enum Programs {
    Table,
    Id,
    SessionId,
    Name,
    Sha256,
    EntryPoint,
    Arch,
    Size,
    CreatedAt,
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BoardTemplates::Table)
                    .if_not_exists()
                    .col(string(BoardTemplates::Id).primary_key())
                    .col(text(BoardTemplates::Definition))
                    .col(timestamp_with_time_zone(BoardTemplates::CreatedAt))
                    .col(timestamp_with_time_zone(BoardTemplates::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(string(Sessions::Id).primary_key())
                    .col(string(Sessions::Name))
                    .col(string(Sessions::Backend))
                    .col(string(Sessions::BoardId))
                    .col(string(Sessions::State))
                    .col(integer_null(Sessions::ExitCode))
                    .col(text_null(Sessions::StateReason))
                    .col(string_null(Sessions::CurrentProgramId))
                    .col(boolean(Sessions::Coverage).default(false))
                    .col(string(Sessions::CoverageCollector).default("IN_ASM"))
                    .col(string(Sessions::Node).default(""))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SessionEvents::Id))
                    .col(string(SessionEvents::SessionId))
                    .col(string(SessionEvents::Kind))
                    .col(string(SessionEvents::State))
                    .col(integer_null(SessionEvents::ExitCode))
                    .col(text_null(SessionEvents::Message))
                    .col(timestamp_with_time_zone(SessionEvents::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_session_events_session")
                    .table(SessionEvents::Table)
                    .col(SessionEvents::SessionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Programs::Table)
                    .if_not_exists()
                    .col(string(Programs::Id).primary_key())
                    .col(string(Programs::SessionId))
                    .col(string(Programs::Name))
                    .col(string(Programs::Sha256))
                    .col(big_integer(Programs::EntryPoint))
                    .col(string(Programs::Arch))
                    .col(big_integer(Programs::Size))
                    .col(timestamp_with_time_zone(Programs::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_programs_session")
                    .table(Programs::Table)
                    .col(Programs::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Programs::Table.into_iden(),
            SessionEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            BoardTemplates::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Name,
    Backend,
    BoardId,
    ProgramSha256,
    ProgramName,
    TimeoutSeconds,
    ExpectExitCode,
    ExpectUart,
    ForbidUart,
    UartInput,
    Coverage,
    CoverageCollector,
    Deterministic,
    FromSnapshot,
    KeepOnFailure,
    Record,
    State,
    FailureReason,
    ExitCode,
    Node,
    Attempt,
    SessionId,
    Owner,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Blobs {
    Table,
    Sha256,
    Data,
}

#[derive(DeriveIden)]
enum JobArtifacts {
    Table,
    JobId,
    Name,
    Content,
}

struct M0002Jobs;

impl MigrationName for M0002Jobs {
    fn name(&self) -> &str {
        "m0002_jobs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Jobs {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(string(Jobs::Id).primary_key())
                    .col(string(Jobs::Name))
                    .col(string(Jobs::Backend))
                    .col(string(Jobs::BoardId))
                    .col(string(Jobs::ProgramSha256))
                    .col(string(Jobs::ProgramName))
                    .col(integer(Jobs::TimeoutSeconds))
                    .col(integer_null(Jobs::ExpectExitCode))
                    .col(text(Jobs::ExpectUart))
                    .col(text(Jobs::ForbidUart))
                    .col(text_null(Jobs::UartInput))
                    .col(boolean(Jobs::Coverage))
                    .col(string(Jobs::State))
                    .col(text_null(Jobs::FailureReason))
                    .col(integer_null(Jobs::ExitCode))
                    .col(string_null(Jobs::Node))
                    .col(integer(Jobs::Attempt))
                    .col(string_null(Jobs::SessionId))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_jobs_state")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Blobs::Table)
                    .if_not_exists()
                    .col(string(Blobs::Sha256).primary_key())
                    .col(blob(Blobs::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobArtifacts::Table)
                    .if_not_exists()
                    .col(string(JobArtifacts::JobId))
                    .col(string(JobArtifacts::Name))
                    .col(text(JobArtifacts::Content))
                    .primary_key(
                        Index::create()
                            .col(JobArtifacts::JobId)
                            .col(JobArtifacts::Name),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JobArtifacts::Table.into_iden(),
            Blobs::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Jobs choose their coverage collector, as sessions do.
struct M0003JobCollector;

impl MigrationName for M0003JobCollector {
    fn name(&self) -> &str {
        "m0003_job_coverage_collector"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003JobCollector {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string(Jobs::CoverageCollector).default("IN_ASM"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::CoverageCollector)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    SessionId,
    ProgramId,
    Deterministic,
    Instructions,
    FailureAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Snapshots {
    Table,
    Id,
    SessionId,
    Name,
    ProgramId,
    SizeBytes,
    CreatedAt,
}

/// Snapshots; deterministic and recorded sessions and jobs; recordings; jobs that start
/// from a snapshot or keep their failure point.
struct M0004TimeControl;

impl MigrationName for M0004TimeControl {
    fn name(&self) -> &str {
        "m0004_time_control"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004TimeControl {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Snapshots::Table)
                    .if_not_exists()
                    .col(string(Snapshots::Id).primary_key())
                    .col(string(Snapshots::SessionId))
                    .col(string(Snapshots::Name))
                    .col(string(Snapshots::ProgramId))
                    .col(big_integer(Snapshots::SizeBytes))
                    .col(timestamp_with_time_zone(Snapshots::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_snapshots_session_name")
                    .table(Snapshots::Table)
                    .col(Snapshots::SessionId)
                    .col(Snapshots::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // One column per ALTER: SQLite adds only one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(boolean(Sessions::Deterministic).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(boolean(Jobs::Deterministic).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string_null(Jobs::FromSnapshot))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(boolean(Jobs::KeepOnFailure).default(false))
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Jobs::Table.into_iden(), Jobs::Record.into_iden()),
            (Sessions::Table.into_iden(), Sessions::Record.into_iden()),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(boolean(column).default(false))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_null(Sessions::ReplayOf))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .if_not_exists()
                    .col(string(Recordings::Id).primary_key())
                    .col(string(Recordings::SessionId))
                    .col(string(Recordings::ProgramId))
                    .col(boolean(Recordings::Deterministic))
                    .col(big_integer_null(Recordings::Instructions))
                    .col(big_integer_null(Recordings::FailureAt))
                    .col(timestamp_with_time_zone(Recordings::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Recordings::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Sessions::Table.into_iden(), Sessions::ReplayOf.into_iden()),
            (Sessions::Table.into_iden(), Sessions::Record.into_iden()),
            (Jobs::Table.into_iden(), Jobs::Record.into_iden()),
            (Jobs::Table.into_iden(), Jobs::KeepOnFailure.into_iden()),
            (Jobs::Table.into_iden(), Jobs::FromSnapshot.into_iden()),
            (Jobs::Table.into_iden(), Jobs::Deterministic.into_iden()),
            (
                Sessions::Table.into_iden(),
                Sessions::Deterministic.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Snapshots::Table).if_exists().to_owned())
            .await
    }
}

/// Sessions whose machine sleeps in an image on disk (`--hibernate-after`).
struct M0005Hibernation;

impl MigrationName for M0005Hibernation {
    fn name(&self) -> &str {
        "m0005_hibernation"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Hibernation {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(boolean(Sessions::Hibernated).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Hibernated)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Name,
    Role,
    TokenHash,
    CreatedAt,
    RevokedAt,
}

/// API keys (stored as the SHA-256 of their token) and who owns each session and job.
struct M0006Tenancy;

impl MigrationName for M0006Tenancy {
    fn name(&self) -> &str {
        "m0006_tenancy"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0006Tenancy {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(string(ApiKeys::Name).primary_key())
                    .col(string(ApiKeys::Role))
                    .col(string(ApiKeys::TokenHash).unique_key())
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Sessions::Table.into_iden(), Sessions::Owner.into_iden()),
            (Jobs::Table.into_iden(), Jobs::Owner.into_iden()),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(string_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (Sessions::Table.into_iden(), Sessions::Owner.into_iden()),
            (Jobs::Table.into_iden(), Jobs::Owner.into_iden()),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    At,
    Node,
    User,
    Operation,
    SessionId,
    JobId,
    Arguments,
    Outcome,
}

/// The audit log: one row per operation, appended, never changed.
struct M0007Audit;

impl MigrationName for M0007Audit {
    fn name(&self) -> &str {
        "m0007_audit"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Audit {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Seq))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(string(AuditLog::Node))
                    .col(string(AuditLog::User))
                    .col(string(AuditLog::Operation))
                    .col(string_null(AuditLog::SessionId))
                    .col(string_null(AuditLog::JobId))
                    .col(text(AuditLog::Arguments))
                    .col(string(AuditLog::Outcome))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_session")
                    .table(AuditLog::Table)
                    .col(AuditLog::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).if_exists().to_owned())
            .await
    }
}
