use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn failure(msg: &str) -> (FailureKind, IpAddr, Option<String>) {
    match parse_sshd(msg, Some(4242)) {
        Some(Event::Failure {
            service: Service::Ssh,
            kind,
            source,
            user,
        }) => (kind, source, user),
        other => panic!("{msg:?} → {other:?}"),
    }
}

#[test]
fn openssh_9_2_failure_lines() {
    use FailureKind::*;
    let a = ip("203.0.113.9");
    let cases: &[(&str, FailureKind, Option<&str>)] = &[
        ("Failed password for root from 203.0.113.9 port 1234 ssh2", BadCredentials, Some("root")),
        ("Failed password for invalid user x from 203.0.113.9 port 1234 ssh2", BadCredentials, Some("x")),
        ("Failed publickey for root from 203.0.113.9 port 1234 ssh2: RSA SHA256:abcDEF", KeyRejected, Some("root")),
        ("Failed keyboard-interactive/pam for invalid user admin from 203.0.113.9 port 1234 ssh2", BadCredentials, Some("admin")),
        ("Invalid user x from 203.0.113.9 port 1234", InvalidUser, Some("x")),
        ("Invalid user  from 203.0.113.9 port 1234", InvalidUser, Some("")),
        ("Connection closed by authenticating user root 203.0.113.9 port 1234 [preauth]", PreauthDisconnect, Some("root")),
        ("Connection closed by invalid user x 203.0.113.9 port 1234 [preauth]", PreauthDisconnect, Some("x")),
        ("Disconnected from invalid user x 203.0.113.9 port 1234 [preauth]", PreauthDisconnect, Some("x")),
        ("Disconnected from authenticating user root 203.0.113.9 port 1234 [preauth]", PreauthDisconnect, Some("root")),
        ("Connection reset by authenticating user root 203.0.113.9 port 1234 [preauth]", PreauthDisconnect, Some("root")),
        ("Connection closed by 203.0.113.9 port 1234", PreauthProbe, None),
        ("Connection closed by 203.0.113.9 port 1234 [preauth]", PreauthProbe, None),
        ("fatal: Timeout before authentication for 203.0.113.9 port 1234", PreauthProbe, None),
        ("error: maximum authentication attempts exceeded for root from 203.0.113.9 port 1234 ssh2 [preauth]", MaxAuthTries, Some("root")),
        ("error: maximum authentication attempts exceeded for invalid user x from 203.0.113.9 port 1234 ssh2 [preauth]", MaxAuthTries, Some("x")),
        ("banner exchange: Connection from 203.0.113.9 port 1234: invalid format", Garbage, None),
        ("banner exchange: Connection from 203.0.113.9 port 1234: Connection timed out", Garbage, None),
        ("ssh_dispatch_run_fatal: Connection from 203.0.113.9 port 1234: message authentication code incorrect [preauth]", Garbage, None),
        ("Unable to negotiate with 203.0.113.9 port 1234: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]", Garbage, None),
        ("Unable to negotiate with 203.0.113.9 port 1234: no matching host key type found. Their offer: ssh-dss [preauth]", Garbage, None),
        ("Did not receive identification string from 203.0.113.9 port 1234", PreauthProbe, None),
        ("Bad protocol version identification 'GET / HTTP/1.1' from 203.0.113.9 port 1234", Garbage, None),
    ];
    // An agent offering other keys before the right one is normal: those lines must not count.
    assert_eq!(KeyRejected.weight(), 0);
    assert_eq!(BadCredentials.weight(), 1);
    for (msg, kind, user) in cases {
        let got = failure(msg);
        assert_eq!(got, (*kind, a, user.map(str::to_owned)), "{msg}");
    }
}

#[test]
fn ipv6_and_mapped_addresses() {
    assert_eq!(
        failure("Failed password for root from 2001:db8::7 port 22 ssh2").1,
        ip("2001:db8::7")
    );
    assert_eq!(
        failure("Invalid user x from ::ffff:192.0.2.1 port 22").1,
        ip("192.0.2.1"),
        "v4-mapped v6 is the v4 address"
    );
}

#[test]
fn user_names_cannot_smuggle_an_address() {
    let (_, source, user) = failure(
        "Failed password for invalid user x from 198.51.100.1 port 1 ssh2 from 203.0.113.9 port 1234 ssh2",
    );
    assert_eq!(source, ip("203.0.113.9"));
    assert_eq!(user.as_deref(), Some("x from 198.51.100.1 port 1 ssh2"));
    let (_, source, _) =
        failure("Invalid user a from 198.51.100.1 port 1 from 203.0.113.9 port 1234");
    assert_eq!(source, ip("203.0.113.9"));
    let (_, source, _) = failure(
        "Connection closed by invalid user 198.51.100.1 port 1 203.0.113.9 port 1234 [preauth]",
    );
    assert_eq!(source, ip("203.0.113.9"));
}

