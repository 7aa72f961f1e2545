//! `vitalgate keygen`: the gateway's identity and the recipients' key pairs.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use vitalgate::anchor::account::AccountKey;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};

/// Which kind of key pair.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// The gateway's Ed25519 signing key (one per gateway).
    Identity,
    /// An X25519 key pair of someone who may read the readings (the
    /// patient, a clinician, the care team).
    Recipient,
    /// The gateway's secp256k1 account on the consultation chain, which
    /// signs its anchor transactions; the hospital registers the address
    /// (printed, and written to FILE.pub) for the gateway's identity.
    Account,
}

/// Arguments of `keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// identity, recipient or account.
    pub kind: Kind,
    /// The private key file to create (mode 0600; never overwritten). The
    /// public key is written beside it as FILE.pub.
    pub out: PathBuf,
}

/// Create the key pair; print the public key's text form.
pub fn run(args: &KeygenArgs) -> Result<()> {
    let public = match args.kind {
        Kind::Identity => {
            let key = IdentityKey::generate()?;
            key.save_new(&args.out)?;
            key.public().to_string()
        }
        Kind::Recipient => {
            let key = RecipientKey::generate()?;
            key.save_new(&args.out)?;
            key.public().to_string()
        }
        Kind::Account => {
            let key = AccountKey::generate();
            key.save_new(&args.out)?;
            key.address().to_string()
        }
    };
    let pub_path = public_path(&args.out);
    write_public(&pub_path, &public)?;
    eprintln!(
        "wrote {} (private, mode 0600) and {} (public)",
        args.out.display(),
        pub_path.display()
    );
    println!("{public}");
    Ok(())
}

/// FILE.pub beside FILE.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Writes a public key file: the key's text form and a newline, created
/// new (an existing file is never replaced) and synced.
pub fn write_public(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
