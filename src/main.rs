//! The `vitalgate` command: the daemon and its tools.

mod commands;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate::capture::{self, CaptureOptions};
use vitalgate::demo::{self, DemoOptions};
use vitalgate::{Config, Gateway};
use vitalgate_devices::Timestamp;
use vitalgate_devices::profile::Profile;

/// Home patient gateway: reads vitals from wearables over serial and MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with its own MQTT server and the bundled
    /// simulator: virtual patients on virtual serial and MQTT devices.
    Demo {
        /// Simulation seed (the same seed plays the same patients).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Stop after this long (e.g. 90s, 10m); default: until Ctrl-C.
        #[arg(long, value_parser = vitalsim::play::parse_duration)]
        duration: Option<Duration>,
        /// Write the simulator's ground-truth event labels (JSON lines) here.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Port of the gateway's MQTT server (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Folder for the demo's keys and ledger (kept between runs).
        #[arg(long, default_value = "vitalgate-demo")]
        dir: PathBuf,
        /// Do not show the live view (log lines only).
        #[arg(long)]
        quiet: bool,
    },
    /// Run the gateway daemon with a configuration file.
    Run {
        /// The configuration file (see vitalgate.example.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Show the live view of vitals on standard output.
        #[arg(long)]
        live: bool,
    },
    /// Validate a configuration file and the profiles it references.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// First boot: create the gateway's keys (identity.key, account.key,
    /// mode 0600) in its state directory and print its enrolment record
    /// for the hospital: JSON on stdout, a QR code on stderr at a terminal.
    /// Exit 1, changing nothing, when the keys exist already.
    Init(commands::init::InitArgs),
    /// Print the gateway's enrolment record again (JSON on stdout, QR code
    /// on stderr at a terminal), derived from its private keys.
    Enrolment(commands::init::EnrolmentArgs),
    /// Back up the gateway's private keys encrypted to the hospital's
    /// key-escrow key (`vitalgate keygen recipient`): never in the clear.
    Backup(commands::backup::BackupArgs),
    /// Restore the gateway's keys from a backup with the escrow private
    /// key, into a state directory without keys. Exit 1, changing
    /// nothing, when keys exist there already.
    Restore(commands::backup::RestoreArgs),
    /// Create a key: the gateway's identity, a recipient's key pair, or the
    /// gateway's account on the consultation chain.
    Keygen(commands::keygen::KeygenArgs),
    /// Check the whole ledger: signatures, hash links, Merkle roots, log
    /// consistency. Exit 0 valid, 1 damaged (first bad block named), 2
    /// could not run.
    Verify(commands::verify::VerifyArgs),
    /// Decrypt readings with a recipient's private key, as JSON lines or
    /// CSV; with --alerts, the alert records (audit trail) instead.
    Open(commands::open::OpenArgs),
    /// Decrypt readings with a recipient's private key and export them:
    /// `--format fhir` writes one FHIR R4 Bundle of vital-signs
    /// Observations (JSON). Exit codes as `open`.
    Export(commands::export::ExportArgs),
    /// Print a proof (JSON) that a block or a record is in the log, or that
    /// the log only grew between two sizes.
    Prove(commands::prove::ProveArgs),
    /// Check a proof offline with the gateway's public key. Exit 0 when it
    /// holds, 1 when it does not.
    CheckProof(commands::prove::CheckProofArgs),
    /// Acknowledge an alert: sign it with the shared secret and send it to
    /// a gateway's HTTP API. Exit 0 taken, 1 refused, 2 could not ask.
    Ack(commands::ack::AckArgs),
    /// Decode a raw capture with a device profile: readings as JSON lines on
    /// stdout, each rejected frame on stderr with its byte offset.
    Decode {
        /// The device profile (device-profiles/*.toml).
        #[arg(long, short)]
        profile: PathBuf,
        /// The capture: raw bytes for serial formats, one message per line
        /// for MQTT formats. Standard input when absent.
        file: Option<PathBuf>,
        /// Device id written into the readings.
        #[arg(long, default_value = "capture")]
        device: String,
        /// Patient id written into the readings.
        #[arg(long, default_value = "unbound")]
        patient: String,
        /// Gateway receive time to stamp (RFC 3339; default now).
        #[arg(long, value_parser = parse_time)]
        received: Option<Timestamp>,
        /// Also write status frames (sensor off, searching) to stdout.
        #[arg(long)]
        statuses: bool,
    },
}

