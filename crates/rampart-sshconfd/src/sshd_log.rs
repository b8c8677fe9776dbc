//! Reading sshd's log lines (LogLevel VERBOSE), pure and separately tested.
//!
//! Two lines matter:
//! - `Connection from A port P on B port Q [rdomain "…"]`: which local port a client's connection arrived on;
//! - `Accepted publickey for U from A port P ssh2: ED25519 SHA256:…`: a login, with the key's fingerprint.
//!
//! The client address and port (A, P) tie the two together: they name one TCP connection, and both lines come from
//! the same sshd process. Lines are matched on their exact shape; anything else is ignored, so a user name cannot
//! forge an event (user names in "Invalid user …" lines never reach these shapes).

/// One event of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connection {
        client: String,
        client_port: u16,
        local_port: u16,
    },
    Accepted {
        user: String,
        client: String,
        client_port: u16,
        fingerprint: String,
    },
}

/// Parses one sshd message (the journal's MESSAGE, or a line of `sshd -E` output).
pub fn parse(message: &str) -> Option<Event> {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("Connection from ") {
        // "A port P on B port Q" + optional " rdomain ..."
        let mut words = rest.split(' ');
        let client = words.next()?;
        expect(&mut words, "port")?;
        let client_port = words.next()?.parse().ok()?;
        expect(&mut words, "on")?;
        let local = words.next()?;
        expect(&mut words, "port")?;
        let local_port = words.next()?.parse().ok()?;
        match words.next() {
            None | Some("rdomain") => {}
            Some(_) => return None,
        }
        // A login from the machine itself (`ssh -p NEW localhost` inside the old session) proves nothing about the
        // firewall or the provider's network: it never leaves the host. Such connections are not evidence.
        let from_self = |a: &str| {
            a.parse::<std::net::IpAddr>()
                .map_or(true, |ip| ip.is_loopback() || a == local)
        };
        if from_self(client) {
            return None;
        }
        return Some(Event::Connection {
            client: client.to_owned(),
            client_port,
            local_port,
        });
    }
    let rest = message.strip_prefix("Accepted publickey for ")?;
    // "U from A port P ssh2: ALG SHA256:x"; U is a validated login name (no spaces).
    let mut words = rest.split(' ');
    let user = words.next()?;
    expect(&mut words, "from")?;
    let client = words.next()?;
    expect(&mut words, "port")?;
    let client_port = words.next()?.parse().ok()?;
    expect(&mut words, "ssh2:")?;
    let _algorithm = words.next()?;
    let fingerprint = words.next()?;
    if !fingerprint.starts_with("SHA256:") || words.next().is_some() {
        return None;
    }
    Some(Event::Accepted {
        user: user.to_owned(),
        client: client.to_owned(),
        client_port,
        fingerprint: fingerprint.to_owned(),
    })
}

fn expect<'a>(words: &mut impl Iterator<Item = &'a str>, word: &str) -> Option<()> {
    (words.next()? == word).then_some(())
}

/// Connections seen but not yet logged in, to find the local port of an accepted login. Bounded: a flood of
/// unauthenticated connections evicts the oldest, which at worst loses one confirmation the admin can redo.
#[derive(Debug, Default)]
pub struct Correlator {
    open: std::collections::VecDeque<(String, u16, u16)>,
}

/// How many unauthenticated connections are remembered (sshd's MaxStartups default is 10:30:100).
const MAX_OPEN: usize = 1024;

/// A login with the local port it arrived on (`None` when its connection line was not seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub fingerprint: String,
    pub local_port: Option<u16>,
}

impl Correlator {
    pub fn feed(&mut self, event: Event) -> Option<Login> {
        match event {
            Event::Connection {
                client,
                client_port,
                local_port,
            } => {
                self.open
                    .retain(|(c, p, _)| !(*c == client && *p == client_port));
                if self.open.len() >= MAX_OPEN {
                    self.open.pop_front();
                }
                self.open.push_back((client, client_port, local_port));
                None
            }
            Event::Accepted {
                user,
                client,
                client_port,
                fingerprint,
            } => {
                let at = self
                    .open
                    .iter()
                    .position(|(c, p, _)| *c == client && *p == client_port);
                let local_port = at
                    .and_then(|i| self.open.remove(i))
                    .map(|(_, _, local)| local);
                Some(Login {
                    user,
                    fingerprint,
                    local_port,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:h1dR2APmgfHYavBR5yPKE9Ya+YF2ayfHuJ8oWXtSPHM";

    #[test]
    fn connections_from_the_machine_itself_are_not_evidence() {
        for line in [
            "Connection from 127.0.0.1 port 5 on 127.0.0.1 port 2222",
            "Connection from ::1 port 5 on ::1 port 2222",
            "Connection from 198.51.100.1 port 5 on 198.51.100.1 port 2222",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }

    #[test]
    fn parses_both_shapes() {
        assert_eq!(
            parse("Connection from 192.0.2.7 port 50412 on 198.51.100.1 port 2222 rdomain \"\""),
            Some(Event::Connection {
                client: "192.0.2.7".into(),
                client_port: 50412,
                local_port: 2222
            })
        );
        assert_eq!(
            parse("Connection from 2001:db8::7 port 1 on 2001:db8::1 port 22"),
            Some(Event::Connection {
                client: "2001:db8::7".into(),
                client_port: 1,
                local_port: 22
            })
        );
        assert_eq!(
            parse(&format!(
                "Accepted publickey for alice from 192.0.2.7 port 50412 ssh2: ED25519 {FP}\n"
            )),
            Some(Event::Accepted {
                user: "alice".into(),
                client: "192.0.2.7".into(),
                client_port: 50412,
                fingerprint: FP.into()
            })
        );
    }

    #[test]
    fn other_and_forged_lines_are_ignored() {
        for line in [
            "Accepted password for alice from 192.0.2.7 port 1 ssh2",
            "Invalid user Accepted publickey for x from 1.2.3.4 port 1 ssh2: ED25519 SHA256:x",
            "Accepted publickey for alice from 1.2.3.4 port x ssh2: ED25519 SHA256:x",
            "Accepted publickey for alice from 1.2.3.4 port 1 ssh2: ED25519 MD5:aa",
            "Accepted publickey for a b from 1.2.3.4 port 1 ssh2: ED25519 SHA256:x",
            "Connection from 1.2.3.4 port 1 on 5.6.7.8 port 99999",
            "Connection closed by 1.2.3.4 port 1",
            "",
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn correlates_login_with_its_connection() {
        let mut c = Correlator::default();
        for line in [
            "Connection from 192.0.2.7 port 1000 on 10.0.0.1 port 22",
            "Connection from 192.0.2.7 port 1001 on 10.0.0.1 port 2222",
        ] {
            assert_eq!(c.feed(parse(line).unwrap()), None);
        }
        let login = |port| {
            parse(&format!(
                "Accepted publickey for alice from 192.0.2.7 port {port} ssh2: ED25519 {FP}"
            ))
            .unwrap()
        };
        assert_eq!(c.feed(login(1001)).unwrap().local_port, Some(2222));
        assert_eq!(c.feed(login(1000)).unwrap().local_port, Some(22));
        assert_eq!(c.feed(login(1000)).unwrap().local_port, None, "used once");
    }
}
