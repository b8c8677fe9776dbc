//! The nft JSON document (libnftables-json(5)) that makes table `inet rampart` what the database says, as one
//! transaction, and the fingerprint used to notice changes made behind the daemon's back.
//!
//! Applying never deletes the table (that would drop the ban sets' elements, whose timeouts live only in the
//! kernel): the table and the four sets are `add`ed (idempotent), every chain found in the table is flushed and
//! deleted, the allow sets are flushed and refilled, anything else found in the table (foreign sets, maps, named
//! objects) is deleted, and the chains are re-added with their rules. Other tables are never named.
//!
//! Rejected: building `nft -f` text (quoting user text into a language is how injections happen) and per-rule
//! incremental updates (handles drift; a failure half-way leaves a half-applied policy).

use std::net::IpAddr;

use ipnet::IpNet;
use rampart_interfaces::firewall::{ALLOW_SET_V4, ALLOW_SET_V6, BAN_SET_V4, BAN_SET_V6, TABLE};
use serde_json::{json, Map, Value};

use crate::spec::{PortRange, Ports, Protocol, STANDARD_PORTS};
use crate::store::Desired;

pub const FAMILY: &str = "inet";

/// Our four sets: (name, element type, flag).
pub const SETS: [(&str, &str, &str); 4] = [
    (BAN_SET_V4, "ipv4_addr", "timeout"),
    (BAN_SET_V6, "ipv6_addr", "timeout"),
    (ALLOW_SET_V4, "ipv4_addr", "interval"),
    (ALLOW_SET_V6, "ipv6_addr", "interval"),
];

/// Echo requests accepted per second (per family) before the rest is dropped.
const PING_RATE: u64 = 10;

fn table() -> Value {
    json!({"family": FAMILY, "name": TABLE})
}

fn chain_ref(name: &str) -> Value {
    json!({"family": FAMILY, "table": TABLE, "name": name})
}

fn set_ref(name: &str) -> Value {
    json!({"family": FAMILY, "table": TABLE, "name": name})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn rule(comment: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": "input", "comment": comment, "expr": expr}}})
}

fn accept() -> Value {
    json!({"accept": null})
}

fn net_value(net: &IpNet) -> Value {
    if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    }
}

fn ports_value(ports: &Ports) -> Value {
    let items: Vec<Value> = ports
        .ranges()
        .iter()
        .map(|PortRange { first, last }| {
            if first == last {
                json!(first)
            } else {
                json!({"range": [first, last]})
            }
        })
        .collect();
    json!({"set": items})
}

/// Accept rules for `protocol`/`ports` from `sources` (empty: anywhere): one per address family that has sources.
fn accept_rules(comment: &str, protocol: Protocol, ports: &Ports, sources: &[IpNet]) -> Vec<Value> {
    let dport = matches(
        "==",
        payload(protocol.as_str(), "dport"),
        ports_value(ports),
    );
    if sources.is_empty() {
        return vec![rule(comment, vec![dport, accept()])];
    }
    let mut out = Vec::new();
    for (family, v4) in [("ip", true), ("ip6", false)] {
        let nets: Vec<Value> = IpNet::aggregate(&sources.to_vec())
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(net_value)
            .collect();
        if !nets.is_empty() {
            let saddr = matches("==", payload(family, "saddr"), json!({ "set": nets }));
            out.push(rule(comment, vec![saddr, dport.clone(), accept()]));
        }
    }
    out
}

/// What we found in the table, as far as cleaning it up is concerned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub chains: Vec<String>,
    /// Sets that are ours by name and definition: kept (with their elements).
    pub good_sets: Vec<String>,
    /// Objects to delete: (kind, name), e.g. ("set", "foreign"), ("counter", "x").
    pub other: Vec<(String, String)>,
}

impl Found {
    /// Reads a `nft -j list table` document. `None` (no table) finds nothing.
    pub fn from_listing(listing: Option<&Value>) -> Found {
        let mut found = Found::default();
        for (kind, obj) in objects(listing) {
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match kind.as_str() {
                "metainfo" | "table" | "rule" | "element" => {}
                "chain" => found.chains.push(name),
                "set" if set_is_ours(obj) => found.good_sets.push(name),
                _ => found.other.push((kind, name)),
            }
        }
        found
    }
}

