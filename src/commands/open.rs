//! `vitalgate open`: decrypt readings with a recipient's private key.

use super::LedgerArgs;
use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use vitalgate_chain::LedgerReader;
use vitalgate_chain::crypto::keys::RecipientKey;
use vitalgate_chain::decrypt::{self, DecryptError, RecordReadings};
use vitalgate_devices::{Reading, Timestamp};

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// One JSON object per reading (the reading's JSON form plus `block`
    /// and `record`, which `vitalgate prove --record` takes).
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// Arguments of `open`.
#[derive(Args, Debug)]
pub struct OpenArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// A recipient's private key file (from `vitalgate keygen recipient`).
    #[arg(long)]
    identity: PathBuf,
    /// Only readings measured at or after this time (RFC 3339).
    #[arg(long, value_parser = crate::parse_time)]
    from: Option<Timestamp>,
    /// Only readings measured before this time (RFC 3339).
    #[arg(long, value_parser = crate::parse_time)]
    to: Option<Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

#[derive(Serialize)]
struct Line<'a> {
    block: u64,
    record: u32,
    #[serde(flatten)]
    reading: &'a Reading,
}

/// Decrypt every block this recipient can read, oldest first, including
/// the records of the block still open.
pub fn run(args: &OpenArgs) -> Result<ExitCode> {
    let (dir, _) = args.ledger.resolve()?;
    let key = RecipientKey::load(&args.identity)?;
    let reader = LedgerReader::open(&dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if matches!(args.format, Format::Csv) {
        writeln!(
            out,
            "block,record,device,patient,vital,loinc,value,unit,device_time,gateway_time,quality"
        )?;
    }
    let mut heights: Vec<u64> = reader
        .headers()
        .map(|h| h.map(|(height, _)| height))
        .collect::<Result<_, _>>()?;
    let next = heights.last().map_or(0, |h| h + 1);
    if reader.open_block()?.is_some() {
        heights.push(next);
    }
    let (mut written, mut not_mine, mut damaged) = (0u64, 0u64, 0u64);
    for height in heights {
        match decrypt::decrypt_block(&reader, height, &key) {
            Ok(records) => {
                for record in &records {
                    written += write_record(&mut out, record, args)?;
                }
            }
            Err(DecryptError::NotARecipient { .. }) => not_mine += 1,
            Err(e) => {
                damaged += 1;
                eprintln!("{e} (run `vitalgate verify`)");
            }
        }
    }
    out.flush()?;
    eprintln!(
        "{written} readings{}{}",
        if not_mine > 0 {
            format!("; {not_mine} blocks are not encrypted for this key")
        } else {
            String::new()
        },
        if damaged > 0 {
            format!("; {damaged} blocks could not be decrypted")
        } else {
            String::new()
        }
    );
    Ok(if damaged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_record(out: &mut impl Write, record: &RecordReadings, args: &OpenArgs) -> Result<u64> {
    let mut n = 0;
    for reading in &record.readings {
        let t = reading.time();
        if args.from.is_some_and(|from| t < from) || args.to.is_some_and(|to| t >= to) {
            continue;
        }
        match args.format {
            Format::Jsonl => {
                serde_json::to_writer(
                    &mut *out,
                    &Line {
                        block: record.height,
                        record: record.index,
                        reading,
                    },
                )?;
                writeln!(out)?;
            }
            Format::Csv => writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                record.height,
                record.index,
                reading.device,
                reading.patient,
                reading.vital,
                reading.vital.loinc(),
                reading.value,
                reading.vital.ucum(),
                reading
                    .device_time
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                reading.gateway_time,
                csv_field(&reading.quality.to_string()),
            )?,
        }
        n += 1;
    }
    Ok(n)
}

/// Quote a field that could hold a comma.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