/// How to make a key file that does not exist: `vitalgate init` makes
/// both of a gateway's keys under their usual names in its state
/// directory; `keygen` makes one at any path. Empty for other errors,
/// whose messages carry their own fix (`chmod 600 …`).
fn missing_key_hint(
    e: &vitalgate_chain::crypto::keys::KeyError,
    path: &std::path::Path,
    kind: &str,
) -> String {
    use commands::init::{ACCOUNT_FILE, IDENTITY_FILE};
    if !matches!(e, vitalgate_chain::crypto::keys::KeyError::NotFound { .. }) {
        return String::new();
    }
    let usual = if kind == "identity" {
        IDENTITY_FILE
    } else {
        ACCOUNT_FILE
    };
    let keygen = format!("`vitalgate keygen {kind} {}`", path.display());
    match (path.file_name(), path.parent()) {
        (Some(name), Some(dir)) if name == usual => format!(
            " (create the gateway's keys with `vitalgate init --state-dir {}`, or this one alone with {keygen})",
            dir.display()
        ),
        _ => format!(
            " (create it with {keygen}; `vitalgate init` names it {usual} in the state directory)"
        ),
    }
}

/// Read the anchoring keys as the daemon will, and say where tree heads
/// are anchored.
fn check_anchor(file: &std::path::Path, c: &Config) -> Result<()> {
    use vitalgate::anchor::config::BackendSettings;
    let Some(a) = &c.anchor else {
        println!("anchoring: off (no [anchor])");
        return Ok(());
    };
    let at = |key: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("{}: key `{key}`: {e}", file.display())
    };
    match &a.backend {
        BackendSettings::Evm(e) => {
            let account =
                vitalgate::anchor::account::AccountKey::load(&e.account_key).map_err(|err| {
                    let hint = match &err {
                        vitalgate::anchor::account::AccountKeyError::File(k) => {
                            missing_key_hint(k, &e.account_key, "account")
                        }
                        _ => String::new(),
                    };
                    at("anchor.evm.account_key", &format!("{err}{hint}"))
                })?;
            println!(
                "anchoring: registry {} on chain {} at {}, as account {} (the hospital registers it); at most one anchor every {} s; outbox {}",
                e.registry,
                e.chain_id,
                vitalgate::anchor::registry::redact(&e.rpc_url),
                account.address(),
                a.pace.interval.as_secs(),
                a.outbox.display()
            );
        }
        BackendSettings::Https(h) => {
            vitalgate::deliver::signature::Secret::load(&h.secret_file)
                .map_err(|err| at("anchor.https.secret_file", &err))?;
            println!(
                "anchoring: HTTPS service {}; at most one anchor every {} s; outbox {}",
                vitalgate::anchor::registry::redact(&h.url),
                a.pace.interval.as_secs(),
                a.outbox.display()
            );
        }
    }
    Ok(())
}