#[test]
fn sessions_open_and_close() {
    let a = ip("192.0.2.10");
    match parse_sshd(
        "Accepted publickey for admin from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:Zm9vYmFy",
        Some(77),
    ) {
        Some(Event::SessionOpened {
            source, user, keys, ..
        }) => {
            assert_eq!(source, a);
            assert_eq!(user.as_deref(), Some("admin"));
            assert_eq!(
                keys,
                vec![SessionEnd::Endpoint(a, 50000), SessionEnd::Pid(77)]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_sshd(
            "Accepted password for tenant from 192.0.2.10 port 50000 ssh2",
            Some(1)
        ),
        None,
        "only a public key proves an admin session"
    );
    assert_eq!(
        parse_sshd(
            "Disconnected from user admin 192.0.2.10 port 50000",
            Some(78)
        ),
        Some(Event::SessionClosed {
            service: Service::Ssh,
            key: SessionEnd::Endpoint(a, 50000)
        })
    );
    assert_eq!(
        parse_sshd(
            "pam_unix(sshd:session): session closed for user admin",
            Some(77)
        ),
        Some(Event::SessionClosed {
            service: Service::Ssh,
            key: SessionEnd::Pid(77)
        })
    );
}

#[test]
fn ignored_lines() {
    for msg in [
        "kex_exchange_identification: Connection closed by remote host",
        "error: kex_exchange_identification: client sent invalid protocol identifier \"GET / HTTP/1.1\"",
        "Failed none for invalid user x from 203.0.113.9 port 1234 ssh2",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
        "Received disconnect from 203.0.113.9 port 1234:11: Bye Bye [preauth]",
        "Server listening on 0.0.0.0 port 22.",
        "Failed password for root from 203.0.113.999 port 1234 ssh2",
        "Failed password for root from 203.0.113.9 port 99999 ssh2",
        "Failed password for root from example.com port 1234 ssh2",
        "Failed password for root from 203.0.113.9 port 1234",
        "Invalid user x from 203.0.113.9",
        "Connection closed by someone 203.0.113.9 port 1234",
        "Connection closed by user admin 203.0.113.9 port", // truncated
        "",
    ] {
        assert!(
            !matches!(parse_sshd(msg, Some(1)), Some(Event::Failure { .. })),
            "{msg:?} counted as a failure"
        );
    }
}

fn entry(fields: &[(&str, &str)]) -> Entry {
    Entry {
        cursor: "c".into(),
        realtime_us: 1,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn panel_fields() {
    let fail = entry(&[
        ("MESSAGE_ID", authlog::MESSAGE_ID_AUTH_FAILED),
        (authlog::FIELD_SERVICE, authlog::SERVICE_PANEL),
        (authlog::FIELD_RESULT, authlog::RESULT_FAILURE),
        (authlog::FIELD_REMOTE_ADDR, "198.51.100.4"),
        (authlog::FIELD_USER, "alice"),
        (
            "MESSAGE",
            "Failed password for root from 203.0.113.9 port 1 ssh2",
        ),
    ]);
    assert_eq!(
        parse(&fail),
        Some(Event::Failure {
            service: Service::Panel,
            kind: FailureKind::PanelLogin,
            source: ip("198.51.100.4"),
            user: Some("alice".into())
        })
    );
    let opened = entry(&[
        ("MESSAGE_ID", authlog::MESSAGE_ID_SESSION_OPENED),
        (authlog::FIELD_SERVICE, authlog::SERVICE_PANEL),
        (authlog::FIELD_RESULT, authlog::RESULT_SUCCESS),
        (authlog::FIELD_REMOTE_ADDR, "198.51.100.4"),
        (authlog::FIELD_SESSION, "s1"),
    ]);
    assert!(matches!(parse(&opened), Some(Event::SessionOpened { .. })));
    let closed = entry(&[
        ("MESSAGE_ID", authlog::MESSAGE_ID_SESSION_CLOSED),
        (authlog::FIELD_SERVICE, authlog::SERVICE_PANEL),
        (authlog::FIELD_SESSION, "s1"),
    ]);
    assert_eq!(
        parse(&closed),
        Some(Event::SessionClosed {
            service: Service::Panel,
            key: SessionEnd::Panel("s1".into())
        })
    );
    let bad_addr = entry(&[
        ("MESSAGE_ID", authlog::MESSAGE_ID_AUTH_FAILED),
        (authlog::FIELD_SERVICE, authlog::SERVICE_PANEL),
        (authlog::FIELD_RESULT, authlog::RESULT_FAILURE),
        (authlog::FIELD_REMOTE_ADDR, "198.51.100.4:443"),
    ]);
    assert_eq!(parse(&bad_addr), None);
    let ssh = entry(&[
        ("SYSLOG_IDENTIFIER", "sshd"),
        ("MESSAGE", "Invalid user x from 203.0.113.9 port 1"),
    ]);
    assert!(matches!(
        parse(&ssh),
        Some(Event::Failure {
            service: Service::Ssh,
            ..
        })
    ));
    let other = entry(&[
        ("SYSLOG_IDENTIFIER", "cron"),
        ("MESSAGE", "Invalid user x from 203.0.113.9 port 1"),
    ]);
    assert_eq!(parse(&other), None);
}

/// Deterministic random input (xorshift): the parser is total. The cargo-fuzz target in `fuzz/` explores further.
#[test]
fn random_input_never_panics() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces = [
        "Failed ",
        "password",
        " for ",
        "invalid user ",
        "user ",
        " from ",
        " port ",
        "22",
        "65536",
        " ssh2",
        ": ",
        "Accepted ",
        "publickey",
        "Invalid user ",
        "Connection closed by ",
        "Disconnected from ",
        "authenticating user ",
        "203.0.113.9",
        "::1",
        "::ffff:1.2.3.4",
        " [preauth]",
        "error: ",
        "fatal: ",
        "banner exchange: Connection from ",
        "Unable to negotiate with ",
        ": no matching ",
        "é",
        "\u{0}",
        " ",
        "",
        "maximum authentication attempts exceeded for ",
        "pam_unix(sshd:session): session closed for user ",
    ];
    for _ in 0..200_000 {
        let n = (next() % 12) as usize;
        let mut msg = String::new();
        for _ in 0..n {
            msg.push_str(pieces[(next() % pieces.len() as u64) as usize]);
        }
        let _ = parse_sshd(&msg, Some((next() % 3) as u32));
        // And raw bytes, lossily decoded as the follower does.
        let bytes: Vec<u8> = (0..(next() % 40)).map(|_| next() as u8).collect();
        let _ = parse_sshd(&String::from_utf8_lossy(&bytes), None);
    }
}
