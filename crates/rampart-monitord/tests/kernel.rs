//! The BPF programs in the real kernel, at a real cgroup tree, driven by real tenant processes (root only; prints
//! SKIPPED otherwise). These test the kernel side through [`rampart_monitord::bpf::Programs`]; tests/daemon.rs
//! tests the daemon around it.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{free_port, reader, Tenant, Tree};
use rampart_monitord::bpf::{Options, Programs};
use rampart_monitord::cgroups::cgroup_id;
use rampart_monitord::wire::{self, Event, EV_CONNECT, EV_EXEC, EV_LISTEN};

/// The role a re-executed copy of this binary plays inside a tenant cgroup (see tests/common).
#[test]
fn role_entry() {
    if let Some(role) = common::role() {
        common::role_main(&role);
    }
}

fn root(test: &str) -> bool {
    rampart_common::testing::require_root(test)
}

/// Largest IPv4 + TCP header: 20 + 40 bytes of options (a SYN carries the most).
const MAX_HEADERS: u64 = 60;

#[test]
fn traffic_is_counted_per_tenant_and_matches_the_wire() {
    if !root("traffic_is_counted_per_tenant_and_matches_the_wire") {
        return;
    }
    let tree = Tree::new();
    let (a, b) = (tree.tenant("alpha"), tree.tenant("beta"));
    let progs = Programs::load(&tree.parent, &Options::default()).unwrap();
    progs.add_tenant(cgroup_id(&a).unwrap()).unwrap();
    progs.add_tenant(cgroup_id(&b).unwrap()).unwrap();

    const SENT: u64 = 3_000_000;
    const ANSWER: usize = 200_000;
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&vec![1u8; ANSWER]).unwrap();
        got.len() as u64
    });
    let mut t = Tenant::start(&a, &["send", &port.to_string(), &SENT.to_string()]);
    assert_eq!(t.line("received"), ANSWER.to_string());
    assert!(t.finish().success());
    assert_eq!(serve.join().unwrap(), SENT);

    let sa = progs.stats(cgroup_id(&a).unwrap()).unwrap().unwrap();
    println!("alpha: {sa:?}");
    assert!(
        sa.tx_bytes >= SENT && sa.tx_bytes <= SENT + sa.tx_packets * MAX_HEADERS,
        "tx {} bytes in {} packets for {SENT} payload bytes",
        sa.tx_bytes,
        sa.tx_packets
    );
    let answer = ANSWER as u64;
    assert!(
        sa.rx_bytes >= answer && sa.rx_bytes <= answer + sa.rx_packets * MAX_HEADERS,
        "rx {} bytes in {} packets for {answer} payload bytes",
        sa.rx_bytes,
        sa.rx_packets
    );
    assert_eq!(sa.connects, 1, "one outbound connection");
    let sb = progs.stats(cgroup_id(&b).unwrap()).unwrap().unwrap();
    assert_eq!(
        sb,
        Default::default(),
        "beta did nothing and counts nothing"
    );
    assert!(progs.tenant_level() > 0, "the tenant depth was found");
}

/// A copy of /bin/true in `dir`, removed on drop.
struct Copy(std::path::PathBuf);
impl Copy {
    fn of_true(dir: &str) -> Copy {
        let path = std::path::Path::new(dir).join(format!("rampart-true-{}", std::process::id()));
        std::fs::copy("/bin/true", &path).unwrap();
        Copy(path)
    }
}
impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn first_seen_listen_connect_and_exec_raise_one_event_for_their_own_tenant() {
    if !root("first_seen_listen_connect_and_exec_raise_one_event_for_their_own_tenant") {
        return;
    }
    let tree = Tree::new();
    let progs = Programs::load(&tree.parent, &Options::default()).unwrap();
    let (_reader, events) = reader(&progs);
    let in_tmp = Copy::of_true("/tmp");
    let in_shm = Copy::of_true("/dev/shm");
    for name in ["alpha", "beta"] {
        let dir = tree.tenant(name);
        let id = cgroup_id(&dir).unwrap();
        progs.add_tenant(id).unwrap();
        let mine = |e: &Event| e.cgroup == id;

        let port = free_port();
        let mut t = Tenant::start(&dir, &["listen", &port.to_string()]);
        assert_eq!(t.line("listening"), "ok");
        let listens = events.matching(|e| mine(e) && e.kind == EV_LISTEN);
        assert_eq!(listens.len(), 1, "{name}: {listens:?}");
        assert_eq!((listens[0].port, listens[0].proto), (port, wire::TCP));
        t.finish();

        for _ in 0..2 {
            let t = Tenant::start(&dir, &["connect", "3333"]);
            t.finish();
        }
        let connects = events.matching(|e| mine(e) && e.kind == EV_CONNECT);
        assert_eq!(connects.len(), 1, "{name}: first-seen only: {connects:?}");
        assert_eq!(connects[0].port, 3333);
        let count = progs
            .outbound()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k.cgroup == id && k.port == 3333)
            .map(|(_, n)| n);
        assert_eq!(count, Some(2), "{name}: both connections counted");

        for path in [
            "/bin/true",
            in_tmp.0.to_str().unwrap(),
            in_shm.0.to_str().unwrap(),
        ] {
            let mut t = Tenant::start(&dir, &["exec", path]);
            assert_eq!(t.line("exec"), "0");
            t.finish();
        }
        let execs = events.matching(|e| mine(e) && e.kind == EV_EXEC);
        let flags_of = |p: &std::path::Path| {
            let p = p.to_str().unwrap();
            execs
                .iter()
                .filter(|e| e.path == p)
                .map(|e| e.flags)
                .collect::<Vec<_>>()
        };
        assert_eq!(flags_of("/bin/true".as_ref()), [0], "{name}: {execs:?}");
        assert_eq!(
            flags_of(&in_tmp.0),
            [wire::EXEC_WORLD_WRITABLE],
            "{name}: {execs:?}"
        );
        assert_eq!(
            flags_of(&in_shm.0),
            [wire::EXEC_TMPFS | wire::EXEC_WORLD_WRITABLE],
            "{name}: {execs:?}"
        );
        let stats = progs.stats(id).unwrap().unwrap();
        assert_eq!(stats.flagged_execs, 2, "{name}: {stats:?}");
        // The role processes themselves exec'd this test binary: those are counted too, unflagged.
        assert!(stats.execs >= 3, "{name}: {stats:?}");
    }
}

