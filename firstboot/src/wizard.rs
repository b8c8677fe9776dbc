//! The console path of the first-boot wizard, as an explicit state machine: each state asks one thing, calls the
//! daemon that owns it with the wizard's setup token, and moves on only when that daemon accepted. The rules live
//! in the daemons (identityd: names and passwords, TOTP; sshconfd: keys and ports, the proof of a login on the new
//! port); the wizard explains refusals and asks again. Whichever wizard (console or browser) finishes first wins;
//! the other notices at its next question.

use rampart_interfaces::error::message;
use rampart_interfaces::identity::{IdentityProxy, SETUP_COMPLETE};
use rampart_interfaces::ssh::{SshProxy, PORT_AWAITING_LOGIN};

use crate::console::{print, say, Console, Interrupted, WATCH_EVERY};
use crate::info::Machine;

/// The wizard's states, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Welcome,
    Admin,
    Authenticator { secret: String, uri: String },
    RecoveryCodes(Vec<String>),
    Key,
    Port,
    AwaitLogin { port: u16 },
    Finish,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Welcome => "welcome",
            Step::Admin => "administrator",
            Step::Authenticator { .. } => "authenticator",
            Step::RecoveryCodes(_) => "recovery codes",
            Step::Key => "SSH key",
            Step::Port => "SSH port",
            Step::AwaitLogin { .. } => "waiting for the SSH login",
            Step::Finish => "finishing",
        }
    }
}

/// How the wizard ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This wizard completed the setup.
    Completed { admin: String },
    /// The other wizard did.
    CompletedElsewhere { admin: String },
}

pub struct Wizard<'a> {
    console: &'a mut Console,
    identity: IdentityProxy<'static>,
    ssh: SshProxy<'static>,
    machine: Machine,
    token: String,
    admin: String,
}

impl std::fmt::Debug for Wizard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wizard")
            .field("admin", &self.admin)
            .finish()
    }
}

fn refused(e: &zbus::Error) {
    say(&format!("  ✗ {}", message(e)));
}

impl<'a> Wizard<'a> {
    pub fn new(
        console: &'a mut Console,
        identity: IdentityProxy<'static>,
        ssh: SshProxy<'static>,
        machine: Machine,
    ) -> Self {
        Wizard {
            console,
            identity,
            ssh,
            machine,
            token: String::new(),
            admin: String::new(),
        }
    }

    /// Asks one question; ends the wizard if the browser finished the setup meanwhile.
    async fn ask(&mut self, prompt: &str, secret: bool) -> Result<String, Interrupted> {
        let identity = self.identity.clone();
        self.console
            .ask(prompt, secret, move || {
                let identity = identity.clone();
                async move {
                    let state = identity.setup_state().await.ok()?;
                    (state.state == SETUP_COMPLETE).then_some(Interrupted::SetupDone(state.admin))
                }
            })
            .await
    }

    /// Runs the wizard from the welcome screen to the end.
    pub async fn run(mut self) -> Result<Outcome, Interrupted> {
        let mut step = Step::Welcome;
        loop {
            log::info!("console wizard: {}", step.name());
            let next = match self.step(step).await {
                Ok(next) => next,
                Err(Interrupted::SetupDone(admin)) => {
                    return Ok(Outcome::CompletedElsewhere { admin })
                }
                Err(other) => return Err(other),
            };
            match next {
                Some(s) => step = s,
                None => {
                    return Ok(Outcome::Completed {
                        admin: self.admin.clone(),
                    })
                }
            }
        }
    }

    async fn step(&mut self, step: Step) -> Result<Option<Step>, Interrupted> {
        match step {
            Step::Welcome => self.welcome().await.map(Some),
            Step::Admin => self.administrator().await.map(Some),
            Step::Authenticator { secret, uri } => {
                self.authenticator(&secret, &uri).await.map(Some)
            }
            Step::RecoveryCodes(codes) => self.recovery_codes(&codes).await.map(Some),
            Step::Key => self.key().await.map(Some),
            Step::Port => self.port().await.map(Some),
            Step::AwaitLogin { port } => self.await_login(port).await.map(Some),
            Step::Finish => self.finish().await,
        }
    }

    async fn welcome(&mut self) -> Result<Step, Interrupted> {
        say("");
        say("================ Rampart — first boot ================");
        say("This machine is not set up yet: nothing on it can be reached or changed before an administrator");
        say("with two-factor authentication exists, SSH accepts only that administrator's key, on its own port.");
        say("");
        print(&self.machine.summary());
        match self.identity.setup_code().await {
            Ok(c) => say(&format!(
                "  Setup code:      {}   (for the browser wizard; single use, 30 minutes)",
                c.code
            )),
            Err(e) => say(&format!("  Setup code:      unavailable ({})", message(&e))),
        }
        say("");
        say("Set up in a browser at the panel address above with the setup code, or here on the console.");
        loop {
            let answer = self
                .ask("Press Enter to set up here on the console (r: show the current setup code again): ", false)
                .await?;
            if answer.trim() == "r" {
                return Ok(Step::Welcome);
            }
            if !answer.trim().is_empty() {
                continue;
            }
            match self.identity.setup_begin_console().await {
                Ok(token) => {
                    self.token = token;
                    return Ok(Step::Admin);
                }
                Err(e) => refused(&e),
            }
        }
    }

