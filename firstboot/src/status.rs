//! After setup, the console shows the machine's state and a recovery menu. The menu needs physical presence
//! (this console is the machine's screen or its serial port): resetting an administrator's 2FA with one of
//! their recovery codes, showing the fingerprints, and rebooting into the other root slot.

use rampart_common::exec::Program;
use rampart_interfaces::error::message;
use rampart_interfaces::identity::IdentityProxy;

use crate::console::{print, say, Console, Interrupted};
use crate::info;

const BOOTCTL: &str = "/usr/bin/bootctl";
const SYSTEMCTL: &str = "/usr/bin/systemctl";

/// The boot loader entry of the other slot, if there is one: a Rampart entry that is not the one booted.
fn other_slot() -> Result<Option<(String, String)>, String> {
    let out = Program::new(BOOTCTL)
        .and_then(|p| p.run(&["list", "--json=short", "--no-pager"], &[]))
        .map_err(|e| rampart_common::error::chain(&e))?;
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bootctl list gave no JSON: {e}"))?;
    Ok(entries
        .iter()
        .filter(|e| {
            e["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("rampart-"))
        })
        .find(|e| e["isSelected"] != serde_json::Value::Bool(true))
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["title"].as_str().unwrap_or_default().to_owned(),
            )
        }))
}

async fn recover(console: &mut Console, identity: &IdentityProxy<'_>) -> Result<(), Interrupted> {
    let never = || async { None };
    let name = console
        .ask("Account whose 2FA to reset: ", false, never)
        .await?;
    let code = console
        .ask("One of its recovery codes: ", true, never)
        .await?;
    match identity
        .recover_second_factor(name.trim(), code.trim())
        .await
    {
        Ok(a) => say(&format!(
            "  ✓ {}'s 2FA is reset: it sets up a new authenticator at its next panel login",
            a.username
        )),
        Err(e) => say(&format!("  ✗ {}", message(&e))),
    }
    Ok(())
}

async fn reboot_other(console: &mut Console) -> Result<(), Interrupted> {
    let never = || async { None };
    match other_slot() {
        Err(e) => say(&format!("  ✗ cannot read the boot entries: {e}")),
        Ok(None) => say("  There is no other slot yet: one appears with the first update."),
        Ok(Some((id, title))) => {
            let sure = console
                .ask(
                    &format!("Reboot into {title} ({id})? Type yes: "),
                    false,
                    never,
                )
                .await?;
            if sure.trim() == "yes" {
                let entry = format!("--boot-loader-entry={id}");
                match Program::new(SYSTEMCTL).and_then(|p| p.run(&["reboot", &entry], &[])) {
                    Ok(_) => say("  rebooting…"),
                    Err(e) => say(&format!("  ✗ {}", rampart_common::error::chain(&e))),
                }
            }
        }
    }
    Ok(())
}

/// The status screen and the menu, until the console goes away.
pub async fn run(console: &mut Console, conn: &zbus::Connection) -> Result<(), Interrupted> {
    let identity = IdentityProxy::new(conn)
        .await
        .map_err(|_| Interrupted::Closed)?;
    let never = || async { None };
    loop {
        let machine = info::gather(conn).await;
        say("");
        say("================ Rampart ================");
        print(&machine.summary());
        print(&machine.health_lines());
        if let Ok(s) = identity.setup_state().await {
            say(&format!(
                "  Administrator:   {} (set up via {})",
                s.admin, s.completed_via
            ));
        }
        say("");
        say("  1) Refresh   2) Reset an account's 2FA with a recovery code   3) Reboot into the other slot");
        let choice = console.ask("Choice: ", false, never).await?;
        match choice.trim() {
            "2" => recover(console, &identity).await?,
            "3" => reboot_other(console).await?,
            _ => {}
        }
    }
}