#[test]
fn a_full_ring_buffer_is_counted_and_counters_do_not_depend_on_events() {
    if !root("a_full_ring_buffer_is_counted_and_counters_do_not_depend_on_events") {
        return;
    }
    let tree = Tree::new();
    let dir = tree.tenant("alpha");
    // One page holds a dozen records; nobody reads until the burst is over.
    let progs = Programs::load(
        &tree.parent,
        &Options {
            ring_bytes: 4096,
            ..Options::default()
        },
    )
    .unwrap();
    let id = cgroup_id(&dir).unwrap();
    progs.add_tenant(id).unwrap();
    const PORTS: u64 = 200;
    let mut t = Tenant::start(&dir, &["connects", "20000", &PORTS.to_string()]);
    assert_eq!(t.line("connects"), "done");
    t.finish();
    let dropped = progs.dropped().unwrap();
    let (reader, events) = reader(&progs);
    let got = events.matching(|e| e.kind == EV_CONNECT && e.cgroup == id);
    let received = got.len() as u64;
    println!(
        "dropped {dropped:?}, received {received}, gaps {}",
        reader.stats.gaps()
    );
    assert!(
        dropped[wire::EV_CONNECT as usize] > 0,
        "the burst overflowed the ring"
    );
    assert_eq!(
        received + dropped[wire::EV_CONNECT as usize],
        PORTS,
        "every event is read or counted"
    );
    assert_eq!(progs.stats(id).unwrap().unwrap().connects, PORTS);
    assert_eq!(progs.outbound().unwrap().len() as u64, PORTS);
    // The losses were at the end of CPU 0's sequence; the next event read shows them as a gap too.
    let mut t = Tenant::start(&dir, &["connects", "30000", "1"]);
    t.line("connects");
    t.finish();
    assert_eq!(
        events
            .matching(|e| e.kind == EV_CONNECT && e.port == 30000)
            .len(),
        1
    );
    assert_eq!(reader.stats.gaps(), dropped[wire::EV_CONNECT as usize]);
}

#[test]
fn enforcement_refuses_denied_ports_and_unlisted_listeners_of_that_tenant_only() {
    if !root("enforcement_refuses_denied_ports_and_unlisted_listeners_of_that_tenant_only") {
        return;
    }
    let tree = Tree::new();
    let (a, b) = (tree.tenant("alpha"), tree.tenant("beta"));
    let progs = Programs::load(&tree.parent, &Options::default()).unwrap();
    let (ida, idb) = (cgroup_id(&a).unwrap(), cgroup_id(&b).unwrap());
    progs.add_tenant(ida).unwrap();
    progs.add_tenant(idb).unwrap();
    let (allowed, other) = (free_port(), free_port());
    progs
        .set_enforcement(ida, &[3333], true, &[allowed])
        .unwrap();

    let run = |dir: &std::path::Path, role: &[&str], prefix: &str| {
        let mut t = Tenant::start(dir, role);
        let out = t.line(prefix);
        t.finish();
        out
    };
    const EPERM: &str = "1";
    const ECONNREFUSED: &str = "111";
    assert_eq!(run(&a, &["connect", "3333"], "connect"), EPERM);
    assert_eq!(run(&b, &["connect", "3333"], "connect"), ECONNREFUSED);
    assert_eq!(
        run(&a, &["listen", &other.to_string()], "listening"),
        format!("error {EPERM}")
    );
    assert_eq!(
        run(&a, &["listen", &allowed.to_string()], "listening"),
        "ok"
    );
    assert_eq!(run(&b, &["listen", &other.to_string()], "listening"), "ok");

    progs.set_enforcement(ida, &[], false, &[]).unwrap();
    assert_eq!(run(&a, &["connect", "3333"], "connect"), ECONNREFUSED);
    assert_eq!(run(&a, &["listen", &other.to_string()], "listening"), "ok");
}
