//! A gateway's first boot and its keys' custody, through the real binary
//! as an installer runs it: `init`, `enrolment`, `backup`, `restore`.

mod common;

use base64::Engine as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vitalgate::anchor::account::AccountKey;
use vitalgate_chain::crypto::keys::IdentityKey;

fn vitalgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vitalgate"));
    // The tests say where the state is; systemd's variable must not.
    command.env_remove("STATE_DIRECTORY");
    command
}

fn run(args: &[&str], dirs: &[(&str, &Path)]) -> Output {
    let mut command = vitalgate();
    command.args(args);
    for (flag, path) in dirs {
        command.arg(flag).arg(path);
    }
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn init(state: &Path) -> String {
    let out = run(&["init"], &[("--state-dir", state)]);
    assert!(out.status.success(), "init: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn enrolment(state: &Path) -> String {
    let out = run(&["enrolment"], &[("--state-dir", state)]);
    assert!(out.status.success(), "enrolment: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The four files a provisioned state directory holds.
fn key_files(state: &Path) -> Vec<PathBuf> {
    [
        "identity.key",
        "identity.key.pub",
        "account.key",
        "account.key.pub",
    ]
    .iter()
    .map(|name| state.join(name))
    .collect()
}

/// Each file's bytes and modification time (ns).
fn snapshot(state: &Path) -> Vec<(Vec<u8>, i64, i64)> {
    key_files(state)
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            (std::fs::read(p).unwrap(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn no_key_files(state: &Path) -> bool {
    key_files(state).iter().all(|p| !p.exists())
}

/// An escrow key pair made as the hospital makes it; its public text.
fn escrow(dir: &Path, name: &str) -> (PathBuf, String) {
    let private = dir.join(name);
    let public = common::keygen("recipient", &private);
    (private, public)
}

fn backup(state: &Path, to: &str, out: &Path) -> Output {
    vitalgate()
        .args(["backup", "--to", to])
        .arg("--state-dir")
        .arg(state)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// A gateway initialised in `dir/state` and backed up to a fresh escrow key
/// (`dir/escrow.key`) in `dir/gateway.backup`.
struct BackedUp {
    state: PathBuf,
    escrow_key: PathBuf,
    file: PathBuf,
}

fn backed_up(dir: &Path) -> BackedUp {
    let state = dir.join("state");
    init(&state);
    let (escrow_key, escrow_public) = escrow(dir, "escrow.key");
    let file = dir.join("gateway.backup");
    assert!(backup(&state, &escrow_public, &file).status.success());
    BackedUp {
        state,
        escrow_key,
        file,
    }
}

fn restore(from: &Path, identity: &Path, state: &Path) -> Output {
    run(
        &["restore"],
        &[
            ("--from", from),
            ("--identity", identity),
            ("--state-dir", state),
        ],
    )
}

#[test]
fn init_creates_both_keys_0600_and_prints_a_record_that_matches_them() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory need not exist yet.
    let state = dir.path().join("state");
    let stdout = init(&state);

    // Clean JSON: one line, nothing else (the QR code goes to a terminal
    // only, and never to stdout).
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains('█') && !stdout.contains('▀'), "{stdout}");
    let record: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    for path in key_files(&state) {
        assert!(path.is_file(), "{} missing", path.display());
    }
    assert_eq!(mode(&state.join("identity.key")), 0o600);
    assert_eq!(mode(&state.join("account.key")), 0o600);
    assert_eq!(mode(&state) & 0o077, 0, "state directory made private");

    let identity = IdentityKey::load(state.join("identity.key")).unwrap();
    let account = AccountKey::load(&state.join("account.key")).unwrap();
    let public = identity.public();
    let raw: String = public
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(record["format"], "vitalgate/enrolment/1");
    assert_eq!(record["gateway_id"], identity.kid().to_string());
    assert_eq!(record["signing_key"], public.to_string());
    assert_eq!(record["registry_gateway"], format!("0x{raw}"));
    assert_eq!(record["account"], account.address().to_checksum(None));
    assert_eq!(record["software_version"], env!("CARGO_PKG_VERSION"));
    let created = record["created"].as_str().unwrap();
    assert!(
        vitalgate_devices::Timestamp::parse_rfc3339(created).is_some(),
        "{created}"
    );
    // The .pub files say the same.
    let read = |name: &str| {
        std::fs::read_to_string(state.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("identity.key.pub"), public.to_string());
    assert_eq!(read("account.key.pub"), record["account"]);
}

#[test]
fn a_second_init_refuses_with_exit_1_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = init(&state);
    let before = snapshot(&state);
    std::thread::sleep(std::time::Duration::from_millis(20));

    let out = run(&["init"], &[("--state-dir", &state)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert!(
        message.contains(&state.join("identity.key").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "vitalgate enrolment --state-dir {}",
            state.display()
        )),
        "{message}"
    );
    assert_eq!(snapshot(&state), before, "bytes and times unchanged");
    assert_eq!(enrolment(&state), first);
}

#[test]
fn init_refuses_a_directory_with_only_an_identity_and_says_how_to_add_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.key");
    common::keygen("identity", &identity);
    let out = run(&["init"], &[("--state-dir", dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "vitalgate keygen account {}",
            dir.path().join("account.key").display()
        )),
        "{message}"
    );
    assert!(!dir.path().join("account.key").exists());
}

#[test]
fn enrolment_prints_the_record_init_printed_and_a_qr_code_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = init(&state);
    assert_eq!(enrolment(&state), first);

    // systemd's $STATE_DIRECTORY is the default state directory.
    let out = vitalgate()
        .arg("enrolment")
        .env("STATE_DIRECTORY", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), first);

    // --qr draws it on stderr even into a pipe; stdout stays JSON.
    let out = run(&["enrolment", "--qr"], &[("--state-dir", &state)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), first);
    let qr = stderr(&out);
    assert!(qr.contains('█'), "{qr}");
    let widest = qr.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 80, "{widest} columns");
    let out = run(&["enrolment", "--no-qr"], &[("--state-dir", &state)]);
    assert!(!stderr(&out).contains('█'));
}

#[test]
fn enrolment_without_keys_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["enrolment"], &[("--state-dir", dir.path())]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "vitalgate init --state-dir {}",
            dir.path().display()
        )),
        "{message}"
    );
}