fn objects(listing: Option<&Value>) -> Vec<(String, &Map<String, Value>)> {
    listing
        .and_then(|l| l.get("nftables"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|o| {
                    let (k, v) = o.iter().next()?;
                    Some((k.clone(), v.as_object()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn flags(obj: &Map<String, Value>) -> Vec<String> {
    match obj.get("flags") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn set_is_ours(obj: &Map<String, Value>) -> bool {
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    SETS.iter()
        .any(|(n, t, f)| *n == name && *t == kind && flags(obj) == [f.to_string()])
}

/// The whole transaction: make the table match `desired`, cleaning up what `found` lists.
pub fn document(desired: &Desired, found: &Found) -> Value {
    let mut cmds = vec![json!({"add": {"table": table()}})];
    // Rules go first (they may reference anything), then chains, then whatever else is not ours.
    for name in &found.chains {
        cmds.push(json!({"flush": {"chain": chain_ref(name)}}));
    }
    for name in &found.chains {
        cmds.push(json!({"delete": {"chain": chain_ref(name)}}));
    }
    for (kind, name) in &found.other {
        cmds.push(
            json!({"delete": {kind.clone(): {"family": FAMILY, "table": TABLE, "name": name}}}),
        );
    }
    for (name, kind, flag) in SETS {
        cmds.push(
            json!({"add": {"set": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
                                          "flags": [flag]}}}),
        );
    }
    for (name, v4) in [(ALLOW_SET_V4, true), (ALLOW_SET_V6, false)] {
        cmds.push(json!({"flush": {"set": set_ref(name)}}));
        // Interval sets refuse overlapping elements: merge them first.
        let elems: Vec<Value> = IpNet::aggregate(&desired.allow)
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(net_value)
            .collect();
        if !elems.is_empty() {
            let mut set = set_ref(name);
            set["elem"] = json!(elems);
            cmds.push(json!({"add": {"element": set}}));
        }
    }
    cmds.push(json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": "input", "type": "filter",
                                       "hook": "input", "prio": 0, "policy": "drop"}}}));
    cmds.push(json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": "output", "type": "filter",
                                       "hook": "output", "prio": 0, "policy": "accept"}}}));
    cmds.extend(input_rules(desired));
    json!({ "nftables": cmds })
}

