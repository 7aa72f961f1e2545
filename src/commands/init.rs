//! `vitalgate init` and `vitalgate enrolment`: a gateway's first boot.
//!
//! `init` creates the gateway's two keys in its state directory — the
//! Ed25519 identity that signs its ledger and the secp256k1 account that
//! anchors it on the consultation chain — and prints the **enrolment
//! record** the hospital registers: who this gateway is, in public keys
//! only (`docs/FORMAT.md`, "Enrolment record"). `enrolment` prints the
//! same record again, derived from the private keys themselves, so it can
//! never disagree with them.
//!
//! Keys are never replaced: a second `init` changes nothing and exits 1.
//! A new identity would orphan the ledger it signed and the enrolment the
//! hospital holds; the way back from a lost gateway is `vitalgate
//! restore` from an escrowed backup, not a new key.

use anyhow::{Context, Result};
use clap::Args;
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde::Serialize;
use std::io::IsTerminal as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use vitalgate::anchor::account::{AccountKey, AccountKeyError};
use vitalgate_chain::crypto::keys::{IdentityKey, IdentityPublic, KeyError};
use vitalgate_devices::Timestamp;

use super::keygen::{public_path, write_public};

/// The identity key's file name in the state directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// The account key's file name in the state directory.
pub const ACCOUNT_FILE: &str = "account.key";
/// The packaged state directory, when neither `--state-dir` nor systemd's
/// `$STATE_DIRECTORY` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vitalgate";
/// The enrolment record's `format`.
pub const ENROLMENT_FORMAT: &str = "vitalgate/enrolment/1";

/// Where the gateway keeps its keys.
#[derive(Args, Debug, Clone)]
pub struct StateDirArg {
    /// The gateway's state directory (default: $STATE_DIRECTORY, which
    /// systemd sets for the service, else /var/lib/vitalgate).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    /// The directory: the flag, else the first entry of
    /// `$STATE_DIRECTORY` (systemd may list several, colon-separated),
    /// else the packaged default.
    pub fn resolve(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| {
                v.to_str()
                    .and_then(|s| s.split(':').find(|p| !p.is_empty()))
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }
}

/// Whether to draw the enrolment record as a QR code on stderr.
#[derive(Args, Debug, Clone, Copy)]
pub struct QrArgs {
    /// Draw the QR code on stderr even when stderr is not a terminal.
    #[arg(long, conflicts_with = "no_qr")]
    pub qr: bool,
    /// Never draw the QR code.
    #[arg(long)]
    pub no_qr: bool,
}

impl QrArgs {
    /// By default only where someone can scan it: a terminal.
    fn wanted(self) -> bool {
        if self.no_qr {
            false
        } else {
            self.qr || std::io::stderr().is_terminal()
        }
    }
}

/// Arguments of `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: StateDirArg,
    #[command(flatten)]
    pub qr: QrArgs,
}

/// Arguments of `enrolment`.
#[derive(Args, Debug)]
pub struct EnrolmentArgs {
    #[command(flatten)]
    pub dir: StateDirArg,
    #[command(flatten)]
    pub qr: QrArgs,
}

/// The key files of a state directory.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    /// The state directory.
    pub dir: PathBuf,
    /// `DIR/identity.key`.
    pub identity: PathBuf,
    /// `DIR/account.key`.
    pub account: PathBuf,
}

impl KeyPaths {
    /// The key files in `dir`.
    pub fn new(dir: &Path) -> KeyPaths {
        KeyPaths {
            dir: dir.to_path_buf(),
            identity: dir.join(IDENTITY_FILE),
            account: dir.join(ACCOUNT_FILE),
        }
    }

    /// The four files (both keys and their `.pub`) in the order written.
    pub fn all(&self) -> [PathBuf; 4] {
        [
            self.identity.clone(),
            public_path(&self.identity),
            self.account.clone(),
            public_path(&self.account),
        ]
    }

    /// The first of the four files that exists already (a dangling
    /// symbolic link counts: writing through it is refused too).
    pub fn first_existing(&self) -> Option<PathBuf> {
        self.all()
            .into_iter()
            .find(|p| std::fs::symlink_metadata(p).is_ok())
    }