#[test]
fn init_as_root_gives_the_keys_to_the_owner_of_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    if std::fs::metadata(&probe).unwrap().uid() != 0 {
        eprintln!("not root: chown cannot be tried here");
        return;
    }
    // The packaged service user's stand-in: nobody (65534).
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = run(&["init"], &[("--state-dir", &state)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for path in key_files(&state) {
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", path.display());
    }
    assert!(stderr(&out).contains("uid 65534"), "{}", stderr(&out));
    assert_eq!(mode(&state.join("identity.key")), 0o600);
}

#[test]
fn backup_then_restore_into_an_empty_directory_gives_back_the_same_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let record = init(&state);
    let (escrow_key, escrow_public) = escrow(dir.path(), "escrow.key");
    let file = dir.path().join("gateway.backup");

    // --to takes the key's text or its .pub file.
    let out = backup(&state, &escrow_public, &file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&file), 0o600);
    let by_file = dir.path().join("by-file.backup");
    let pub_file = dir.path().join("escrow.key.pub");
    let out = backup(&state, pub_file.to_str().unwrap(), &by_file);
    assert!(out.status.success(), "{}", stderr(&out));

    // Never over an existing file.
    let before = std::fs::read(&file).unwrap();
    let out = backup(&state, &escrow_public, &file);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), before);

    for (n, backup_file) in [&file, &by_file].into_iter().enumerate() {
        let restored = dir.path().join(format!("restored-{n}"));
        let out = restore(backup_file, &escrow_key, &restored);
        assert!(out.status.success(), "{}", stderr(&out));
        // The restored gateway prints the record the hospital holds.
        assert_eq!(String::from_utf8_lossy(&out.stdout), record);
        for (original, copy) in key_files(&state).iter().zip(key_files(&restored)) {
            assert_eq!(
                std::fs::read(original).unwrap(),
                std::fs::read(&copy).unwrap(),
                "{}",
                copy.display()
            );
        }
        assert_eq!(mode(&restored.join("identity.key")), 0o600);
        assert_eq!(mode(&restored.join("account.key")), 0o600);
        assert_eq!(enrolment(&restored), record, "created time kept");
    }
}

