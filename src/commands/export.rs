//! `vitalgate export`: decrypt readings with a recipient's private key and
//! write them in a clinical exchange format.

use super::fhir::id::Place;
use super::fhir::{self, Stored};
use super::readings::{self, ReadArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// Export formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// One FHIR R4 Bundle (JSON, type `collection`) of vital-signs
    /// Observations (see docs/FORMAT.md, "FHIR export").
    Fhir,
}

/// Arguments of `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormat,
}

/// Decrypt every reading this recipient can read in the time window and
/// write them to stdout in the format asked for. Alert records are not
/// exported (they are the gateway's audit trail, not observations); the
/// summary on stderr counts them. The exit code is `open`'s:
/// 0, or 1 when some block could not be decrypted (what could be is still
/// written); errors (2) are the caller's.
pub fn run(args: &ExportArgs) -> Result<ExitCode> {
    let (reader, key) = args.read.open()?;
    let mut stored = Vec::new();
    let walked = readings::walk(&reader, &key, args.read.window(), |l| {
        stored.push(Stored {
            place: Place {
                block: l.block,
                record: l.record,
                index: l.index,
            },
            reading: l.reading.clone(),
        });
        Ok(())
    })?;
    match args.format {
        ExportFormat::Fhir => {
            let gateway = reader.gateway()?.with_context(|| {
                format!(
                    "{}: the ledger has no metadata (not a vitalgate ledger?)",
                    reader.path().display()
                )
            })?;
            let bundle = fhir::bundle(&gateway, &stored)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            serde_json::to_writer_pretty(&mut out, &bundle)?;
            writeln!(out)?;
            out.flush()?;
            eprintln!("{} FHIR observations", bundle.entry.len());
        }
    }
    Ok(walked.report())
}