/// Read the alert secrets as the daemon will, and say where alerts go.
fn check_alerts(file: &std::path::Path, c: &Config) -> Result<()> {
    use vitalgate::deliver::signature::Secret;
    let secret = |key: &str, path: &std::path::Path| {
        Secret::load(path).map_err(|e| anyhow::anyhow!("{}: key `{key}`: {e}", file.display()))
    };
    if let Some(p) = &c.alerts.ack_secret {
        secret("alerts.ack_secret_file", p)?;
    }
    for (i, w) in c.alerts.webhooks.iter().enumerate() {
        secret(&format!("alerts.webhook[{i}].secret_file"), &w.secret)?;
    }
    let mut sinks: Vec<String> = c
        .alerts
        .mqtt
        .iter()
        .map(|m| {
            format!(
                "MQTT {}:{} ({})",
                m.broker.host, m.broker.port, m.topic_prefix
            )
        })
        .collect();
    sinks.extend(
        c.alerts
            .webhooks
            .iter()
            .map(|w| format!("webhook {} ({})", w.name, w.url)),
    );
    println!(
        "alerts: {}; acknowledgements {}; outbox {}",
        if sinks.is_empty() {
            "no sinks (alerts are logged and recorded in the ledger only)".to_owned()
        } else {
            sinks.join(", ")
        },
        if c.alerts.ack_secret.is_some() {
            "accepted when signed"
        } else {
            "not accepted (no alerts.ack_secret_file)"
        },
        c.alerts
            .outbox
            .as_deref()
            .map_or("in memory".into(), |p| p.display().to_string()),
    );
    Ok(())
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| format!("`{s}` is not an RFC 3339 time"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Tools print their own results, and info lines on the terminal would
    // tear up the demo's live view.
    init_logging(matches!(
        cli.command,
        Command::Decode { .. }
            | Command::CheckConfig { .. }
            | Command::Keygen(_)
            | Command::Init(_)
            | Command::Enrolment(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Verify(_)
            | Command::Open(_)
            | Command::Export(_)
            | Command::Prove(_)
            | Command::CheckProof(_)
            | Command::Ack(_)
            | Command::Demo { quiet: false, .. }
    ));
    match real_main(cli) {
        Ok(code) => code,
        // `vitalgate open ... | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether `e` is a write to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr, without timestamps when the journal adds its own.
fn init_logging(quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter =
        EnvFilter::try_from_env("VITALGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Keygen(args) => {
            commands::keygen::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => commands::init::run(&args),
        Command::Enrolment(args) => commands::init::enrolment(&args),
        Command::Backup(args) => commands::backup::backup(&args),
        Command::Restore(args) => commands::backup::restore(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Open(args) => commands::open::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::Prove(args) => commands::prove::run(&args),
        Command::CheckProof(args) => commands::prove::check(&args),
        Command::Ack(args) => runtime()?.block_on(commands::ack::run(&args)),
        Command::Decode {
            profile,
            file,
            device,
            patient,
            received,
            statuses,
        } => {
            let profile = Profile::load(&profile).map_err(anyhow::Error::msg)?;
            let options = CaptureOptions {
                device: device.into(),
                patient: patient.into(),
                received: received.unwrap_or_else(Timestamp::now),
                statuses,
            };
            let mut input: Box<dyn std::io::Read> = match &file {
                Some(p) => Box::new(
                    std::fs::File::open(p)
                        .with_context(|| format!("cannot open {}", p.display()))?,
                ),
                None => Box::new(std::io::stdin().lock()),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = std::io::stderr().lock();
            let summary = capture::decode(&profile, &options, &mut input, &mut out, &mut err)?;
            std::io::Write::flush(&mut out)?;
            let rejected: u64 = summary.rejected.values().sum();
            let reasons: Vec<String> = summary
                .rejected
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            eprintln!(
                "decoded {} readings, {} status frames, {} rejected{}",
                summary.readings,
                summary.statuses,
                rejected,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let c = Config::load(&config).map_err(anyhow::Error::msg)?;
            let identity = vitalgate_chain::crypto::keys::IdentityKey::load(&c.chain.identity)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: key `chain.identity`: {e}{}",
                        config.display(),
                        missing_key_hint(&e, &c.chain.identity, "identity")
                    )
                })?;
            println!(
                "{}: ok, {} devices; gateway key {}, ledger {}, {} recipients",
                config.display(),
                c.devices.len(),
                identity.public(),
                c.chain.directory.display(),
                c.chain.recipients.len()
            );
            for d in &c.devices {
                // An unplugged device is normal (the gateway keeps trying
                // its port), so this is said, not refused.
                let port = match &d.port {
                    Some(p) if p.exists() => format!(" on {}", p.display()),
                    Some(p) => format!(
                        " on {} (not present now: plug the device in, or correct device `{}`'s port; the gateway keeps trying it)",
                        p.display(),
                        d.id
                    ),
                    None => String::new(),
                };
                println!(
                    "  {} → patient {}: {} {} ({}){port}",
                    d.id, d.patient, d.profile.vendor, d.profile.model, d.profile.format
                );
            }
            check_alerts(&config, &c)?;
            check_anchor(&config, &c)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, live } => {
            let config = Config::load(&config).map_err(anyhow::Error::msg)?;
            runtime()?.block_on(async move {
                let cancel = CancellationToken::new();
                let ledger = vitalgate::store::open_ledger(&config.chain)?;
                let gateway = Gateway::start(&config, ledger, cancel.clone())?;
                // Storage is open and every source started: ready, as far
                // as systemd's Type=notify is concerned.
                vitalgate::health::watchdog::ready(&gateway.health);
                let watchdog = tokio::spawn(vitalgate::health::watchdog::run(
                    gateway.health.clone(),
                    cancel.clone(),
                ));
                let view = live.then(|| {
                    tokio::spawn(vitalgate::view::run(
                        gateway.ingest.clone(),
                        gateway.store.clone(),
                        gateway.alerts.clone(),
                        None,
                        cancel.clone(),
                    ))
                });
                shutdown_signal().await;
                tracing::info!("stopping");
                vitalgate::health::watchdog::stopping();
                cancel.cancel();
                let _ = watchdog.await;
                gateway.join().await;
                if let Some(v) = view {
                    let _ = v.await;
                }
                tracing::info!("stopped cleanly");
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Demo {
            seed,
            speed,
            duration,
            labels,
            port,
            quiet,
            dir,
        } => {
            if !(speed.is_finite() && speed > 0.0) {
                anyhow::bail!("--speed must be a positive number (1 = real time)");
            }
            runtime()?.block_on(async move {
                let cancel = CancellationToken::new();
                let stop = cancel.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stop.cancel();
                });
                let options = DemoOptions { seed, speed, duration, labels, view: !quiet, port, dir: dir.clone() };
                let s = demo::run(options, cancel).await?;
                println!(
                    "demo stopped: simulator sent {} samples ({} bytes, {} labels); gateway received {} readings, {} invalid, {} rejected, {} stored",
                    s.played.samples,
                    s.played.bytes,
                    s.played.labels,
                    s.ingest.received,
                    s.ingest.invalid,
                    s.ingest.rejected_total(),
                    s.store.stored
                );
                println!(
                    "ledger: {} blocks sealed ({} bytes on disk) in {}; {} alert records",
                    s.store.blocks,
                    s.store.bytes,
                    dir.join("ledger").display(),
                    s.store.alert_records
                );
                let count = |e: &str| s.alerts.events.get(e).copied().unwrap_or(0);
                println!(
                    "alerts: {} raised, {} escalated, {} resolved, {} open at the end",
                    count("raised") + count("reopened"),
                    count("escalated"),
                    count("resolved"),
                    s.alerts.open.len()
                );
                for a in &s.alerts.open {
                    println!(
                        "  open: {:?} {} {} since {}: {}",
                        a.severity, a.patient, a.kind.name(), a.since, a.summary
                    );
                }
                for (id, d) in &s.ingest.devices {
                    println!(
                        "  device {id} (patient {}): received {}, invalid {}, rejected {}, status frames {}, stored {}",
                        d.patient,
                        d.received,
                        d.invalid,
                        d.rejected,
                        d.statuses,
                        s.store.devices.get(id).copied().unwrap_or(0)
                    );
                }
                println!(
                    "try: vitalgate verify --ledger {ledger} --gateway-key {identity}\n     vitalgate open --ledger {ledger} --identity {recipient}",
                    ledger = dir.join("ledger").display(),
                    identity = dir.join("identity.key.pub").display(),
                    recipient = dir.join("recipient.key").display(),
                );
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Two worker threads: a Pi has four cores and other work to do.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
