//! Every error a client sees carries a stable `extensions.code`. Clients get a safe
//! message; internal details (database errors, paths) go to the log only.

use async_graphql::{Error, ErrorExtensions};

use crate::auth::KeyError;
use crate::backend::BackendError;
use crate::catalog::CatalogError;
use crate::coverage::CoverageError;
use crate::dap::endpoint::EndpointError;
use crate::gdb::GdbError;
use crate::jobs::service::JobError;
use crate::programs::ProgramError;
use crate::sessions::SessionError;

/// Builds a client error with a code.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, extensions| extensions.set("code", code))
}

fn internal(detail: &dyn std::fmt::Display) -> Error {
    let reference = uuid::Uuid::new_v4();
    tracing::error!(%reference, error = %detail, "internal error");
    coded(
        "INTERNAL",
        format!("internal error (reference {reference}; see the server log)"),
    )
}

fn program_error(error: &ProgramError) -> Error {
    let code = match error {
        ProgramError::NotElf(_)
        | ProgramError::Malformed(_)
        | ProgramError::NoEntryPoint
        | ProgramError::NoLoadableSegment
        | ProgramError::TooMany { .. } => "BAD_ELF",
        ProgramError::ArchMismatch { .. } => "ARCH_MISMATCH",
        ProgramError::OutsideMemoryMap { .. } => "OUT_OF_MEMORY_MAP",
        ProgramError::Io(_) => return internal(error),
    };
    coded(code, error.to_string())
}

fn backend_error(error: &BackendError) -> Error {
    let code = match error {
        BackendError::Unavailable { .. } | BackendError::BoardNotSupported { .. } => {
            "BACKEND_UNAVAILABLE"
        }
        BackendError::Launch(_) => "LAUNCH_FAILED",
        BackendError::Control(_) | BackendError::Gone => "TARGET_ERROR",
        BackendError::SnapshotUnsupported(_) => "SNAPSHOT_UNSUPPORTED",
        BackendError::Io(_) => return internal(error),
    };
    coded(code, error.to_string())
}

fn catalog_error(error: &CatalogError) -> Error {
    let code = match error {
        CatalogError::NotFound(_) => "NOT_FOUND",
        CatalogError::ReadOnly(_) => "READ_ONLY",
        CatalogError::Exists(_) => "ALREADY_EXISTS",
        CatalogError::InUse { .. } => "IN_USE",
        CatalogError::Invalid(_) => "BAD_BOARD",
        CatalogError::Unsafe(_) => "UNSAFE_TEMPLATE",
        CatalogError::Store(_) => return internal(error),
    };
    coded(code, error.to_string())
}

fn session_error(error: SessionError) -> Error {
    let code = match &error {
        SessionError::NotFound { .. } => "NOT_FOUND",
        SessionError::InvalidState(_) => "INVALID_STATE",
        SessionError::NoProgram(_) => "NO_PROGRAM",
        SessionError::BadInput(_) => "BAD_INPUT",
        SessionError::Unsupported(_) => "UNSUPPORTED",
        SessionError::TooLarge { .. } => "TOO_LARGE",
        SessionError::LimitExceeded(_) => "LIMIT_EXCEEDED",
        SessionError::Program(inner) => return program_error(inner),
        SessionError::Backend(inner) => return backend_error(inner),
        SessionError::Catalog(inner) => return catalog_error(inner),
        SessionError::Store(crate::store::StoreError::Conflict { .. }) => "ALREADY_EXISTS",
        SessionError::Store(inner) => return internal(inner),
    };
    coded(code, error.to_string())
}

fn coverage_error(error: &CoverageError) -> Error {
    let code = match error {
        CoverageError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(%error, "coverage input missing");
            return coded(
                "NOT_FOUND",
                "no coverage yet: the session has not run (or its trace is not written yet)",
            );
        }
        CoverageError::Io { .. } => return internal(error),
        CoverageError::LineMap(_) => "BAD_ELF",
        CoverageError::Report(_) => "BAD_INPUT",
        CoverageError::Counts(_) => "BAD_TRACE",
    };
    coded(code, error.to_string())
}

/// The error type of every resolver. It deliberately does not implement `Display`: that
/// keeps async-graphql's blanket `From<impl Display>` (which would drop the code) from
/// ever applying, so `?` on a service error always goes through the mappings above.
#[derive(Clone)]
pub struct ApiError(Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        error.0
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        ApiError(session_error(error))
    }
}

/// No usable GDB (or none with DAP): the message names what to install.
impl From<GdbError> for ApiError {
    fn from(error: GdbError) -> Self {
        ApiError(coded("GDB_UNAVAILABLE", error.to_string()))
    }
}

impl From<EndpointError> for ApiError {
    fn from(error: EndpointError) -> Self {
        match error {
            EndpointError::Gdb(gdb) => gdb.into(),
            EndpointError::Io(_) => ApiError(internal(&error)),
        }
    }
}

impl From<CoverageError> for ApiError {
    fn from(error: CoverageError) -> Self {
        ApiError(coverage_error(&error))
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        let message = error.to_string();
        let code = match error {
            JobError::Session(inner) => return ApiError(session_error(inner)),
            JobError::Store(inner) => return ApiError(internal(&inner)),
            JobError::NotFound(_) => "NOT_FOUND",
            JobError::BadInput(_) => "BAD_INPUT",
            JobError::Ended(_) => "INVALID_STATE",
            JobError::QueueFull { .. } => "QUEUE_FULL",
            JobError::UserQuota { .. } => "LIMIT_EXCEEDED",
            JobError::Queue(_) => "QUEUE_UNAVAILABLE",
        };
        ApiError(coded(code, message))
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        ApiError(catalog_error(&error))
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        let code = match &error {
            KeyError::BadName => "BAD_INPUT",
            KeyError::Store(crate::store::StoreError::Conflict { .. }) => "ALREADY_EXISTS",
            KeyError::Store(inner) => return ApiError(internal(inner)),
        };
        ApiError(coded(code, error.to_string()))
    }
}

/// For the few places (subscriptions) where async-graphql wants its own error type.
pub fn to_graphql(error: impl Into<ApiError>) -> Error {
    error.into().0
}

/// Gives a code to the errors async-graphql produces itself (parse and validation
/// failures, argument coercion), so that every error a client sees has one: a query
/// past the depth or complexity limit is LIMIT_EXCEEDED; other errors before execution
/// (no path) are GRAPHQL_VALIDATION_FAILED; uncoded errors inside execution come from
/// coercing client values, so they are BAD_USER_INPUT.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodes {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        with_codes(next.run(ctx).await)
    }

    /// Operations over WebSocket (subscriptions, and queries sent there) come this way.
    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            // The schema's depth and complexity limits (`schema.rs`).
            let limit = matches!(
                error.message.as_str(),
                "Query is too complex." | "Query is nested too deep."
            );
            let code = if limit {
                "LIMIT_EXCEEDED"
            } else if error.path.is_empty() {
                "GRAPHQL_VALIDATION_FAILED"
            } else {
                "BAD_USER_INPUT"
            };
            extensions.set("code", code);
        }
    }
    response
}