    async fn administrator(&mut self) -> Result<Step, Interrupted> {
        say("");
        say(
            "--- 1/5  The administrator (manages the machine in the panel and over SSH; role root)",
        );
        loop {
            let name = self.ask("Administrator user name: ", false).await?;
            let password = self
                .ask(
                    "Password (at least 14 characters, not built from this site's name): ",
                    true,
                )
                .await?;
            let again = self.ask("Password again: ", true).await?;
            if password != again {
                say("  ✗ the two passwords differ");
                continue;
            }
            match self
                .identity
                .setup_admin(&self.token, name.trim(), &password)
                .await
            {
                Ok(e) => {
                    self.admin = name.trim().to_owned();
                    return Ok(Step::Authenticator {
                        secret: e.secret,
                        uri: e.uri,
                    });
                }
                Err(e) => refused(&e),
            }
        }
    }

    async fn authenticator(&mut self, secret: &str, uri: &str) -> Result<Step, Interrupted> {
        say("");
        say("--- 2/5  Two-factor authentication (mandatory; there is no way to turn it off)");
        say("Scan this with an authenticator app (Aegis, FreeOTP, Google Authenticator, 1Password…):");
        if let Some(qr) = crate::qr::render(uri) {
            print(&qr);
        }
        let grouped: Vec<String> = secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        say(&format!(
            "or type the key: {}   (TOTP, SHA-1, 6 digits, 30 s)",
            grouped.join(" ")
        ));
        loop {
            let code = self.ask("Code from the authenticator app: ", false).await?;
            match self
                .identity
                .setup_second_factor(&self.token, code.trim())
                .await
            {
                Ok(codes) => return Ok(Step::RecoveryCodes(codes)),
                Err(e) => refused(&e),
            }
        }
    }

    async fn recovery_codes(&mut self, codes: &[String]) -> Result<Step, Interrupted> {
        say("");
        say("--- 3/5  Recovery codes: shown once. Store them away from the authenticator; each replaces it for one");
        say("         login, or resets 2FA here on the console.");
        for (i, c) in codes.iter().enumerate() {
            say(&format!("    {:>2}. {c}", i + 1));
        }
        self.ask("Press Enter once you have stored them: ", false)
            .await?;
        Ok(Step::Key)
    }

    async fn key(&mut self) -> Result<Step, Interrupted> {
        say("");
        say(&format!(
            "--- 4/5  SSH: keys only, no passwords, no root. {}'s public key:",
            self.admin
        ));
        loop {
            let line = self
                .ask(
                    "Your SSH public key (one line, e.g. from ~/.ssh/id_ed25519.pub): ",
                    false,
                )
                .await?;
            match self
                .ssh
                .add_key(&self.token, &self.admin, line.trim(), "", 0)
                .await
            {
                Ok(k) => {
                    say(&format!("  ✓ stored {} {}", k.algorithm, k.fingerprint));
                    return Ok(Step::Port);
                }
                Err(e) => refused(&e),
            }
        }
    }

    async fn port(&mut self) -> Result<Step, Interrupted> {
        let suggested = rampart_common::net::suggest_ssh_port();
        loop {
            let answer = self
                .ask(
                    &format!("SSH port (1024-65535, not 22) [{suggested}]: "),
                    false,
                )
                .await?;
            let port = match answer.trim() {
                "" => suggested,
                text => match text.parse::<u16>() {
                    Ok(p) => p,
                    Err(_) => {
                        say("  ✗ a port is a number from 1024 to 65535");
                        continue;
                    }
                },
            };
            if port == 22 {
                say("  ✗ port 22 is refused: it is where every scanner knocks; choose another");
                continue;
            }
            match self.ssh.set_port(&self.token, port).await {
                Ok(_) => return Ok(Step::AwaitLogin { port }),
                Err(e) => refused(&e),
            }
        }
    }

    async fn await_login(&mut self, port: u16) -> Result<Step, Interrupted> {
        let address = self
            .machine
            .addresses
            .first()
            .map_or_else(|| "<this machine>".to_owned(), |a| a.to_string());
        say("");
        say("--- 5/5  Prove that SSH works: log in once from your computer, with the key:");
        say(&format!("    ssh -p {port} {}@{address}", self.admin));
        say("Waiting for that login… (unconfirmed, the change reverts on its own and port 22 stays as it was)");
        let mut tick = tokio::time::interval(WATCH_EVERY);
        loop {
            tick.tick().await;
            if let Ok(state) = self.identity.setup_state().await {
                if state.state == SETUP_COMPLETE {
                    return Err(Interrupted::SetupDone(state.admin));
                }
            }
            let Ok(status) = self.ssh.status().await else {
                continue;
            };
            let moving =
                status.change.state == PORT_AWAITING_LOGIN && status.change.new_port == port;
            if !moving {
                if status.port == port {
                    return Ok(Step::Finish);
                }
                say(&format!(
                    "  ✗ the port change ended: {} — choose the port again",
                    status.change.message
                ));
                return Ok(Step::Port);
            }
            if !status.change.login_seen {
                continue;
            }
            match self.ssh.confirm_port(&self.token).await {
                Ok(_) => {
                    say(&format!(
                        "  ✓ login on port {port} seen; SSH now listens there only"
                    ));
                    return Ok(Step::Finish);
                }
                Err(e) => refused(&e),
            }
        }
    }

    async fn finish(&mut self) -> Result<Option<Step>, Interrupted> {
        loop {
            match self.identity.setup_finish(&self.token).await {
                Ok(info) => {
                    say("");
                    say(&format!(
                        "✓ Setup complete. {} logs in to the panel with the password and a code from the authenticator.",
                        info.admin
                    ));
                    return Ok(None);
                }
                Err(e) => {
                    refused(&e);
                    self.ask("Press Enter to try again: ", false).await?;
                }
            }
        }
    }
}
