//! `vitalgate backup` and `vitalgate restore`: the gateway's two private
//! keys, encrypted to the hospital's key-escrow key and back.
//!
//! The backup is made with the ledger's own cryptography (a COSE_Encrypt
//! whose recipients are wrapped as a block's content key is:
//! `vitalgate_chain::crypto::backup`, specified in `docs/FORMAT.md`, "Key
//! backup"), so a private key is never written in the clear anywhere but
//! its own key file. Restoring writes the keys as `init` does — new files,
//! mode 0600, never over existing ones — after checking that they are the
//! gateway and account the backup says they are.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vitalgate::anchor::account::AccountKey;
use vitalgate_chain::crypto::backup::{KeyBackup, MAX_BACKUP_LEN};
use vitalgate_chain::crypto::keys::{RecipientKey, RecipientPublic, write_new_secret_file};
use vitalgate_devices::Timestamp;

use super::init::{
    Created, Enrolment, KeyPaths, StateDirArg, ensure_dir, hand_over, load_keys, modified,
    set_modified, write_keys,
};

/// Arguments of `backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: StateDirArg,
    /// The hospital's key-escrow public key: its text (`x25519:…`) or the
    /// `.pub` file `vitalgate keygen recipient` wrote. Repeat it for
    /// several escrow keys; any one of them opens the backup.
    #[arg(long, required = true, value_name = "KEY")]
    pub to: Vec<String>,
    /// The backup file to create (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Arguments of `restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file `vitalgate backup` wrote.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The escrow private key the backup was encrypted to (the key file
    /// `vitalgate keygen recipient` made, kept by the hospital).
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    #[command(flatten)]
    pub dir: StateDirArg,
}

/// An escrow public key from its text or from a file holding the text.
fn escrow_key(given: &str) -> Result<RecipientPublic> {
    if given.starts_with("x25519:") || given.starts_with("ed25519:") {
        return given.parse().map_err(|e| {
            anyhow::anyhow!(
                "--to {given}: {e} (give the escrow key printed by `vitalgate keygen recipient`)"
            )
        });
    }
    let text = std::fs::read_to_string(given)
        .with_context(|| format!("--to {given}: cannot read the escrow key file"))?;
    text.trim().parse().map_err(|e| {
        anyhow::anyhow!(
            "--to {given}: {e} (give the escrow key printed by `vitalgate keygen recipient`, or its .pub file)"
        )
    })
}

/// `vitalgate backup`: both keys, encrypted to the escrow keys, into a new
/// 0600 file.
pub fn backup(args: &BackupArgs) -> Result<ExitCode> {
    // Every argument is checked before anything is read or written: a
    // wrong escrow key leaves no file behind.
    let to = args
        .to
        .iter()
        .map(|k| escrow_key(k))
        .collect::<Result<Vec<_>>>()?;
    let paths = KeyPaths::new(&args.dir.resolve());
    let (identity, account) = load_keys(&paths)?;
    let gateway = identity.kid();
    let backup = KeyBackup {
        identity,
        account_secret: account.secret_bytes(),
        account_address: account.address().into_array(),
        created: modified(&paths.identity)?.0,
        software: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let sealed = backup.seal(&to).context("cannot encrypt the key backup")?;
    write_new_secret_file(&args.out, &sealed)
        .with_context(|| format!("cannot write the backup {}", args.out.display()))?;
    let escrow: Vec<String> = to.iter().map(|k| format!("{} ({k})", k.kid())).collect();
    eprintln!(
        "wrote {} (mode 0600, {} bytes): the private keys of gateway {gateway} and account {}, encrypted to escrow key {}",
        args.out.display(),
        sealed.len(),
        account.address().to_checksum(None),
        escrow.join(", ")
    );
    eprintln!(
        "keep it off the gateway; restore with `vitalgate restore --from {} --identity ESCROW_PRIVATE_KEY --state-dir DIR`",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a backup file, refusing one far larger than any backup.
fn read_backup(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the backup {}", path.display()))?;
    let mut bytes = Vec::with_capacity(1024);
    file.take(MAX_BACKUP_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the backup {}", path.display()))?;
    if bytes.len() > MAX_BACKUP_LEN {
        bail!(
            "{}: larger than {MAX_BACKUP_LEN} bytes, so not a key backup",
            path.display()
        );
    }
    Ok(bytes)
}

/// `vitalgate restore`: decrypt a backup and write its keys into an empty
/// state directory. Exit 1 when keys exist there already (nothing
/// changed).
pub fn restore(args: &RestoreArgs) -> Result<ExitCode> {
    let dir = args.dir.resolve();
    let paths = KeyPaths::new(&dir);
    if let Some(existing) = paths.first_existing() {
        eprintln!("error: {}", paths.refusal(&existing, "restore"));
        return Ok(ExitCode::from(1));
    }
    let bytes = read_backup(&args.from)?;
    let escrow = RecipientKey::load(&args.identity)?;
    let backup = KeyBackup::open(&bytes, &escrow)
        .with_context(|| format!("cannot restore from {}", args.from.display()))?;
    let account = AccountKey::from_bytes(&backup.account_secret).with_context(|| {
        format!(
            "{}: the account key inside is not a secp256k1 private key",
            args.from.display()
        )
    })?;
    if account.address().into_array() != backup.account_address {
        bail!(
            "{}: the account key inside is {}, but the backup records account {}; nothing was written",
            args.from.display(),
            account.address().to_checksum(None),
            alloy::primitives::Address::from(backup.account_address).to_checksum(None)
        );
    }

    ensure_dir(&dir)?;
    let mut created = Created::default();
    write_keys(&paths, &backup.identity, &account, &mut created)?;
    let at = Timestamp(backup.created);
    for path in created.paths() {
        set_modified(path, at)?;
    }
    let handed = hand_over(&dir, created.paths())?;
    let record = Enrolment::of_stored(&paths, &backup.identity.public(), &account)?;
    let json = record.to_json()?;
    created.keep();

    eprintln!(
        "restored gateway {} and account {} into {} and {} (mode 0600), keys created {}, backed up by vitalgate {}",
        record.gateway_id,
        record.account,
        paths.identity.display(),
        paths.account.display(),
        record.created,
        backup.software
    );
    if let Some(handed) = handed {
        eprintln!("{handed}");
    }
    eprintln!("its enrolment record (as registered at the hospital) is on stdout");
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
