//! rampart-firewalld against real nftables in network namespaces, over a private bus with the real auditd.
//! Root only: without root each test prints SKIPPED.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use common::{await_audit, config, eventually, Firewalld, Netns};
use rampart_common::testing::{audit_daemon, require_root, PrivateBus};
use rampart_interfaces::audit::AuditProxy;
use rampart_interfaces::firewall::{FirewallProxy, RuleSpec, SshAccess};

fn spec(ports: &str, expires_in: u64) -> RuleSpec {
    RuleSpec {
        protocol: "tcp".into(),
        ports: ports.into(),
        sources: vec![],
        comment: "test opening".into(),
        expires_in,
        permanent_reason: String::new(),
    }
}

fn ssh_ports(ns: &Netns) -> String {
    ns.ruleset()
        .lines()
        .filter(|l| l.contains("comment \"ssh\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn unconfirmed_ssh_change_is_reverted_even_across_a_restart() {
    if !require_root("unconfirmed_ssh_change_is_reverted_even_across_a_restart") {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns::new("cc");
    let root = config(state.path(), "confirm_timeout = \"4s\"\n");
    let mut fw = Firewalld::start(&bus, &ns, &root).await;
    let conn = bus.connect().await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    let audit = AuditProxy::new(&conn).await.unwrap();
    assert!(
        ssh_ports(&ns).contains("tcp dport 22 accept"),
        "{}",
        ns.ruleset()
    );

    // Adding a port is not lockout-prone: applied and final.
    let add = proxy
        .set_ssh_access(
            "",
            &SshAccess {
                ports: vec![22, 2222],
                sources: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(add.confirm_by, 0);
    assert!(ssh_ports(&ns).contains("{ 22, 2222 }"), "{}", ns.ruleset());

    // Removing 22 is: applied now, reverted unless confirmed.
    let change = proxy
        .set_ssh_access(
            "",
            &SshAccess {
                ports: vec![2222],
                sources: vec![],
            },
        )
        .await
        .unwrap();
    assert!(change.confirm_by > 0, "{change:?}");
    assert!(
        ssh_ports(&ns).contains("tcp dport 2222 accept"),
        "{}",
        ns.ruleset()
    );
    let pending = proxy.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].change_id, change.change_id);
    // A second change while one waits is refused, so the revert restores exactly what was.
    let err = proxy
        .set_ssh_access(
            "",
            &SshAccess {
                ports: vec![2200],
                sources: vec![],
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("waiting for confirmation"),
        "{err}"
    );

    // The daemon is restarted inside the window: the revert still happens, on time.
    fw.stop();
    let _fw = Firewalld::start(&bus, &ns, &root).await;
    assert!(
        ssh_ports(&ns).contains("tcp dport 2222 accept"),
        "still waiting after restart"
    );
    eventually(15, "ssh back to 22, 2222", || {
        ssh_ports(&ns).contains("{ 22, 2222 }")
    })
    .await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    assert!(proxy.pending().await.unwrap().is_empty());
    let revert = await_audit(&audit, "firewall.revert", 10).await;
    assert_eq!(revert[0].actor, "service:rampart-firewalld");
    assert_eq!(revert[0].target, format!("change {}", change.change_id));

    // A confirmed change stays.
    let change = proxy
        .set_ssh_access(
            "",
            &SshAccess {
                ports: vec![2222],
                sources: vec![],
            },
        )
        .await
        .unwrap();
    proxy.confirm("", change.change_id).await.unwrap();
    assert!(
        proxy.confirm("", change.change_id).await.is_err(),
        "confirming twice"
    );
    tokio::time::sleep(Duration::from_secs(5)).await; // past the 4 s window: nothing may revert
    assert!(
        ssh_ports(&ns).contains("tcp dport 2222 accept"),
        "{}",
        ns.ruleset()
    );
    assert_eq!(
        common::audit_records(&audit, "firewall.revert").await.len(),
        1
    );
}

#[tokio::test]
async fn restore_at_boot_reverts_a_pending_change_and_drops_expired_rules() {
    if !require_root("restore_at_boot_reverts_a_pending_change_and_drops_expired_rules") {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns::new("boot");
    let root = config(state.path(), "confirm_timeout = \"600s\"\n");
    let mut fw = Firewalld::start(&bus, &ns, &root).await;
    let conn = bus.connect().await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    let change = proxy
        .set_ssh_access(
            "",
            &SshAccess {
                ports: vec![2222],
                sources: vec![],
            },
        )
        .await
        .unwrap();
    assert!(change.confirm_by > 0);
    let rule = proxy.open("", &spec("7000", 1)).await.unwrap();
    fw.stop();
    // "Reboot": a fresh namespace (empty kernel state), then the oneshot restore.
    let fresh = Netns::new("boot2");
    tokio::time::sleep(Duration::from_millis(1100)).await; // let the 1 s rule reach its expiry
    let out = std::process::Command::new("/usr/sbin/ip")
        .args(["netns", "exec", &fresh.name])
        .arg(rampart_common::testing::workspace_bin("rampart-firewalld"))
        .arg("--restore")
        .arg("--config-root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fresh.ruleset();
    assert!(ssh_ports(&fresh).contains("tcp dport 22 accept"), "{text}");
    assert!(!text.contains(&format!("rule {}", rule.rule_id)), "{text}");
    // The records queued at boot reach the audit log once the daemon runs.
    let _fw = Firewalld::start(&bus, &fresh, &root).await;
    let audit = AuditProxy::new(&conn).await.unwrap();
    await_audit(&audit, "firewall.revert", 10).await;
    await_audit(&audit, "firewall.expire", 10).await;
}

#[tokio::test]
async fn expiring_opening_disappears_at_its_expiry_and_is_audited() {
    if !require_root("expiring_opening_disappears_at_its_expiry_and_is_audited") {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns::new("exp");
    let root = config(
        state.path(),
        "reconcile_interval = \"60s\"\nreview_period = \"2s\"\n",
    );
    let _fw = Firewalld::start(&bus, &ns, &root).await;
    let conn = bus.connect().await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    let audit = AuditProxy::new(&conn).await.unwrap();

    let change = proxy.open("", &spec("8000-8100,8080", 3)).await.unwrap();
    let permanent = proxy
        .open(
            "",
            &RuleSpec {
                permanent_reason: "monitoring agent".into(),
                ..spec("9100", 0)
            },
        )
        .await
        .unwrap();
    let comment = format!("comment \"rule {}\"", change.rule_id);
    let text = ns.ruleset();
    assert!(
        text.contains(&format!("tcp dport 8000-8100 accept {comment}")),
        "{text}"
    );
    let rules = proxy.list().await.unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].ports, "8000-8100");
    assert_eq!(rules[0].added_by, "root@console");
    assert_eq!(rules[1].expires_at, 0);

    eventually(10, "the expiring rule leaves the kernel", || {
        !ns.ruleset().contains(&comment)
    })
    .await;
    let removed_at = service_now();
    assert!(
        removed_at >= rules[0].expires_at,
        "removed before its expiry"
    );
    let expired = await_audit(&audit, "firewall.expire", 10).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].actor, "service:rampart-firewalld");
    assert!(
        expired[0]
            .target
            .starts_with(&format!("rule {} ", change.rule_id)),
        "{:?}",
        expired[0]
    );
    let left = proxy.list().await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![permanent.rule_id]
    );
    assert!(ns
        .ruleset()
        .contains(&format!("comment \"rule {}\"", permanent.rule_id)));

    // Past the (2 s) review period the permanent rule is listed until someone reviews it.
    let unreviewed = proxy.unreviewed().await.unwrap();
    assert_eq!(
        unreviewed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![permanent.rule_id]
    );
    proxy.review("", permanent.rule_id).await.unwrap();
    assert!(proxy.unreviewed().await.unwrap().is_empty());
    assert!(proxy.review("", 999).await.is_err());

    // Bad input is refused with a clear error and changes nothing.
    for (bad, want) in [
        (spec("22;reboot", 0), "not a port"),
        (
            RuleSpec {
                comment: String::new(),
                ..spec("8080", 0)
            },
            "comment is required",
        ),
        (spec("8080", 365 * 86_400), "above the maximum"),
        (
            RuleSpec {
                sources: vec!["10.0.0.0/33".into()],
                ..spec("8080", 0)
            },
            "not an address",
        ),
    ] {
        let err = proxy.open("", &bad).await.unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(proxy.list().await.unwrap().len(), 1);
}

fn service_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn bans_live_in_the_kernel_expire_with_the_daemon_down_and_spare_the_allowlist() {
    if !require_root("bans_live_in_the_kernel_expire_with_the_daemon_down_and_spare_the_allowlist")
    {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns::new("ban");
    let root = config(state.path(), "");
    let mut fw = Firewalld::start(&bus, &ns, &root).await;
    let conn = bus.connect().await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    let audit = AuditProxy::new(&conn).await.unwrap();

    assert!(proxy.ban("", "203.0.113.9", 3600, "test").await.unwrap());
    // Allowlisting lifts the ban inside it; afterwards the address cannot be banned.
    proxy.allow("", "203.0.113.0/24", "office").await.unwrap();
    assert!(ns.set_elements("ban4").is_empty(), "ban lifted by allow");
    assert!(!proxy.ban("", "203.0.113.9", 60, "test").await.unwrap());
    assert!(ns.set_elements("ban4").is_empty());
    assert!(
        ns.ruleset().contains("elements = { 203.0.113.0/24 }"),
        "{}",
        ns.ruleset()
    );

    assert!(proxy
        .ban("", "198.51.100.7", 4, "brute force")
        .await
        .unwrap());
    assert!(proxy
        .ban("", "2001:db8::7", 3600, "brute force")
        .await
        .unwrap());
    let v4 = ns.set_elements("ban4");
    assert_eq!(v4.len(), 1);
    assert_eq!(
        (v4[0].0.as_str(), v4[0].1),
        ("198.51.100.7", 4),
        "kernel timeout"
    );
    assert_eq!(ns.set_elements("ban6")[0].0, "2001:db8::7");
    // Re-banning with a longer time extends; a shorter one keeps the later expiry.
    assert!(proxy.ban("", "2001:db8::7", 7200, "again").await.unwrap());
    assert_eq!(ns.set_elements("ban6")[0].1, 7200);
    assert!(proxy.ban("", "2001:db8::7", 10, "again").await.unwrap());
    assert!(ns.set_elements("ban6")[0].2 > 3600);
    let bans = proxy.bans().await.unwrap();
    assert_eq!(bans.len(), 2);
    proxy.unban("", "2001:db8::7").await.unwrap();
    proxy.unban("", "2001:db8::7").await.unwrap(); // not banned: not an error
    assert!(ns.set_elements("ban6").is_empty());
    assert!(proxy.ban("", "not-an-ip", 60, "x").await.is_err());
    assert_eq!(common::audit_records(&audit, "firewall.ban").await.len(), 6);

    // With the daemon stopped the kernel still drops the ban on time.
    fw.stop();
    assert_eq!(ns.set_elements("ban4").len(), 1);
    eventually(10, "the ban expires in the kernel", || {
        ns.set_elements("ban4").is_empty()
    })
    .await;
}

#[tokio::test]
async fn out_of_band_change_is_reconciled_and_audited_and_foreign_tables_are_untouched() {
    if !require_root(
        "out_of_band_change_is_reconciled_and_audited_and_foreign_tables_are_untouched",
    ) {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let ns = Netns::new("rec");
    ns.nft(&["add", "table", "ip", "foreign"]);
    ns.nft(&[
        "add",
        "chain",
        "ip",
        "foreign",
        "c",
        "{ type filter hook input priority 10; }",
    ]);
    ns.nft(&[
        "add", "rule", "ip", "foreign", "c", "tcp", "dport", "1234", "counter", "accept",
    ]);
    let foreign = ns.nft(&["list", "table", "ip", "foreign"]);
    let root = config(state.path(), "");
    let _fw = Firewalld::start(&bus, &ns, &root).await;
    let conn = bus.connect().await;
    let audit = AuditProxy::new(&conn).await.unwrap();
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    let before = ns.ruleset();

    ns.nft(&[
        "add", "rule", "inet", "rampart", "input", "tcp", "dport", "9999", "accept",
    ]);
    ns.nft(&[
        "add",
        "set",
        "inet",
        "rampart",
        "sneaky",
        "{ type ipv4_addr; }",
    ]);
    assert!(ns.ruleset().contains("9999"));
    eventually(10, "the stray rule and set are removed", || {
        let t = ns.ruleset();
        !t.contains("9999") && !t.contains("sneaky")
    })
    .await;
    let recs = await_audit(&audit, "firewall.reconcile", 10).await;
    assert_eq!(recs[0].actor, "service:rampart-firewalld");
    assert!(recs[0].details.contains("9999"), "{}", recs[0].details);
    assert!(proxy.status().await.unwrap().last_reconciled > 0);
    let after = ns.ruleset();
    assert_eq!(
        after.replace(&foreign, ""),
        before.replace(&foreign, ""),
        "policy restored as it was"
    );
    assert_eq!(
        ns.nft(&["list", "table", "ip", "foreign"])
            .replace("packets 0 bytes 0", ""),
        foreign.replace("packets 0 bytes 0", ""),
        "foreign table untouched"
    );

    // Even a deleted table comes back.
    ns.nft(&["delete", "table", "inet", "rampart"]);
    eventually(10, "the table is recreated", || {
        ns.ruleset().contains("table inet rampart")
    })
    .await;
    assert!(ns.ruleset().contains("table ip foreign"));
}

/// Runs `f` on a thread inside network namespace `ns` (sockets keep the namespace they were made in).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(path).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

fn can_connect(client: &str, to: SocketAddr) -> bool {
    in_netns(client, move || {
        TcpStream::connect_timeout(&to, Duration::from_millis(700)).is_ok()
    })
}

#[tokio::test]
async fn packets_between_namespaces_follow_open_and_close() {
    if !require_root("packets_between_namespaces_follow_open_and_close") {
        return;
    }
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let _audit = audit_daemon(&bus, state.path()).await;
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    let veth_a = format!("va{}", std::process::id() % 100_000);
    let veth_b = format!("vb{}", std::process::id() % 100_000);
    common::run(
        "/usr/sbin/ip",
        &[
            "link", "add", &veth_a, "type", "veth", "peer", "name", &veth_b,
        ],
    );
    common::run(
        "/usr/sbin/ip",
        &["link", "set", &veth_a, "netns", &server.name],
    );
    common::run(
        "/usr/sbin/ip",
        &["link", "set", &veth_b, "netns", &client.name],
    );
    common::run(
        "/usr/sbin/ip",
        &[
            "-n",
            &server.name,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            &veth_a,
        ],
    );
    common::run(
        "/usr/sbin/ip",
        &[
            "-n",
            &client.name,
            "addr",
            "add",
            "10.77.0.2/24",
            "dev",
            &veth_b,
        ],
    );
    common::run(
        "/usr/sbin/ip",
        &["-n", &server.name, "link", "set", &veth_a, "up"],
    );
    common::run(
        "/usr/sbin/ip",
        &["-n", &client.name, "link", "set", &veth_b, "up"],
    );

    // Listeners exist before the firewall: only the firewall decides.
    let listeners: Vec<TcpListener> = in_netns(&server.name, || {
        [22u16, 443, 8080]
            .iter()
            .map(|p| TcpListener::bind(("10.77.0.1", *p)).unwrap())
            .collect()
    });
    let addr = |p: u16| SocketAddr::from(([10, 77, 0, 1], p));
    assert!(
        can_connect(&client.name, addr(8080)),
        "no firewall yet: open"
    );

    let root = config(state.path(), "");
    let _fw = Firewalld::start(&bus, &server, &root).await;
    let conn = bus.connect().await;
    let proxy = FirewallProxy::new(&conn).await.unwrap();
    assert!(
        can_connect(&client.name, addr(22)),
        "ssh is open by default"
    );
    assert!(
        can_connect(&client.name, addr(443)),
        "https is open by default"
    );
    assert!(
        !can_connect(&client.name, addr(8080)),
        "8080 is dropped by default"
    );

    let change = proxy.open("", &spec("8080", 0)).await.unwrap();
    assert!(can_connect(&client.name, addr(8080)), "8080 opened");
    proxy.close("", change.rule_id).await.unwrap();
    assert!(!can_connect(&client.name, addr(8080)), "8080 closed again");

    // An opening only from a source that is not the client does not let it in.
    proxy
        .open(
            "",
            &RuleSpec {
                sources: vec!["10.99.0.0/16".into()],
                ..spec("8080", 0)
            },
        )
        .await
        .unwrap();
    assert!(
        !can_connect(&client.name, addr(8080)),
        "source-restricted opening"
    );

    // A banned client is dropped even on the SSH port; unbanning lets it back.
    assert!(proxy.ban("", "10.77.0.2", 60, "test").await.unwrap());
    assert!(!can_connect(&client.name, addr(22)), "banned");
    proxy.unban("", "10.77.0.2").await.unwrap();
    assert!(can_connect(&client.name, addr(22)), "unbanned");
    drop(listeners);
}
