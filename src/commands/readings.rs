//! The walk `open` and `export` share: decrypt every block a recipient can
//! read, oldest first (including the block still open), and hand over each
//! reading measured inside a time window, with where it is stored — or,
//! for `open --alerts`, each alert record (the audit trail of alerts,
//! escalations and acknowledgements) recorded inside it.

use super::LedgerArgs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vitalgate_chain::crypto::keys::RecipientKey;
use vitalgate_chain::decrypt::{self, DecryptError, DecryptedRecord};
use vitalgate_chain::{Alert, LedgerReader, RecordContent};
use vitalgate_devices::{Reading, Timestamp};

/// The arguments every command that decrypts readings takes: where the
/// ledger is, whose key, which time range.
#[derive(Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// A recipient's private key file (from `vitalgate keygen recipient`).
    #[arg(long)]
    pub identity: PathBuf,
    /// Only readings measured (alert records recorded) at or after this
    /// time (RFC 3339).
    #[arg(long, value_parser = crate::parse_time)]
    pub from: Option<Timestamp>,
    /// Only readings measured (alert records recorded) before this time
    /// (RFC 3339).
    #[arg(long, value_parser = crate::parse_time)]
    pub to: Option<Timestamp>,
}

impl ReadArgs {
    /// Open the ledger for reading and load the recipient key.
    pub fn open(&self) -> Result<(LedgerReader, RecipientKey)> {
        let (dir, _) = self.ledger.resolve()?;
        let key = RecipientKey::load(&self.identity)?;
        let reader = LedgerReader::open(&dir)?;
        Ok((reader, key))
    }

    /// The time window asked for.
    pub fn window(&self) -> Window {
        Window {
            from: self.from,
            to: self.to,
        }
    }
}

/// Which readings to keep, by measurement time ([`Reading::time`]); which
/// alert records, by the time the gateway recorded them ([`Alert::time`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Keep readings measured at or after this time.
    pub from: Option<Timestamp>,
    /// Keep readings measured before this time.
    pub to: Option<Timestamp>,
}

impl Window {
    /// Whether a reading measured at `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|from| t >= from) && self.to.is_none_or(|to| t < to)
    }
}

/// One decrypted reading and its place in the ledger.
#[derive(Clone, Copy, Debug)]
pub struct Located<'a> {
    /// Block height.
    pub block: u64,
    /// Record index within the block.
    pub record: u32,
    /// Position of the reading within the record.
    pub index: u32,
    /// The reading.
    pub reading: &'a Reading,
}

/// One decrypted alert record and its place in the ledger.
#[derive(Clone, Copy, Debug)]
pub struct LocatedAlert<'a> {
    /// Block height.
    pub block: u64,
    /// Record index within the block.
    pub record: u32,
    /// The message and when it was recorded.
    pub alert: &'a Alert,
}

/// What a walk hands over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listing {
    /// Readings; alert records are passed over (and counted).
    #[default]
    Readings,
    /// Alert records; readings are passed over.
    Alerts,
}

/// What a walk found besides what it handed over.
#[derive(Debug, Default)]
pub struct Walked {
    /// What was handed over.
    pub listing: Listing,
    /// Readings handed over (inside the window).
    pub readings: u64,
    /// Alert records handed over (inside the window).
    pub alerts: u64,
    /// Alert records passed over by a walk of readings.
    pub alerts_passed: u64,
    /// Blocks looked at (sealed, plus the open one).
    pub blocks: u64,
    /// Blocks not encrypted for this key.
    pub not_mine: u64,
    /// Blocks that could not be decrypted, with why.
    pub damaged: Vec<DecryptError>,
}

impl Walked {
    /// The summary line for stderr: `N readings; ...` (`N alert records;
    /// ...` for a walk of alert records).
    pub fn summary(&self) -> String {
        let mut line = match self.listing {
            Listing::Readings => format!("{} readings", self.readings),
            Listing::Alerts => format!("{} alert records", self.alerts),
        };
        if self.alerts_passed > 0 {
            line.push_str(&format!(
                "; {} alert records not listed (`vitalgate open --alerts` lists them)",
                self.alerts_passed
            ));
        }
        if self.not_mine > 0 {
            line.push_str(&format!(
                "; {} blocks are not encrypted for this key",
                self.not_mine
            ));
        }
        if !self.damaged.is_empty() {
            line.push_str(&format!(
                "; {} blocks could not be decrypted",
                self.damaged.len()
            ));
        }
        line
    }

