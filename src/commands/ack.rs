//! `vitalgate ack`: acknowledge an alert as the hospital's side does —
//! sign the acknowledgement with the shared secret and POST it to a
//! gateway's HTTP API — for a carer at the gateway, for scripts, and to
//! try the path end to end.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vitalgate::alert::ack;
use vitalgate::deliver::signature::Secret;
use vitalgate_devices::Timestamp;

/// Arguments of `ack`.
#[derive(Args, Debug)]
pub struct AckArgs {
    /// The alert id (from the alert message, the live view or the status).
    pub alert: String,
    /// Who acknowledges (a clinician's or carer's id).
    #[arg(long)]
    pub by: String,
    /// The shared secret file (the gateway's alerts.ack_secret_file).
    #[arg(long)]
    pub secret: PathBuf,
    /// The gateway's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8480")]
    pub url: String,
}

/// Sign, send, and print the gateway's answer. Exit 0 when taken, 1 when
/// refused, 2 when it could not be asked.
pub async fn run(args: &AckArgs) -> Result<ExitCode> {
    let secret = Secret::load(&args.secret)?;
    let now = Timestamp::now().millis().div_euclid(1000);
    let body = ack::sign(&secret, &args.alert, &args.by, now);
    let url = format!("{}/alerts/ack", args.url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{}", text.trim_end());
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("refused: HTTP {status}");
        ExitCode::from(1)
    })
}