    /// The refusal when keys exist: which file, and how to print the
    /// existing record instead.
    pub fn refusal(&self, existing: &Path, what: &str) -> String {
        let dir = self.dir.display();
        let mut message = format!(
            "{} already exists: this gateway has its keys, and {what} never replaces a key (a new identity would orphan its ledger and its enrolment at the hospital); nothing was changed. Print its enrolment record again with `vitalgate enrolment --state-dir {dir}`",
            existing.display()
        );
        let identity_only = self.identity.exists()
            && !self.account.exists()
            && !public_path(&self.account).exists();
        if identity_only {
            message.push_str(&format!(
                "; {} is missing: create the account alone with `vitalgate keygen account {}`",
                self.account.display(),
                self.account.display()
            ));
        }
        message
    }
}

/// The enrolment record: what the hospital registers for a gateway, all
/// of it public (`docs/FORMAT.md`, "Enrolment record"). Field order is
/// the JSON's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrolment {
    /// `vitalgate/enrolment/1`.
    pub format: &'static str,
    /// The identity key's kid in hex: the gateway id in alerts and logs.
    pub gateway_id: String,
    /// The identity public key, `ed25519:…`: checks everything the
    /// gateway signs (`vitalgate verify --gateway-key`).
    pub signing_key: String,
    /// The same public key as the registry's `bytes32 gateway` (`0x` and
    /// 64 hex digits), for `register(gateway, account)`.
    pub registry_gateway: String,
    /// The consultation-chain account's address (EIP-55 checksummed).
    pub account: String,
    /// The vitalgate version that printed the record.
    pub software_version: String,
    /// When the keys were created (the identity key file's modification
    /// time; key files are written once), RFC 3339 UTC.
    pub created: String,
}

impl Enrolment {
    /// The record of the keys stored at `paths`: this software's version,
    /// created when the identity key file was written (key files are
    /// written once, and a restore sets the time back).
    pub fn of_stored(
        paths: &KeyPaths,
        identity: &IdentityPublic,
        account: &AccountKey,
    ) -> Result<Enrolment> {
        Ok(Enrolment::new(
            identity,
            account,
            env!("CARGO_PKG_VERSION"),
            modified(&paths.identity)?,
        ))
    }

    /// The record of these keys.
    pub fn new(
        identity: &IdentityPublic,
        account: &AccountKey,
        software_version: &str,
        created: Timestamp,
    ) -> Enrolment {
        let raw: String = identity
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Enrolment {
            format: ENROLMENT_FORMAT,
            gateway_id: identity.kid().to_string(),
            signing_key: identity.to_string(),
            registry_gateway: format!("0x{raw}"),
            account: account.address().to_checksum(None),
            software_version: software_version.to_owned(),
            created: created.to_string(),
        }
    }

    /// One line of compact JSON: what stdout gets (with a newline) and the
    /// QR code holds (without).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).context("cannot write the enrolment record as JSON")
    }
}

/// The QR code of `text` for a terminal: two modules a character (Unicode
/// half blocks), drawn light-on-dark — blocks for the light modules and
/// the quiet zone — because a console is light text on a dark ground, so
/// the code shows dark-on-light as printed codes do. Low error correction
/// (a screen is not smudged), which keeps a record within 80 columns.
pub fn qr(text: &str) -> Result<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .context("the enrolment record does not fit in a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The modification time of `path`, to the millisecond.
pub fn modified(path: &Path) -> Result<Timestamp> {
    let time = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot read the time of {}", path.display()))?;
    Ok(to_timestamp(time))
}

fn to_timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
    }
}

/// Set `path`'s modification time (a restored key keeps the creation time
/// its enrolment record shows).
pub fn set_modified(path: &Path, at: Timestamp) -> Result<()> {
    let millis = u64::try_from(at.0).unwrap_or(0);
    let time = UNIX_EPOCH + std::time::Duration::from_millis(millis);
    std::fs::File::open(path)
        .and_then(|f| f.set_modified(time))
        .with_context(|| format!("cannot set the time of {}", path.display()))
}

