//! The terminal: prompts and answers on the console the unit gave us (tty1, ttyS0, or a container's console),
//! with echo off for passwords, while the setup state is watched — if the browser wizard finishes first, the
//! question being asked is abandoned.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::termios::{self, LocalFlags, SetArg};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// How often the setup state is looked at while waiting for an answer.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The other wizard completed the setup (its administrator).
    SetupDone(String),
    /// The console went away (hangup, end of input): systemd starts us again.
    Closed,
}

/// Prints `text` as it is (no newline added) and flushes.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints a line.
pub fn say(text: &str) {
    print(&format!("{text}\n"));
}

/// Lines typed on the console, read by a task so that waiting for one can be combined with other waits.
#[derive(Debug)]
pub struct Console {
    lines: mpsc::Receiver<String>,
}

impl Console {
    pub fn open() -> Console {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        Console { lines: rx }
    }

    /// Asks `prompt`; `secret` turns echo off while the answer is typed. `watch` is called every few seconds and
    /// may end the question (setup finished elsewhere).
    pub async fn ask<W, F>(
        &mut self,
        prompt: &str,
        secret: bool,
        mut watch: W,
    ) -> Result<String, Interrupted>
    where
        W: FnMut() -> F,
        F: std::future::Future<Output = Option<Interrupted>>,
    {
        print(prompt);
        let _echo = secret.then(EchoOff::new);
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                line = self.lines.recv() => {
                    if secret {
                        print("\n");
                    }
                    return line.map(|l| l.trim_end_matches('\r').to_owned()).ok_or(Interrupted::Closed);
                }
                _ = tick.tick() => {
                    if let Some(why) = watch().await {
                        print("\n");
                        return Err(why);
                    }
                }
            }
        }
    }
}

/// Echo off on stdin for as long as it lives (a password being typed); restored on drop.
struct EchoOff(Option<termios::Termios>);

impl EchoOff {
    fn new() -> EchoOff {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return EchoOff(None); // not a terminal (tests pipe input): nothing to hide
        };
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet);
        EchoOff(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}
