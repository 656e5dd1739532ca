//! Coverage for the server and the CLI: the I/O around the sans-IO `virserver-coverage`
//! crate. A trace file is streamed through the parser in chunks (never held whole), the
//! ELF's DWARF is mapped once, and the report is filtered by path globs.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
pub use virserver_coverage::{CoverageReport, Totals};
use virserver_coverage::{InAsmParser, LineMap, LineMapError, ReportError};

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot map addresses to lines: {0}")]
    LineMap(#[from] LineMapError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Which files a report keeps.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Streams a QEMU `-d in_asm` log through the parser.
pub async fn read_trace(
    path: &Path,
) -> Result<virserver_coverage::ExecutedAddresses, CoverageError> {
    let io = |error| CoverageError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut parser = InAsmParser::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer).await.map_err(io)?;
        if n == 0 {
            break;
        }
        parser.feed(&buffer[..n]);
    }
    Ok(parser.finish())
}

/// The coverage of one or more traces of the same ELF.
pub async fn report(
    elf: &Path,
    traces: &[PathBuf],
    filter: &PathFilter,
) -> Result<CoverageReport, CoverageError> {
    let mut executed = virserver_coverage::ExecutedAddresses::new();
    for trace in traces {
        executed.merge(&read_trace(trace).await?);
    }
    let bytes = tokio::fs::read(elf)
        .await
        .map_err(|error| CoverageError::Io {
            path: elf.to_owned(),
            error,
        })?;
    let filter = filter.clone();
    // DWARF parsing is CPU work: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let map = LineMap::from_elf(&bytes)?;
        Ok(map
            .coverage(&executed)
            .filter(&filter.include, &filter.exclude)?)
    })
    .await
    .map_err(|join_error| CoverageError::Io {
        path: elf.to_owned(),
        error: std::io::Error::other(join_error),
    })?
}

/// Merges LCOV files into one report.
pub async fn merge_lcov(files: &[PathBuf]) -> Result<CoverageReport, CoverageError> {
    let mut merged = CoverageReport::new();
    for path in files {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|error| CoverageError::Io {
                path: path.clone(),
                error,
            })?;
        merged.merge(&CoverageReport::from_lcov(&text)?);
    }
    Ok(merged)
}

/// Output formats of the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Lcov,
    Cobertura,
}

pub fn render(report: &CoverageReport, format: Format) -> String {
    match format {
        Format::Lcov => report.to_lcov(),
        Format::Cobertura => report.to_cobertura_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
    }
}

/// One line for a terminal: "lines 41/54 (75.9%), functions 8/10".
pub fn summary(totals: &Totals) -> String {
    format!(
        "lines {}/{} ({:.1}%), functions {}/{}",
        totals.lines_hit,
        totals.lines_found,
        totals.line_rate() * 100.0,
        totals.functions_hit,
        totals.functions_found
    )
}

/// `virserver coverage`: offline, on saved traces.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CoverageCommand {
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
    /// The program's ELF, with DWARF (-g).
    #[arg(long, required = true)]
    pub elf: Option<PathBuf>,
    /// QEMU `-d in_asm` log(s) of runs of that ELF; several are merged.
    #[arg(long = "trace", required = true)]
    pub traces: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum MergeCommand {
    /// Merge LCOV tracefiles (hits add up).
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Where to write the report; standard output when absent.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "lcov")]
    pub format: Format,
    /// Keep only files matching these globs.
    #[arg(long)]
    pub include: Vec<String>,
    /// Drop files matching these globs (e.g. '*/startup.c').
    #[arg(long)]
    pub exclude: Vec<String>,
}

pub async fn cli(command: CoverageCommand) -> anyhow::Result<()> {
    let (report, output) = match command.merge {
        Some(MergeCommand::Merge { files, output }) => (merge_lcov(&files).await?, output),
        None => {
            let elf = command
                .elf
                .ok_or_else(|| anyhow::anyhow!("--elf is required"))?;
            (
                report(&elf, &command.traces, &PathFilter::default()).await?,
                command.output,
            )
        }
    };
    let report = report.filter(&output.include, &output.exclude)?;
    let text = render(&report, output.format);
    match &output.output {
        Some(path) => {
            tokio::fs::write(path, text).await?;
            eprintln!("{}: {}", path.display(), summary(&report.totals()));
        }
        None => print!("{text}"),
    }
    Ok(())
}