#[test]
fn restore_refuses_a_state_directory_that_has_keys_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let BackedUp {
        escrow_key, file, ..
    } = backed_up(dir.path());

    let other = dir.path().join("other");
    init(&other);
    let before = snapshot(&other);
    let out = restore(&file, &escrow_key, &other);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&other.join("identity.key").display().to_string()),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&other), before);
}

/// Every window of `width` bytes of `secret`.
fn windows(secret: &[u8], width: usize) -> Vec<Vec<u8>> {
    secret.windows(width).map(<[u8]>::to_vec).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_backup_holds_no_private_key_bytes_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let BackedUp { state, file, .. } = backed_up(dir.path());
    let sealed = std::fs::read(&file).unwrap();

    // The identity: its PEM text, the PKCS#8 DER inside, the 32-byte seed.
    let pem = std::fs::read_to_string(state.join("identity.key")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(der.len(), 48);
    let seed = &der[16..];
    // The account: its hex line and the 32 bytes it spells.
    let account_text = std::fs::read_to_string(state.join("account.key")).unwrap();
    let account_hex = account_text.trim().trim_start_matches("0x");
    let account: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&account_hex[i..i + 2], 16).unwrap())
        .collect();

    for whole in [
        pem.as_bytes(),
        body.as_bytes(),
        &der,
        account_text.as_bytes(),
        account_hex.as_bytes(),
    ] {
        assert!(!contains(&sealed, whole));
    }
    // Not even 8 bytes in a row of either secret.
    for piece in windows(seed, 8).iter().chain(&windows(&account, 8)) {
        assert!(!contains(&sealed, piece), "{piece:02x?} in the backup");
    }
}

#[test]
fn restore_with_the_wrong_escrow_key_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    init(&state);
    let (right, right_public) = escrow(dir.path(), "escrow.key");
    let (wrong, _) = escrow(dir.path(), "other.key");
    let file = dir.path().join("gateway.backup");
    assert!(backup(&state, &right_public, &file).status.success());

    let restored = dir.path().join("restored");
    let out = restore(&file, &wrong, &restored);
    assert!(!out.status.success());
    let message = stderr(&out);
    let kid = |key: &Path| {
        vitalgate_chain::crypto::keys::RecipientKey::load(key)
            .unwrap()
            .kid()
            .to_string()
    };
    assert!(
        message.contains(&format!("encrypted to escrow key {}", kid(&right))),
        "{message}"
    );
    assert!(message.contains(&kid(&wrong)), "{message}");
    assert!(no_key_files(&restored), "nothing written");
    assert!(out.stdout.is_empty());

    // A --to that is not an escrow (X25519) public key: no backup file.
    let identity_pub = std::fs::read_to_string(state.join("identity.key.pub")).unwrap();
    for bad in [identity_pub.trim(), "x25519:nope", "no-such-file.pub"] {
        let out_file = dir.path().join("never.backup");
        let out = backup(&state, bad, &out_file);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr(&out).contains("--to"), "{bad}: {}", stderr(&out));
        assert!(!out_file.exists(), "{bad}: no file");
    }
}

#[test]
fn a_tampered_backup_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let BackedUp {
        escrow_key, file, ..
    } = backed_up(dir.path());
    let good = std::fs::read(&file).unwrap();

    let len = good.len();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // The tag, the IV, the ciphertext's first and last bytes, the
    // recipient's ephemeral key and wrapped key, the last byte.
    for at in [0, 12, 30, 60, len - 140, len - 60, len - 20, len - 1] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        cases.push((format!("bit flipped at {at}"), bytes));
    }
    cases.push(("truncated".into(), good[..len - 1].to_vec()));
    cases.push(("extended".into(), [&good[..], &[0]].concat()));
    cases.push(("empty".into(), Vec::new()));

    for (case, bytes) in cases {
        let tampered = dir.path().join("tampered.backup");
        std::fs::write(&tampered, &bytes).unwrap();
        let restored = dir.path().join("restored");
        let out = restore(&tampered, &escrow_key, &restored);
        assert!(!out.status.success(), "{case}");
        let message = stderr(&out);
        assert!(
            message.contains("cannot restore from") && message.contains("tampered.backup"),
            "{case}: {message}"
        );
        assert!(no_key_files(&restored), "{case}: nothing written");
    }
}
