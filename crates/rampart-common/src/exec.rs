//! Running other programs: an absolute path and an argv, never a shell (DESIGN.md rule 3).
//!
//! `std::process::Command::new` is banned by `clippy.toml`; this module is the one place allowed to call it.
//! User-supplied values go in `operands`, which always follow `--`, so a value like `-oProxyCommand=…` can never be
//! read as an option. Programs that interpret code from argv (shells, `env`, interpreters) are refused outright.

use std::process::{Command, Output};

use crate::Error;

/// Programs that run code or other programs given on their argv. Every caller names its program as a constant
/// (`nft`, `sshd`, `ssh-keygen`...), so this list is a tripwire for mistakes, not the only barrier.
const REFUSED: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "busybox",
    "env",
    "python",
    "python3",
    "perl",
    "node",
    "awk",
    "gawk",
    "mawk",
    "xargs",
    "find",
    "nice",
    "nohup",
    "timeout",
    "setsid",
    "sudo",
    "su",
    "script",
    "systemd-run",
    "chroot",
];

/// A program Rampart is allowed to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    path: &'static str,
}

impl Program {
    /// `path` must be absolute and not a shell or interpreter.
    pub fn new(path: &'static str) -> Result<Program, Error> {
        let refuse = |reason| {
            Err(Error::ExecRefused {
                program: path.to_owned(),
                reason,
            })
        };
        if !path.starts_with('/') {
            return refuse("not an absolute path");
        }
        let base = path.rsplit('/').next().unwrap_or(path);
        if REFUSED.contains(&base) {
            return refuse("shells and interpreters are never run");
        }
        Ok(Program { path })
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The command: `path options... [-- operands...]`, with a clean environment apart from `PATH=/usr/bin:/bin`
    /// and `LC_ALL=C` (so error text is predictable).
    pub fn command(&self, options: &[&str], operands: &[&str]) -> Command {
        #[allow(clippy::disallowed_methods)] // the one sanctioned constructor
        let mut cmd = Command::new(self.path);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .args(options);
        if !operands.is_empty() {
            cmd.arg("--").args(operands);
        }
        cmd
    }

    /// Runs to completion; a non-zero exit is an error carrying the program's stderr.
    pub fn run(&self, options: &[&str], operands: &[&str]) -> Result<Output, Error> {
        let output = self
            .command(options, operands)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| Error::ExecSpawn {
                program: self.path.to_owned(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::ExecFailed {
                program: self.path.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_and_relative_paths_are_refused() {
        for p in ["/bin/sh", "/usr/bin/bash", "/usr/bin/env", "sh", "nft"] {
            assert!(Program::new(p).is_err(), "{p} accepted");
        }
    }

    #[test]
    fn operands_follow_double_dash_and_stay_literal() {
        let echo = Program::new("/bin/echo").unwrap();
        let out = echo.run(&["-n"], &["-e", "a;b $(x)"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "-- -e a;b $(x)");
    }

    #[test]
    fn failure_carries_stderr() {
        let ls = Program::new("/bin/ls").unwrap();
        let err = ls.run(&[], &["/nonexistent-rampart"]).unwrap_err();
        assert!(err.to_string().contains("nonexistent-rampart"), "{err}");
    }
}