fn input_rules(desired: &Desired) -> Vec<Value> {
    let mut rules = Vec::new();
    // Loopback first: nothing on the machine itself (databases, PHP-FPM, the panel's backends) may ever be cut off
    // by a ban, whatever reached the ban set.
    rules.push(rule(
        "loopback",
        vec![
            matches("==", json!({"meta": {"key": "iif"}}), json!("lo")),
            accept(),
        ],
    ));
    for (family, ban, allow) in [
        ("ip", BAN_SET_V4, ALLOW_SET_V4),
        ("ip6", BAN_SET_V6, ALLOW_SET_V6),
    ] {
        rules.push(rule(
            "banned",
            vec![
                matches("==", payload(family, "saddr"), json!(format!("@{ban}"))),
                matches("!=", payload(family, "saddr"), json!(format!("@{allow}"))),
                json!({"drop": null}),
            ],
        ));
    }
    let ct_state = json!({"ct": {"key": "state"}});
    rules.push(rule(
        "established",
        vec![
            matches("in", ct_state.clone(), json!(["established", "related"])),
            accept(),
        ],
    ));
    rules.push(rule(
        "invalid",
        vec![
            matches("in", ct_state, json!(["invalid"])),
            json!({"drop": null}),
        ],
    ));
    // DHCPv6 replies (server port 547 → client port 546) come from a link-local address to the unicast address of a
    // request sent to a multicast group, which conntrack does not pair: without this a DHCPv6 host loses its address.
    rules.push(rule(
        "dhcpv6",
        vec![
            matches(
                "==",
                payload("ip6", "saddr"),
                json!({"prefix": {"addr": "fe80::", "len": 10}}),
            ),
            matches("==", payload("udp", "sport"), json!(547)),
            matches("==", payload("udp", "dport"), json!(546)),
            accept(),
        ],
    ));
    let limit = json!({"limit": {"rate": PING_RATE, "per": "second", "burst": PING_RATE * 2}});
    for proto in ["icmp", "icmpv6"] {
        rules.push(rule(
            "ping",
            vec![
                matches("==", payload(proto, "type"), json!("echo-request")),
                limit.clone(),
                accept(),
            ],
        ));
    }
    rules.push(rule(
        "icmp",
        vec![
            matches(
                "==",
                payload("icmp", "type"),
                json!({"set": ["destination-unreachable", "time-exceeded", "parameter-problem"]}),
            ),
            accept(),
        ],
    ));
    rules.push(rule(
        "icmpv6",
        vec![
            matches(
                "==",
                payload("icmpv6", "type"),
                json!({"set": [
                    "destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
                    "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert",
                    "mld-listener-query", "mld-listener-report", "mld2-listener-report"
                ]}),
            ),
            accept(),
        ],
    ));
    let ssh_ports = Ports::parse(
        &desired
            .ssh
            .ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Ok(ports) = ssh_ports {
        rules.extend(accept_rules(
            "ssh",
            Protocol::Tcp,
            &ports,
            &desired.ssh.sources,
        ));
    }
    if let Ok(web) = Ports::parse(&format!("{},{}", STANDARD_PORTS[0], STANDARD_PORTS[1])) {
        rules.extend(accept_rules("web", Protocol::Tcp, &web, &[]));
    }
    for r in &desired.rules {
        rules.extend(accept_rules(
            &format!("rule {}", r.id),
            r.protocol,
            &r.ports,
            &r.sources,
        ));
    }
    rules
}

/// A canonical text of the table for change detection: everything but handles and the ban sets' elements (which
/// change on their own as bans come and go).
pub fn fingerprint(listing: Option<&Value>) -> String {
    let mut parts = Vec::new();
    for (kind, obj) in objects(listing) {
        if kind == "metainfo" {
            continue;
        }
        let mut obj = obj.clone();
        obj.remove("handle");
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        if kind == "set" && (name == BAN_SET_V4 || name == BAN_SET_V6) {
            obj.remove("elem");
        }
        parts.push(json!({ kind: obj }).to_string());
    }
    parts.join("\n")
}

/// Ban-set elements in a `nft -j list set` document: (address, seconds left).
pub fn ban_elements(listing: &Value) -> Result<Vec<(IpAddr, u64)>, String> {
    let mut out = Vec::new();
    for (kind, obj) in objects(Some(listing)) {
        if kind != "set" {
            continue;
        }
        let Some(elems) = obj.get("elem").and_then(Value::as_array) else {
            continue;
        };
        for e in elems {
            let (val, expires) = match e {
                Value::String(s) => (s.as_str(), 0),
                Value::Object(o) => {
                    let inner = o
                        .get("elem")
                        .and_then(Value::as_object)
                        .ok_or("element without \"elem\"")?;
                    let val = inner
                        .get("val")
                        .and_then(Value::as_str)
                        .ok_or("element without \"val\"")?;
                    (
                        val,
                        inner.get("expires").and_then(Value::as_u64).unwrap_or(0),
                    )
                }
                _ => return Err("unexpected element form".into()),
            };
            let addr: IpAddr = val
                .parse()
                .map_err(|_| format!("element {val:?} is not an address"))?;
            out.push((addr, expires));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ssh, StoredRule};

    fn desired() -> Desired {
        Desired {
            ssh: Ssh {
                ports: vec![22],
                sources: vec![],
            },
            rules: vec![StoredRule {
                id: 7,
                protocol: Protocol::Udp,
                ports: Ports::parse("5000-5010").unwrap(),
                sources: vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ],
                comment: "x".into(),
                added_by: "root@console".into(),
                added_at: 1,
                reviewed_at: 1,
                expires_at: 2,
                permanent_reason: String::new(),
            }],
            allow: vec!["192.0.2.0/24".parse().unwrap()],
        }
    }

    #[test]
    fn document_names_only_our_table_and_splits_families() {
        let doc = document(&desired(), &Found::default());
        let text = doc.to_string();
        assert!(!text.contains("\"flush\":{\"ruleset\""));
        let cmds = doc["nftables"].as_array().unwrap();
        for c in cmds {
            let inner = c.as_object().unwrap().values().next().unwrap();
            let obj = inner.as_object().unwrap().values().next().unwrap();
            let t = obj.get("table").or(obj.get("name")).unwrap();
            assert_eq!(t, TABLE, "{c}");
        }
        let rule7: Vec<_> = cmds
            .iter()
            .filter(|c| c.to_string().contains("\"rule 7\""))
            .collect();
        assert_eq!(rule7.len(), 2, "one rule per address family");
    }

    #[test]
    fn cleanup_of_foreign_objects_precedes_re_adding() {
        let listing = json!({"nftables": [
            {"chain": {"family": "inet", "table": "rampart", "name": "input", "handle": 1}},
            {"chain": {"family": "inet", "table": "rampart", "name": "sneaky", "handle": 2}},
            {"set": {"family": "inet", "table": "rampart", "name": "ban4", "type": "ipv4_addr", "flags": ["timeout"]}},
            {"set": {"family": "inet", "table": "rampart", "name": "allow4", "type": "ipv4_addr"}},
        ]});
        let found = Found::from_listing(Some(&listing));
        assert_eq!(found.chains, ["input", "sneaky"]);
        assert_eq!(found.good_sets, ["ban4"]);
        assert_eq!(found.other, [("set".to_string(), "allow4".to_string())]);
    }
}
