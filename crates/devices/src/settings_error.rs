//! Errors in settings files: device profiles and the gateway configuration.

use std::fmt;
use std::path::PathBuf;

/// A settings file that cannot be used, naming the file, the key and what
/// is expected — everything a person needs to fix it without reading code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The offending key (dotted path), empty for the file as a whole.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl SettingsError {
    /// An error at `key` of `file`.
    pub fn new(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        SettingsError {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl SettingsError {
    /// A TOML error (syntax, unknown or missing key, wrong type) of `file`
    /// as an error at the key it is about, so it reads like every other:
    /// `FILE: key `table.key`: problem (line N; fix)`. The key is worked
    /// out from where the parser stopped in `text` — the table header
    /// above that line and the key on it, or the field the parser names —
    /// and the parser's own words are kept.
    pub fn from_toml(file: impl Into<PathBuf>, text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().trim().replace('\n', " ");
        let Some(span) = error.span() else {
            return SettingsError::new(file, "", message);
        };
        let start = span.start.min(text.len());
        let before = text.get(..start).unwrap_or_default();
        let line_no = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = text
            .get(line_start..)
            .and_then(|rest| rest.lines().next())
            .unwrap_or_default();
        // The table the line is in (a header line is in its own table).
        let mut table = String::new();
        let mut arrays: std::collections::BTreeMap<String, usize> = Default::default();
        for header_line in text
            .get(..line_start + line.len())
            .unwrap_or_default()
            .lines()
        {
            if let Some((name, array)) = header(header_line) {
                table = if array {
                    let count = arrays.entry(name.clone()).or_insert(0);
                    *count += 1;
                    format!("{name}[{}]", *count - 1)
                } else {
                    name
                };
            }
        }
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        let (field, fix) = if let Some(f) = named("unknown field `") {
            (Some(f), "remove it or correct its spelling")
        } else if let Some(f) = named("missing field `") {
            (Some(f), "add it")
        } else if header(line).is_some() {
            (None, "")
        } else {
            // The key is on this line, or on the line that opened the
            // multi-line array this line is part of.
            let mut lines_up = std::iter::once(line)
                .chain(text.get(..line_start).unwrap_or_default().lines().rev());
            let on_line = lines_up
                .find_map(|l| {
                    if header(l).is_some() {
                        Some(None)
                    } else {
                        l.split_once('=').map(|(k, _)| Some(unquote(k.trim())))
                    }
                })
                .flatten();
            (on_line, "")
        };
        let key = match field {
            None => table,
            // An unknown table's header names the table itself.
            Some(f)
                if header(line)
                    .is_some_and(|(name, _)| name.rsplit('.').next() == Some(f.as_str())) =>
            {
                table
                    .rsplit_once('.')
                    .map_or(f.clone(), |(parent, _)| format!("{parent}.{f}"))
            }
            Some(f) if table.is_empty() => f,
            Some(f) => format!("{table}.{f}"),
        };
        let place = if fix.is_empty() {
            format!("line {line_no}")
        } else {
            format!("line {line_no}; {fix}")
        };
        SettingsError::new(file, key, format!("{message} ({place})"))
    }
}

/// A table header line's dotted name, and whether it is `[[array]]`.
/// Nothing but a comment may follow the header, so a line of a multi-line
/// string that happens to start with `[` is not taken for one.
fn header(line: &str) -> Option<(String, bool)> {
    let line = line.trim();
    let (inner, array, rest) = if let Some(rest) = line.strip_prefix("[[") {
        let (inner, rest) = rest.split_once("]]")?;
        (inner, true, rest)
    } else {
        let (inner, rest) = line.strip_prefix('[')?.split_once(']')?;
        (inner, false, rest)
    };
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let name: Vec<String> = inner.split('.').map(|p| unquote(p.trim())).collect();
    Some((name.join("."), array))
}

fn unquote(key: &str) -> String {
    key.trim_matches(|c: char| c == '"' || c == '\'').to_owned()
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

impl std::error::Error for SettingsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        notes: Option<String>,
        server: Option<Server>,
        #[serde(default)]
        device: Vec<Device>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        listen: String,
        #[serde(default)]
        ports: Vec<u16>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Device {
        id: String,
        patient: String,
    }

    fn error(text: &str) -> SettingsError {
        let e = toml::from_str::<File>(text).unwrap_err();
        SettingsError::from_toml("/etc/x.toml", text, &e)
    }

    const GOOD: &str = "notes = \"\"\"\nthe\n[names] table below\n\"\"\"\n\n[server]\nlisten = \"a\"\nports = [\n  1,\n  2,\n]\n\n[[device]]\nid = \"a\"\npatient = \"p\"\n\n[[device]]\nid = \"b\"\npatient = \"p\"\n";

    #[test]
    fn toml_errors_name_the_dotted_key_the_line_and_the_fix() {
        toml::from_str::<File>(GOOD).unwrap();

        let e = error(&GOOD.replace("listen =", "lisen ="));
        assert_eq!(e.key, "server.lisen");
        assert!(e.message.starts_with("unknown field `lisen`"), "{e}");
        assert!(
            e.message
                .ends_with("(line 7; remove it or correct its spelling)"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("/etc/x.toml: key `server.lisen`: unknown field"),
            "{e}"
        );

        let e = error(&GOOD.replace("id = \"b\"", "idd = \"b\""));
        assert_eq!(e.key, "device[1].idd");

        let e = error(&GOOD.replace("[server]", "[sever]"));
        assert_eq!(e.key, "sever", "{e}");

        let e = error(&GOOD.replace("patient = \"p\"\n\n[[device]]", "\n[[device]]"));
        assert_eq!(e.key, "device[0].patient", "{e}");
        assert!(e.message.contains("missing field `patient`"), "{e}");

        let e = error(&GOOD.replace("listen = \"a\"", "listen = 7"));
        assert_eq!(e.key, "server.listen");
        assert!(e.message.contains("(line 7)"), "{e}");

        // An element of a multi-line array belongs to the array's key.
        let e = error(&GOOD.replace("  2,", "  \"two\","));
        assert_eq!(e.key, "server.ports", "{e}");
    }
}
