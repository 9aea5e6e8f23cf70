//! Binding the control socket. Only a stale socket (a socket file nobody answers on) is
//! replaced: a live one belongs to another instance, and anything else at the path (a
//! regular file, a directory) is not ours to delete. Either refuses to start, naming the path.
//! The socket is ours alone (0600), or, with `node.control_group`, also that group's (0660),
//! whose members the server lets run `show` requests only.
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The bound socket; its file is removed on drop if it is still the one bound here.
pub struct Bound {
    pub listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file, so that drop never removes another's.
    id: (u64, u64),
}

/// Binds `path`; `group`: the gid that may connect too (mode 0660 instead of 0600).
pub fn bind(path: &Path, group: Option<u32>) -> Result<Bound, String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(format!(
                "{} exists and is not a socket; not replacing it (remove it, or set another node.control_socket)",
                path.display()
            ))
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "{} is in use: another anygate answers on it (stop it, or set another node.control_socket)",
                    path.display()
                ))
            }
            // Nobody listens: a stale socket left by a process that died.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(at)?;
                log::info!("{}: replaced a stale control socket", path.display());
            }
            Err(e) => return Err(at(e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(at(e)),
    }
    let listener = UnixListener::bind(path).map_err(at)?;
    if let Some(gid) = group {
        // Needs membership of the group or CAP_CHOWN (the unit gives SupplementaryGroups).
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(at)?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(at)?;
    let m = std::fs::symlink_metadata(path).map_err(at)?;
    Ok(Bound {
        listener,
        path: path.to_owned(),
        id: (m.dev(), m.ino()),
    })
}

impl Drop for Bound {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        std::fs::write(&p, "precious").unwrap();
        let e = bind(&p, None).err().unwrap();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("not a socket"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious");
    }

    #[test]
    fn a_live_socket_refuses_a_stale_one_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        let first = bind(&p, None).unwrap();
        let e = bind(&p, None).err().unwrap();
        assert!(e.contains("in use"), "{e}");
        // A socket whose process died: the file stays, nobody listens.
        let stale = UnixListener::bind(d.path().join("old.sock")).unwrap();
        drop(stale);
        let old = d.path().join("old.sock");
        assert!(old.exists());
        let b = bind(&old, None).unwrap();
        assert!(UnixStream::connect(&old).is_ok());
        drop(b);
        assert!(!old.exists());
        drop(first);
        assert!(!p.exists());
    }

    #[test]
    fn a_control_group_opens_the_socket_to_that_group_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        let own = bind(&p, None).unwrap();
        assert_eq!(mode(&p), 0o600);
        drop(own);
        // Our own group: a group we may always give a file to.
        let gid = nix::unistd::getegid().as_raw();
        let _shared = bind(&p, Some(gid)).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o660, gid));
    }

    #[test]
    fn drop_leaves_a_socket_that_replaced_ours() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        let ours = bind(&p, None).unwrap();
        std::fs::remove_file(&p).unwrap();
        let _theirs = UnixListener::bind(&p).unwrap();
        drop(ours);
        assert!(p.exists());
    }

    #[test]
    fn a_directory_it_cannot_write_is_refused_naming_the_path() {
        let p = Path::new("/proc/anygate-test.sock");
        let e = bind(p, None).err().unwrap();
        assert!(e.starts_with("/proc/anygate-test.sock: "), "{e}");
    }
}
