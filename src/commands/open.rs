//! `vitalgate open`: decrypt readings — or, with `--alerts`, the alert
//! records of the audit trail — with a recipient's private key.

use super::readings::{self, Located, LocatedAlert, ReadArgs};
use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;
use vitalgate_devices::Reading;

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
    read: ReadArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// List the alert records (every alert, escalation, acknowledgement
    /// and delivery receipt the gateway recorded) instead of the readings,
    /// as JSON lines `{"block":H,"record":I,"time":T,"alert":{...}}`, the
    /// message as stored; --from and --to select by the recorded time.
    #[arg(long)]
    alerts: bool,
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
    if args.alerts && matches!(args.format, Format::Csv) {
        anyhow::bail!("--alerts writes JSON lines (alert messages are JSON); drop --format csv");
    }
    let (reader, key) = args.read.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.alerts {
        let walked = readings::walk_alerts(&reader, &key, args.read.window(), |located| {
            write_alert(&mut out, located)
        })?;
        out.flush()?;
        return Ok(walked.report());
    }
    if matches!(args.format, Format::Csv) {
        writeln!(
            out,
            "block,record,device,patient,vital,loinc,value,unit,device_time,gateway_time,quality"
        )?;
    }
    let walked = readings::walk(&reader, &key, args.read.window(), |located| {
        write_reading(&mut out, located, args.format)
    })?;
    out.flush()?;
    Ok(walked.report())
}

fn write_reading(out: &mut impl Write, located: Located<'_>, format: Format) -> Result<()> {
    let reading = located.reading;
    match format {
        Format::Jsonl => {
            serde_json::to_writer(
                &mut *out,
                &Line {
                    block: located.block,
                    record: located.record,
                    reading,
                },
            )?;
            writeln!(out)?;
        }
        Format::Csv => writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            located.block,
            located.record,
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
    Ok(())
}

/// One alert record as a JSON line. The message is written as stored:
/// the ledger only takes a JSON object on one line, so it embeds as is,
/// byte for byte (re-serializing could reorder its keys or change its
/// numbers).
fn write_alert(out: &mut impl Write, located: LocatedAlert<'_>) -> Result<()> {
    writeln!(
        out,
        "{{\"block\":{},\"record\":{},\"time\":{},\"alert\":{}}}",
        located.block,
        located.record,
        serde_json::to_string(&located.alert.time)?,
        located.alert.message.as_str()
    )?;
    Ok(())
}

/// Quote a field that could hold a comma.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