    /// Print each damaged block and the summary on stderr, and give the
    /// exit code: 1 when a block could not be decrypted, else 0.
    pub fn report(&self) -> ExitCode {
        for e in &self.damaged {
            eprintln!("{e} (run `vitalgate verify`)");
        }
        eprintln!("{}", self.summary());
        if self.damaged.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

/// Decrypt every block `key` can read, oldest first, and call `each` for
/// every reading inside `window`, in stored order. Alert records are
/// passed over and counted (`export` has no place for them; `open` lists
/// them with `--alerts`).
///
/// Blocks for other recipients are counted; damaged blocks are collected
/// (the walk goes on past them). A key that can read none of the ledger's
/// blocks is an error: it is not one of this ledger's recipients.
pub fn walk(
    reader: &LedgerReader,
    key: &RecipientKey,
    window: Window,
    mut each: impl FnMut(Located<'_>) -> Result<()>,
) -> Result<Walked> {
    let (mut readings, mut alerts_passed) = (0, 0);
    let walked = walk_records(reader, key, |record| {
        let RecordContent::Readings(stored) = &record.content else {
            alerts_passed += 1;
            return Ok(());
        };
        for (index, reading) in (0u32..).zip(stored) {
            if !window.contains(reading.time()) {
                continue;
            }
            each(Located {
                block: record.height,
                record: record.index,
                index,
                reading,
            })?;
            readings += 1;
        }
        Ok(())
    })?;
    Ok(Walked {
        listing: Listing::Readings,
        readings,
        alerts_passed,
        ..walked
    })
}

/// Decrypt every block `key` can read, oldest first, and call `each` for
/// every alert record recorded inside `window`, in stored order; as
/// [`walk`] otherwise.
pub fn walk_alerts(
    reader: &LedgerReader,
    key: &RecipientKey,
    window: Window,
    mut each: impl FnMut(LocatedAlert<'_>) -> Result<()>,
) -> Result<Walked> {
    let mut alerts = 0;
    let walked = walk_records(reader, key, |record| {
        if let RecordContent::Alert(alert) = &record.content
            && window.contains(alert.time)
        {
            each(LocatedAlert {
                block: record.height,
                record: record.index,
                alert,
            })?;
            alerts += 1;
        }
        Ok(())
    })?;
    Ok(Walked {
        listing: Listing::Alerts,
        alerts,
        ..walked
    })
}

/// The walk itself: every record of every block `key` can read, oldest
/// block first, records in index order; counts blocks, blocks not for this
/// key and damaged blocks.
fn walk_records(
    reader: &LedgerReader,
    key: &RecipientKey,
    mut each: impl FnMut(&DecryptedRecord) -> Result<()>,
) -> Result<Walked> {
    let mut heights: Vec<u64> = reader
        .headers()
        .map(|h| h.map(|(height, _)| height))
        .collect::<Result<_, _>>()?;
    let next = heights.last().map_or(0, |h| h + 1);
    if reader.open_block()?.is_some() {
        heights.push(next);
    }
    let mut walked = Walked {
        blocks: heights.len() as u64,
        ..Walked::default()
    };
    for height in heights {
        match decrypt::decrypt_records(reader, height, key) {
            Ok(records) => {
                for record in &records {
                    each(record)?;
                }
            }
            Err(DecryptError::NotARecipient { .. }) => walked.not_mine += 1,
            Err(e) => walked.damaged.push(e),
        }
    }
    if walked.blocks > 0 && walked.not_mine == walked.blocks {
        anyhow::bail!(
            "recipient key {} can read none of the {} blocks in {}: it is not one of this ledger's recipients (wrong --identity?)",
            key.kid(),
            walked.blocks,
            reader.path().display()
        );
    }
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_includes_from_and_excludes_to() {
        let w = Window {
            from: Some(Timestamp(1_000)),
            to: Some(Timestamp(2_000)),
        };
        assert!(!w.contains(Timestamp(999)));
        assert!(w.contains(Timestamp(1_000)));
        assert!(w.contains(Timestamp(1_999)));
        assert!(!w.contains(Timestamp(2_000)));
        assert!(Window::default().contains(Timestamp(i64::MIN)));
    }

    #[test]
    fn the_summary_names_what_was_listed_and_the_alert_records_passed_over() {
        let readings = Walked {
            readings: 12,
            alerts_passed: 2,
            ..Walked::default()
        };
        assert_eq!(
            readings.summary(),
            "12 readings; 2 alert records not listed (`vitalgate open --alerts` lists them)"
        );
        let alerts = Walked {
            listing: Listing::Alerts,
            alerts: 3,
            not_mine: 1,
            ..Walked::default()
        };
        assert_eq!(
            alerts.summary(),
            "3 alert records; 1 blocks are not encrypted for this key"
        );
    }
}
