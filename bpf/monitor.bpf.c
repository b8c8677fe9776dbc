// SPDX-License-Identifier: GPL-2.0-or-later
/* rampart-monitord's programs, attached once at tenant.slice (cgroup programs run for every descendant cgroup)
 * plus the exec tracepoint. See crates/rampart-monitord/src/lib.rs for the design.
 *
 * Which tenant: each tenant slice is tenant.slice/tenant-<name>.slice, so every tenant process and socket has the
 * tenant slice as its ancestor at one fixed depth. That depth depends on where the cgroup tree sits (the host, a
 * container), so it is found once: the first time a program sees a tenant, it walks the ancestors until one is a
 * key of `stats` (userspace inserts exactly the tenant slices) and keeps the depth in `tenant_level`. From then on
 * it is one helper call and one hash lookup per packet.
 *
 * Counters live in per-CPU maps and never depend on events. Events (ring buffer) only announce things seen for
 * the first time; each one tried gets the CPU's next sequence number, and a failed reservation is counted in
 * `dropped` by kind, so userspace can tell how many it lost and see the gaps. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kernel.h"
#include "monitor.h"

#define MAX_LEVEL 16

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace before load, from libbpf's probe of the running kernel: whether the cgroup socket hooks may
 * call the current-task helpers for the pid and the command name (Linux 6.2 and later). On older kernels their
 * events carry neither; the verifier drops the branch, so the programs still load. */
const volatile __u8 sock_task_helpers = 0;

/* The depth of tenant slices in the cgroup tree; 0 until found. */
__u32 tenant_level = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tenant_stats);
} stats SEC(".maps");

/* Outbound connections by tenant, protocol and destination port (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct port_key);
	__type(value, __u64);
} outbound SEC(".maps");

/* Listening ports by tenant; the value is when it was first seen (ns since boot). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct port_key);
	__type(value, __u64);
} listening SEC(".maps");

/* Binaries each tenant ran. LRU: an evicted binary is announced again, never lost. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct bin_key);
	__type(value, __u8);
} binaries SEC(".maps");

/* Enforcement: (tenant, port) pairs refused for outbound connections; listening allowlist and its switch. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct port_key);
	__type(value, __u8);
} deny_outbound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct port_key);
	__type(value, __u8);
} allow_listen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct policy);
} policies SEC(".maps");

/* Who bound a TCP socket (tenant, pid, name), kept with the socket for the listen callback. */
struct sock_owner {
	__u64 tenant;
	__u32 pid;
	__u32 pad;
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_owner);
} owners SEC(".maps");

/* Global switches set by userspace: [0] = how many tenants have any enforcement (0: skip those lookups). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} switches SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Never written: it puts `struct event` into the object's BTF, so the skeleton's types (and the layout test of
 * crates/rampart-monitord/src/bpf.rs) see the ring buffer's record type. */
struct event event_layout = {};

/* Per CPU: the last sequence number handed out, and events lost by kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline int enforcing(void)
{
	__u32 zero = 0;
	__u32 *n = bpf_map_lookup_elem(&switches, &zero);
	return n && *n;
}

/* ---- which tenant ------------------------------------------------------------------------------------------ */

/* The stats of the tenant the current task belongs to, with its slice's cgroup id in *tenant (NULL: not a
 * tenant's task). */
static __always_inline struct tenant_stats *current_tenant(__u64 *tenant)
{
	__u32 level = tenant_level;
	if (level) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		*tenant = id;
		return bpf_map_lookup_elem(&stats, &id);
	}
	for (__u32 i = 1; i < MAX_LEVEL; i++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(i);
		if (!id)
			return 0;
		struct tenant_stats *s = bpf_map_lookup_elem(&stats, &id);
		if (s) {
			tenant_level = i;
			*tenant = id;
			return s;
		}
	}
	return 0;
}

