/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared between monitor.bpf.c and rampart-monitord (crates/rampart-monitord/src/wire.rs reads these layouts
 * byte by byte; a test there checks the sizes against the skeleton's generated types). */
#ifndef RAMPART_MONITOR_H
#define RAMPART_MONITOR_H

/* Event kinds: also the index into the per-CPU `dropped` array. */
#define EV_EXEC 0
#define EV_CONNECT 1
#define EV_LISTEN 2
#define EV_KINDS 3

/* Exec flags: where the binary came from. */
#define EXEC_TMPFS 1          /* a tmpfs/ramfs file (/tmp, /dev/shm, memfd) */
#define EXEC_WORLD_WRITABLE 2 /* its directory is writable by anyone (/tmp, /var/tmp) */
#define EXEC_DELETED 4        /* the file has no name left (unlinked after start, or a memfd) */

#define PATH_LEN 256
#define COMM_LEN 16

/* Per tenant, per CPU. The map's keys are the tenant slices' cgroup ids; userspace inserts them, so a lookup hit
 * is also the test "this cgroup is a tenant". */
struct tenant_stats {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
	__u64 connects;
	__u64 execs;
	__u64 flagged_execs;
};

/* A tenant's destination or listening port. */
struct port_key {
	__u64 cgroup;
	__u16 port;
	__u8 proto; /* IPPROTO_TCP (6) or IPPROTO_UDP (17) */
	__u8 pad[5];
};

/* A binary a tenant ran, by file identity. */
struct bin_key {
	__u64 cgroup;
	__u64 dev;
	__u64 ino;
};

/* One ring-buffer record. `seq` counts every event this CPU tried to send (sent or dropped), from 1. */
struct event {
	__u32 kind;
	__u32 cpu;
	__u64 seq;
	__u64 cgroup;
	__u64 time_ns;
	__u32 pid;
	__u16 port;
	__u8 proto;
	__u8 flags;
	__u64 dev;
	__u64 ino;
	char comm[COMM_LEN];
	char path[PATH_LEN];
};

/* Enforcement: whether a tenant may listen only on its allowed ports (value 1). */
struct policy {
	__u8 restrict_listen;
	__u8 pad[7];
};

#endif
