//! rampart-firstboot: the machine's console (tty1, ttyS0, a container's console). On first boot it shows
//! what is needed to set the machine up — its addresses, a one-time setup code for the browser wizard, the
//! panel certificate's and SSH host keys' fingerprints — and runs the console wizard ([`wizard`]); afterwards a
//! status screen and a recovery menu that needs physical presence ([`status`]). It replaces the login prompt:
//! root is locked and there is nothing to log in to on the console.
//!
//! It holds no state of its own: the setup lives in rampart-identityd, SSH in rampart-sshconfd. It runs as root
//! on the console (principal `root@console`), which is what lets it read the setup code and start the console
//! wizard; both are refused to anyone else, the web tier included.

pub mod console;
pub mod info;
pub mod qr;
pub mod status;
pub mod wizard;

use rampart_interfaces::identity::{IdentityProxy, SETUP_COMPLETE};
use rampart_interfaces::ssh::SshProxy;

use crate::console::{say, Console, Interrupted};
use crate::wizard::{Outcome, Wizard};

/// Runs the console until it goes away (then systemd starts it again).
pub async fn run() -> anyhow::Result<()> {
    let conn = rampart_common::bus::connect().await?;
    let identity = IdentityProxy::new(&conn).await?;
    let ssh = SshProxy::new(&conn).await?;
    let mut console = Console::open();
    rampart_common::notify::ready("console ready");
    let state = identity.setup_state().await?;
    if state.state != SETUP_COMPLETE {
        let machine = info::gather(&conn).await;
        match Wizard::new(&mut console, identity.clone(), ssh, machine)
            .run()
            .await
        {
            Ok(Outcome::Completed { admin }) => {
                log::info!("setup completed on the console (administrator {admin})")
            }
            Ok(Outcome::CompletedElsewhere { admin }) => {
                say(&format!("Setup was completed in the browser (administrator {admin}); this wizard is closed."));
            }
            Err(Interrupted::Closed) => return Ok(()),
            Err(Interrupted::SetupDone(admin)) => {
                say(&format!("Setup was completed (administrator {admin})."))
            }
        }
    }
    match status::run(&mut console, &conn).await {
        Ok(()) | Err(Interrupted::Closed) | Err(Interrupted::SetupDone(_)) => Ok(()),
    }
}