/// Files a run created, removed again if the run fails before the end,
/// so a failed `init` or `restore` leaves no half-made gateway behind
/// that the next attempt would refuse to touch.
#[derive(Default)]
pub struct Created(Vec<PathBuf>);

impl Created {
    /// Remember `path` as made by this run.
    pub fn push(&mut self, path: PathBuf) {
        self.0.push(path);
    }

    /// The files made.
    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }

    /// The run succeeded: keep them.
    pub fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates the state directory (mode 0700) when missing; says so.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    eprintln!("created {} (mode 0700)", dir.display());
    Ok(())
}

/// Writes the identity and account keys and their `.pub` files into the
/// state directory, each key created new with mode 0600.
pub fn write_keys(
    paths: &KeyPaths,
    identity: &IdentityKey,
    account: &AccountKey,
    created: &mut Created,
) -> Result<()> {
    write_each(paths, identity, account, created).map_err(|e| {
        // Most often the command was not run as root.
        let denied = e.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        });
        if denied {
            e.context(format!(
                "cannot write into {} (run as root, for example with sudo, or as its owner)",
                paths.dir.display()
            ))
        } else {
            e
        }
    })
}

fn write_each(
    paths: &KeyPaths,
    identity: &IdentityKey,
    account: &AccountKey,
    created: &mut Created,
) -> Result<()> {
    identity
        .save_new(&paths.identity)
        .context("cannot create the identity key")?;
    created.push(paths.identity.clone());
    let identity_pub = public_path(&paths.identity);
    write_public(&identity_pub, &identity.public().to_string())?;
    created.push(identity_pub);
    account
        .save_new(&paths.account)
        .context("cannot create the account key")?;
    created.push(paths.account.clone());
    let account_pub = public_path(&paths.account);
    write_public(&account_pub, &account.address().to_checksum(None))?;
    created.push(account_pub);
    Ok(())
}

/// Run as root into a directory that belongs to someone else (the
/// packaged `vitalgate` system user): give the files to the directory's
/// owner, so the service can read its keys. Returns what was done, to say.
pub fn hand_over(dir: &Path, files: &[PathBuf]) -> Result<Option<String>> {
    let dir_meta =
        std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let Some(first) = files.first() else {
        return Ok(None);
    };
    // A file we just created is owned by our effective user id: root is 0.
    let mine = std::fs::metadata(first)
        .with_context(|| format!("cannot read {}", first.display()))?
        .uid();
    if mine != 0 || dir_meta.uid() == 0 {
        return Ok(None);
    }
    for file in files {
        std::os::unix::fs::chown(file, Some(dir_meta.uid()), Some(dir_meta.gid()))
            .with_context(|| format!("cannot give {} to the service's user", file.display()))?;
    }
    let who = user_name(dir_meta.uid())
        .map(|name| format!("{name} (uid {})", dir_meta.uid()))
        .unwrap_or_else(|| format!("uid {}", dir_meta.uid()));
    Ok(Some(format!(
        "owner set to {who}, gid {}, the owner of {}, so the service can read its keys",
        dir_meta.gid(),
        dir.display()
    )))
}

/// The login name of `uid` from /etc/passwd, when there is one.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// Reads both keys of a state directory, with errors that say what to do.
pub fn load_keys(paths: &KeyPaths) -> Result<(IdentityKey, AccountKey)> {
    let dir = paths.dir.display();
    let identity = IdentityKey::load(&paths.identity).map_err(|e| match e {
        KeyError::NotFound { .. } => anyhow::anyhow!(
            "{e}: this gateway has no keys yet; create them with `vitalgate init --state-dir {dir}` (or bring them back with `vitalgate restore`)"
        ),
        KeyError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow::anyhow!("{e} (run as root or as the service's user)")
        }
        other => other.into(),
    })?;
    let account = AccountKey::load(&paths.account).map_err(|e| match e {
        AccountKeyError::File(KeyError::NotFound { .. }) => anyhow::anyhow!(
            "{e}: create the account with `vitalgate keygen account {}`",
            paths.account.display()
        ),
        other => other.into(),
    })?;
    Ok((identity, account))
}

