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
