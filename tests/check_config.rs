//! `vitalgate check-config` as a hospital engineer meets it: a good
//! configuration passes, and each broken one is refused with the file,
//! the key and the fix (`FILE: key `KEY`: problem (fix)`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A provisioned gateway in a temporary folder: keys made by `init`, a
/// care-team key by `keygen`, and the bundled profiles by absolute path.
struct Site {
    dir: tempfile::TempDir,
    recipient: String,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let out = Command::new(env!("CARGO_BIN_EXE_vitalgate"))
            .args(["init", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recipient = common::keygen("recipient", &dir.path().join("care-team.key"));
        Site { dir, recipient }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn profile(name: &str) -> String {
        common::root()
            .join("device-profiles")
            .join(name)
            .display()
            .to_string()
    }

    /// A complete, valid configuration.
    fn good(&self) -> String {
        format!(
            r#"[mqtt_server]
listen = "127.0.0.1:1883"

[chain]
directory = "{state}/ledger"
identity = "{state}/identity.key"
recipients = ["{recipient}"]

[[device]]
id = "wear-0001"
patient = "patient-0001"
profile = "{senml}"

[[device]]
id = "ox-bedroom"
patient = "patient-0001"
profile = "{nonin}"
port = "/dev/serial/by-id/usb-vitalgate-test-no-such-device"
"#,
            state = self.path("state").display(),
            recipient = self.recipient,
            senml = Site::profile("senml-wearable.toml"),
            nonin = Site::profile("nonin-3150-wristox2.toml"),
        )
    }

    fn write(&self, text: &str) -> PathBuf {
        let file = self.path("vitalgate.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// check-config on `text`: exit code, stdout, stderr.
    fn check(&self, text: &str) -> (Option<i32>, String, String, PathBuf) {
        let file = self.write(text);
        let out = Command::new(env!("CARGO_BIN_EXE_vitalgate"))
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            file,
        )
    }

    /// check-config must refuse `text` with `FILE: key `KEY`:` and every
    /// one of `says`.
    fn refused(&self, text: &str, file: Option<&Path>, key: &str, says: &[&str]) {
        let (code, _, stderr, config) = self.check(text);
        assert_ne!(code, Some(0), "accepted:\n{text}");
        let file = file.unwrap_or(&config);
        let start = format!("{}: key `{key}`: ", file.display());
        assert!(stderr.contains(&start), "want {start}\ngot {stderr}");
        for part in says {
            assert!(stderr.contains(part), "want {part:?}\ngot {stderr}");
        }
    }
}

#[test]
fn a_good_configuration_passes_and_says_what_the_gateway_will_do() {
    let site = Site::new();
    let (code, stdout, stderr, file) = site.check(&site.good());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("{}: ok, 2 devices", file.display())),
        "{stdout}"
    );
    assert!(stdout.contains("gateway key ed25519:"), "{stdout}");
    // An unplugged serial device is said, not refused.
    assert!(
        stdout.contains("usb-vitalgate-test-no-such-device (not present now"),
        "{stdout}"
    );
}

#[test]
fn a_missing_profile_file_is_named_with_the_profiles_that_exist_beside_it() {
    let site = Site::new();
    let text = site
        .good()
        .replace("senml-wearable.toml", "senml-wearabel.toml");
    site.refused(
        &text,
        None,
        "device[0].profile",
        &[
            "senml-wearabel.toml does not exist",
            "relative paths start at the configuration's folder",
            "senml-wearable.toml",
        ],
    );
}

#[test]
fn an_unknown_key_or_typo_is_named_with_its_table_and_line() {
    let site = Site::new();
    let text = site.good().replace("listen = ", "lisen = ");
    site.refused(
        &text,
        None,
        "mqtt_server.lisen",
        &[
            "unknown field `lisen`, expected `listen`",
            "line 2; remove it or correct its spelling",
        ],
    );
    // In the second [[device]] table.
    let text = site
        .good()
        .replace("port = \"/dev/serial", "prot = \"/dev/serial");
    site.refused(&text, None, "device[1].prot", &["unknown field `prot`"]);
    // A whole table misspelt.
    let text = site.good().replace("[mqtt_server]", "[mqtt_sever]");
    site.refused(&text, None, "mqtt_sever", &["unknown field `mqtt_sever`"]);
    // A value of the wrong type.
    let text = site
        .good()
        .replace("[chain]", "[chain]\nseal_readings = \"many\"");
    site.refused(&text, None, "chain.seal_readings", &["invalid type"]);
}

#[test]
fn a_bad_serial_port_or_address_is_refused_with_an_example_of_a_good_one() {
    let site = Site::new();
    let text = site.good().replace(
        "/dev/serial/by-id/usb-vitalgate-test-no-such-device",
        "ttyUSB0",
    );
    site.refused(
        &text,
        None,
        "device[1].port",
        &["`ttyUSB0` is not a device path", "\"/dev/ttyUSB0\""],
    );
    let text = site.good().replace("127.0.0.1:1883", "localhost");
    site.refused(
        &text,
        None,
        "mqtt_server.listen",
        &["`localhost` is not an address:port", "\"127.0.0.1:1883\""],
    );
    let ble = format!(
        "{}\n[[device]]\nid = \"hr-strap\"\npatient = \"patient-0001\"\nprofile = \"{}\"\naddress = \"C4:7C:8D:6A:01\"\n",
        site.good(),
        Site::profile("ble-heart-rate.toml")
    );
    site.refused(
        &ble,
        None,
        "device[2].address",
        &[
            "`C4:7C:8D:6A:01` is not a Bluetooth address",
            "C4:7C:8D:6A:01:02",
        ],
    );
}

#[test]
fn the_example_placeholder_recipient_is_refused_as_a_placeholder() {
    let site = Site::new();
    let text = site.good().replace(
        &site.recipient,
        "x25519:REPLACE-with-the-care-team-key-printed-by-keygen",
    );
    site.refused(
        &text,
        None,
        "chain.recipients[0]",
        &["placeholder", "vitalgate keygen recipient FILE"],
    );
}

#[test]
fn a_missing_identity_key_points_at_vitalgate_init() {
    let site = Site::new();
    let empty = site.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let text = site.good().replace(
        &format!("{}/identity.key", site.path("state").display()),
        &format!("{}/identity.key", empty.display()),
    );
    site.refused(
        &text,
        None,
        "chain.identity",
        &[
            "does not exist",
            &format!("vitalgate init --state-dir {}", empty.display()),
            "vitalgate keygen identity",
        ],
    );
    // A key others can read: the fix is chmod, not a new key.
    let identity = site.path("state").join("identity.key");
    std::fs::set_permissions(
        &identity,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (code, _, stderr, _) = site.check(&site.good());
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains(&format!("chmod 600 {}", identity.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("vitalgate init"), "{stderr}");
}

#[test]
fn a_device_profile_with_an_error_is_named_with_its_own_key() {
    let site = Site::new();
    let original = std::fs::read_to_string(Site::profile("senml-wearable.toml")).unwrap();
    let broken = site.path("my-wearable.toml");

    // A transport its format is not spoken over.
    std::fs::write(
        &broken,
        original.replace("transport = \"mqtt\"", "transport = \"serial\""),
    )
    .unwrap();
    let text = site
        .good()
        .replace(&Site::profile("senml-wearable.toml"), "my-wearable.toml");
    let (_, _, stderr, config) = site.check(&text);
    assert!(
        stderr.contains(&format!(
            "{}: key `transport`: format `senml` is spoken over",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "(profile of device[0].profile in {})",
            config.display()
        )),
        "{stderr}"
    );

    // A misspelt key in the profile.
    std::fs::write(&broken, original.replace("vendor =", "vendro =")).unwrap();
    site.refused(
        &text,
        Some(&broken),
        "vendro",
        &["unknown field `vendro`", "profile of device[0].profile"],
    );
    // A misspelt vital inside the multi-line list.
    std::fs::write(&broken, original.replace("\"spo2\",", "\"sp02\",")).unwrap();
    site.refused(
        &text,
        Some(&broken),
        "vitals",
        &["unknown variant `sp02`", "profile of device[0].profile"],
    );
}
