//! Coverage for the server and the CLI: the I/O around the sans-IO `virserver-coverage`
//! crate. A trace is either QEMU's `-d in_asm` log, streamed through the parser in
//! chunks (never held whole), or the hit-count plugin's compact file (told apart by its
//! magic); the ELF's DWARF is mapped once, and the report is filtered by path globs.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use virserver_coverage::{
    BlockCounts, BlockCountsError, ExecutedAddresses, HitCounts, InAsmParser, LineMap,
    LineMapError, ReportError,
};
pub use virserver_coverage::{CoverageReport, Totals};

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
    #[error("bad hit-count file: {0}")]
    Counts(#[from] BlockCountsError),
}

/// What one trace says ran.
pub enum Executions {
    /// Executed or not (the in_asm log).
    Addresses(ExecutedAddresses),
    /// How often (the plugin).
    Counts(HitCounts),
}

/// The first bytes of the plugin's files (crates/coverage/src/hitcounts.rs).
const HIT_COUNTS_MAGIC: &[u8] = b"VSBLKCNT";

/// Which files a report keeps.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Reads one trace of either kind.
pub async fn read_trace(path: &Path) -> Result<Executions, CoverageError> {
    let io = |error| CoverageError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut filled = 0;
    while filled < HIT_COUNTS_MAGIC.len() {
        let n = file.read(&mut buffer[filled..]).await.map_err(io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if buffer[..filled].starts_with(HIT_COUNTS_MAGIC) {
        let mut bytes = buffer[..filled].to_vec();
        file.read_to_end(&mut bytes).await.map_err(io)?;
        return Ok(Executions::Counts(BlockCounts::parse(&bytes)?.hit_counts()));
    }
    let mut parser = InAsmParser::new();
    parser.feed(&buffer[..filled]);
    loop {
        let n = file.read(&mut buffer).await.map_err(io)?;
        if n == 0 {
            break;
        }
        parser.feed(&buffer[..n]);
    }
    Ok(Executions::Addresses(parser.finish()))
}

/// The coverage of one or more traces of the same ELF. With any hit-count trace among
/// them the report has counts (an in_asm trace counts as one execution).
pub async fn report(
    elf: &Path,
    traces: &[PathBuf],
    filter: &PathFilter,
) -> Result<CoverageReport, CoverageError> {
    let mut addresses = ExecutedAddresses::new();
    let mut counts: Option<HitCounts> = None;
    for trace in traces {
        match read_trace(trace).await? {
            Executions::Addresses(set) => addresses.merge(&set),
            Executions::Counts(more) => match &mut counts {
                Some(total) => total.merge(&more),
                None => counts = Some(more),
            },
        }
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
        let report = match counts {
            Some(mut counts) => {
                counts.merge(&HitCounts::from_pairs(
                    addresses.iter().map(|a| (a, 1)).collect(),
                ));
                map.coverage_with_counts(&counts)
            }
            None => map.coverage(&addresses),
        };
        Ok(report.filter(&filter.include, &filter.exclude)?)
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
    /// Traces of runs of that ELF (QEMU `-d in_asm` logs or hit-count plugin files);
    /// several are merged.
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
