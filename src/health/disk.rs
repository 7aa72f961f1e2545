//! Free space on the ledger's file system.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes an unprivileged process can still write on the file system that
/// holds `path` (`statvfs(3)`: available blocks × fragment size; the
/// blocks reserved for root do not count, as the service is not root).
pub fn available(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: `statvfs` is plain data; zeroed is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and an exclusively borrowed struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field widths differ by target
    let bytes = u64::from(s.f_bavail).saturating_mul(u64::from(s.f_frsize));
    Ok(bytes)
}

/// The nearest folder of `path` that exists (the ledger folder before the
/// first start, or its parent).
pub fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_file_system_has_some_space_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available(dir.path()).unwrap() > 0);
        assert!(available(&dir.path().join("missing")).is_err());
        assert_eq!(existing_ancestor(&dir.path().join("a/b")), dir.path());
    }
}
