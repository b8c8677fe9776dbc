//! The check `OpenSession` makes of the process it is asked to move: sshd's per-connection process, running as
//! root. PAM runs `rampart-tenant-session` from that process (sshd opens the PAM session in its privileged
//! half before it forks the tenant's side), so the hook passes its parent's pid.
//!
//! Only root may call `OpenSession` (bus policy, and the method checks the caller's uid); this check keeps a
//! mistake — a wrong pid, a recycled one — from moving some other process into a tenant's slice. It reads
//! `/proc/<pid>/comm` and the real uid in `/proc/<pid>/status`, both readable without privileges (`exe` would
//! need ptrace rights over a root process).

use std::path::Path;

/// The command name sshd's processes carry (`comm`; the title `sshd: shop [priv]` is only argv).
pub const SSHD_COMM: &str = "sshd";

/// Ok when `pid` is an sshd process owned by `root_uid` (0; the tests' stand-in otherwise).
pub fn check_sshd(proc_root: &Path, pid: u32, root_uid: u32) -> Result<(), String> {
    if pid <= 1 {
        return Err(format!("pid {pid} is not an SSH session"));
    }
    let dir = proc_root.join(pid.to_string());
    let comm = std::fs::read_to_string(dir.join("comm"))
        .map_err(|e| format!("process {pid}: cannot read its command name ({e})"))?;
    if comm.trim_end() != SSHD_COMM {
        return Err(format!(
            "process {pid} is {:?}, not sshd: only sshd's sessions are moved into a tenant's slice",
            comm.trim_end()
        ));
    }
    let status = std::fs::read_to_string(dir.join("status"))
        .map_err(|e| format!("process {pid}: cannot read its status ({e})"))?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse::<u32>().ok())
        .ok_or_else(|| format!("process {pid}: no uid in its status"))?;
    if uid != root_uid {
        return Err(format!(
            "process {pid} (sshd) runs as uid {uid}, not as root: not sshd's privileged session process"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(root: &Path, pid: u32, comm: &str, uid: u32) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(
            dir.join("status"),
            format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
    }

    #[test]
    fn only_roots_sshd() {
        let tmp = tempfile::tempdir().unwrap();
        fake(tmp.path(), 100, "sshd", 0);
        fake(tmp.path(), 101, "bash", 0);
        fake(tmp.path(), 102, "sshd", 20_000);
        assert_eq!(check_sshd(tmp.path(), 100, 0), Ok(()));
        for (pid, needle) in [
            (101, "not sshd"),
            (102, "not as root"),
            (103, "cannot read"),
            (1, "not an SSH session"),
        ] {
            let err = check_sshd(tmp.path(), pid, 0).unwrap_err();
            assert!(err.contains(needle), "{pid}: {err}");
        }
    }

    #[test]
    fn this_process_is_not_sshd() {
        let err = check_sshd(Path::new("/proc"), std::process::id(), 0).unwrap_err();
        assert!(err.contains("not sshd"), "{err}");
    }
}