/* The stats of the tenant whose socket the packet belongs to (NULL: not a tenant's). */
static __always_inline struct tenant_stats *skb_tenant(struct __sk_buff *skb)
{
	__u32 level = tenant_level;
	if (level) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);
		return bpf_map_lookup_elem(&stats, &id);
	}
	for (__u32 i = 1; i < MAX_LEVEL; i++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, i);
		if (!id)
			return 0;
		struct tenant_stats *s = bpf_map_lookup_elem(&stats, &id);
		if (s) {
			tenant_level = i;
			return s;
		}
	}
	return 0;
}

/* ---- events -------------------------------------------------------------------------------------------------- */

/* Reserves an event of `kind` with its header filled, or counts the loss. `task`: the program may call the
 * current-task helpers (tracing programs always; cgroup socket hooks when `sock_task_helpers`). */
static __always_inline struct event *event_start(__u32 kind, __u64 tenant, int task)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&seq, &zero);
	if (!s)
		return 0;
	*s += 1;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u64 *d = bpf_map_lookup_elem(&dropped, &kind);
		if (d)
			*d += 1;
		return 0;
	}
	e->kind = kind;
	e->cpu = bpf_get_smp_processor_id();
	e->seq = *s;
	e->cgroup = tenant;
	e->time_ns = bpf_ktime_get_ns();
	e->pid = 0;
	e->port = 0;
	e->proto = 0;
	e->flags = 0;
	e->dev = 0;
	e->ino = 0;
	e->comm[0] = 0;
	if (task) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	e->path[0] = 0;
	return e;
}

/* ---- traffic ------------------------------------------------------------------------------------------------- */

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	struct tenant_stats *s = skb_tenant(skb);
	if (s) {
		s->rx_bytes += skb->len;
		s->rx_packets += 1;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	struct tenant_stats *s = skb_tenant(skb);
	if (s) {
		s->tx_bytes += skb->len;
		s->tx_packets += 1;
	}
	return 1;
}

/* ---- outbound connections ------------------------------------------------------------------------------------ */

/* Counts a connection (or an addressed UDP send) to `port`; announces a first-seen port; 0 refuses it. The common
 * case — a port this tenant used before, no enforcement anywhere — is three lookups and no write but the counts. */
static __always_inline int outbound_to(__u16 port, __u8 proto)
{
	__u64 tenant = 0;
	struct tenant_stats *s = current_tenant(&tenant);
	if (!s)
		return 1;
	s->connects += 1;
	struct port_key key = { .cgroup = tenant, .port = port, .proto = proto };
	__u64 *n = bpf_map_lookup_elem(&outbound, &key);
	if (n) {
		*n += 1;
	} else {
		__u64 one = 1;
		/* Two CPUs may race to insert: only the one that succeeds announces it; the other counts. */
		if (bpf_map_update_elem(&outbound, &key, &one, BPF_NOEXIST) == 0) {
			struct event *e = event_start(EV_CONNECT, tenant, sock_task_helpers);
			if (e) {
				e->port = port;
				e->proto = proto;
				bpf_ringbuf_submit(e, 0);
			}
		} else {
			n = bpf_map_lookup_elem(&outbound, &key);
			if (n)
				*n += 1;
		}
	}
	if (enforcing() && bpf_map_lookup_elem(&deny_outbound, &key))
		return 0;
	return 1;
}

static __always_inline __u8 sock_proto(struct bpf_sock_addr *ctx)
{
	return ctx->protocol == IPPROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	return outbound_to(bpf_ntohs((__u16)ctx->user_port), sock_proto(ctx));
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	return outbound_to(bpf_ntohs((__u16)ctx->user_port), sock_proto(ctx));
}

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx)
{
	return outbound_to(bpf_ntohs((__u16)ctx->user_port), IPPROTO_UDP);
}

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx)
{
	return outbound_to(bpf_ntohs((__u16)ctx->user_port), IPPROTO_UDP);
}

/* ---- listening ----------------------------------------------------------------------------------------------- */

/* The event announcing a listening port the tenant was not seen on before (filled but not submitted, so the caller
 * can add to it), or NULL: seen before, or the ring buffer is full (counted). */
