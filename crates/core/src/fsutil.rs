//! Crash-safe file writes: temp file in the same directory, fsync, rename,
//! fsync the directory. A reader sees the old file or the new one, never a
//! torn one, whatever line a `kill -9` lands on.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, replacing any existing file.
/// `mode` sets Unix permissions on the new file before it becomes visible.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    write_inner(path, bytes, mode, true)
}

/// Like [`write_atomic`] but fails with `AlreadyExists` instead of replacing.
pub fn write_new(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    write_inner(path, bytes, mode, false)
}

fn write_inner(path: &Path, bytes: &[u8], mode: Option<u32>, replace: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    if let Some(mode) = mode {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_atomically_and_keeps_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", Some(0o600)).unwrap();
        write_atomic(&p, b"two", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_new_refuses_to_replace() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_new(&p, b"one", None).unwrap();
        let e = write_new(&p, b"two", None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }
}