/// Print the record: JSON on stdout, the QR code on stderr when wanted.
pub fn print_record(record: &Enrolment, qr_args: QrArgs) -> Result<()> {
    let json = record.to_json()?;
    if qr_args.wanted() {
        eprintln!("{}", qr(&json)?);
    }
    println!("{json}");
    Ok(())
}

/// `vitalgate init`: create both keys, print the enrolment record. Exit 1
/// when keys exist already (nothing changed).
pub fn run(args: &InitArgs) -> Result<ExitCode> {
    let dir = args.dir.resolve();
    let paths = KeyPaths::new(&dir);
    if let Some(existing) = paths.first_existing() {
        eprintln!("error: {}", paths.refusal(&existing, "init"));
        return Ok(ExitCode::from(1));
    }
    ensure_dir(&dir)?;
    let identity = IdentityKey::generate()?;
    let account = AccountKey::generate();
    let mut created = Created::default();
    write_keys(&paths, &identity, &account, &mut created)?;
    let handed = hand_over(&dir, created.paths())?;
    let record = Enrolment::of_stored(&paths, &identity.public(), &account)?;
    let json = record.to_json()?;
    created.keep();

    eprintln!(
        "created {} and {} (private, mode 0600, never overwritten), each with its .pub beside it",
        paths.identity.display(),
        paths.account.display()
    );
    if let Some(handed) = handed {
        eprintln!("{handed}");
    }
    eprintln!(
        "gateway {}: give the hospital this enrolment record (JSON on stdout{}); print it again with `vitalgate enrolment --state-dir {}`",
        record.gateway_id,
        if args.qr.wanted() {
            ", and the QR code below"
        } else {
            ""
        },
        dir.display()
    );
    eprintln!(
        "back the keys up now, encrypted to the hospital's escrow key: `vitalgate backup --state-dir {} --to ESCROW_PUBLIC_KEY --out FILE`",
        dir.display()
    );
    if args.qr.wanted() {
        eprintln!("{}", qr(&json)?);
    }
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// `vitalgate enrolment`: the record again, from the private keys.
pub fn enrolment(args: &EnrolmentArgs) -> Result<ExitCode> {
    let paths = KeyPaths::new(&args.dir.resolve());
    let (identity, account) = load_keys(&paths)?;
    warn_if_public_files_differ(&paths, &identity, &account);
    let record = Enrolment::of_stored(&paths, &identity.public(), &account)?;
    print_record(&record, args.qr)?;
    Ok(ExitCode::SUCCESS)
}

/// The `.pub` files are conveniences copied from the keys; a stale one is
/// worth a warning (the record itself comes from the private keys).
fn warn_if_public_files_differ(paths: &KeyPaths, identity: &IdentityKey, account: &AccountKey) {
    for (path, want) in [
        (public_path(&paths.identity), identity.public().to_string()),
        (
            public_path(&paths.account),
            account.address().to_checksum(None),
        ),
    ] {
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.trim() != want
        {
            eprintln!(
                "warning: {} does not match its private key (it says {}, the key is {want}); the record is the key's",
                path.display(),
                text.trim()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md's example: identity seed 32 × 0x07, anvil's first
    /// development account, created 1700000000000, version 0.1.0.
    fn example() -> Enrolment {
        let identity = IdentityKey::from_seed(&[7; 32]).public();
        let secret: [u8; 32] =
            alloy::hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap()
                .try_into()
                .unwrap();
        let account = AccountKey::from_bytes(&secret).unwrap();
        Enrolment::new(&identity, &account, "0.1.0", Timestamp(1_700_000_000_000))
    }

    #[test]
    fn the_format_documents_enrolment_record_is_what_init_prints() {
        let json = example().to_json().unwrap();
        let doc = include_str!("../../docs/FORMAT.md");
        assert!(doc.contains(&json), "docs/FORMAT.md lacks:\n{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["gateway_id"], "fe812c12f3ab4ce6ac5db69ac352f906");
        assert_eq!(
            value["account"],
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn the_record_fits_an_80_column_terminal_as_a_qr_code() {
        let code = qr(&example().to_json().unwrap()).unwrap();
        let widest = code.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= 80, "{widest} columns");
        assert!(code.lines().count() <= 45, "{} lines", code.lines().count());
    }
}