static __always_inline struct event *first_listen(__u64 tenant, __u16 port, __u8 proto, int task)
{
	struct port_key key = { .cgroup = tenant, .port = port, .proto = proto };
	__u64 now = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&listening, &key, &now, BPF_NOEXIST) != 0)
		return 0;
	struct event *e = event_start(EV_LISTEN, tenant, task);
	if (e) {
		e->port = port;
		e->proto = proto;
	}
	return e;
}

/* Whether the tenant may bind `port` (enforcement off: always). */
static __always_inline int may_bind(__u64 tenant, __u16 port, __u8 proto)
{
	if (!enforcing())
		return 1;
	struct policy *p = bpf_map_lookup_elem(&policies, &tenant);
	if (!p || !p->restrict_listen)
		return 1;
	struct port_key key = { .cgroup = tenant, .port = port, .proto = 0 };
	return bpf_map_lookup_elem(&allow_listen, &key) ? 1 : 0;
}

static __always_inline int post_bind(struct bpf_sock *sk)
{
	__u16 port = sk->src_port;
	if (!port)
		return 1;
	__u64 tenant = 0;
	if (!current_tenant(&tenant))
		return 1;
	__u8 proto = sk->protocol == IPPROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	if (!may_bind(tenant, port, proto))
		return 0;
	/* A bound UDP socket receives: that is its listening. TCP is announced at listen() (below), which needs to
	 * know whose socket it is. */
	if (proto == IPPROTO_UDP) {
		struct event *e = first_listen(tenant, port, proto, sock_task_helpers);
		if (e)
			bpf_ringbuf_submit(e, 0);
	} else {
		struct sock_owner *owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (owner) {
			owner->tenant = tenant;
			if (sock_task_helpers) {
				owner->pid = bpf_get_current_pid_tgid() >> 32;
				bpf_get_current_comm(owner->comm, sizeof(owner->comm));
			}
		}
	}
	return 1;
}

SEC("cgroup/post_bind4")
int post_bind4(struct bpf_sock *sk)
{
	return post_bind(sk);
}

SEC("cgroup/post_bind6")
int post_bind6(struct bpf_sock *sk)
{
	return post_bind(sk);
}

/* TCP listen(). The sockops callback for it runs in the listening task, but on Linux 6.1 (the image's kernel)
 * sockops programs may not ask for the current task's cgroup, pid or name. So post_bind, which may, leaves the
 * socket's owner in its local storage, and the listen callback reads it back. A socket that listens without being
 * bound first (the kernel picks a random port) is not seen; servers bind. */
SEC("sockops")
int sock_ops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return 1;
	struct sock_owner *owner = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (!owner || !owner->tenant)
		return 1;
	struct event *e = first_listen(owner->tenant, (__u16)skops->local_port, IPPROTO_TCP, 0);
	if (e) {
		e->pid = owner->pid;
		__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	return 1;
}

/* ---- executions ---------------------------------------------------------------------------------------------- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	__u64 tenant = 0;
	struct tenant_stats *s = current_tenant(&tenant);
	if (!s)
		return 0;
	s->execs += 1;

	struct file *file = bprm->file;
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);
	unsigned long magic = BPF_CORE_READ(file, f_path.mnt, mnt_sb, s_magic);
	unsigned short dir_mode = BPF_CORE_READ(dentry, d_parent, d_inode, i_mode);
	__u8 flags = 0;
	if (magic == TMPFS_MAGIC || magic == RAMFS_MAGIC)
		flags |= EXEC_TMPFS;
	if (dir_mode & S_IWOTH)
		flags |= EXEC_WORLD_WRITABLE;
	if (BPF_CORE_READ(inode, __i_nlink) == 0)
		flags |= EXEC_DELETED;
	if (flags)
		s->flagged_execs += 1;

	struct bin_key key = {
		.cgroup = tenant,
		.dev = BPF_CORE_READ(file, f_path.mnt, mnt_sb, s_dev),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	__u8 one = 1;
	if (bpf_map_update_elem(&binaries, &key, &one, BPF_NOEXIST) != 0)
		return 0;
	struct event *e = event_start(EV_EXEC, tenant, 1);
	if (!e)
		return 0;
	e->flags = flags;
	e->dev = key.dev;
	e->ino = key.ino;
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
