# Helpers for whole-stack tests that boot the image's root tree in systemd-nspawn (systemd as PID 1).
# Sourced, not executed. The tree is booted read-only, exactly as the appliance mounts root-a; /var is a host
# directory (the var partition's stand-in) so a test can inspect or tamper with state between boots.
# shellcheck shell=bash

NSPAWN_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# rampart-monitord loads eBPF programs, as on the appliance: nspawn keeps CAP_BPF and CAP_PERFMON out of the
# container and its seccomp filter refuses bpf(2) unless asked (CAP_NET_ADMIN comes with a private network).
BPF_OPTS=(--capability=CAP_BPF,CAP_PERFMON --system-call-filter=bpf)
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check "description" command... : PASS when the command succeeds
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        printf 'SKIPPED %s: needs root (systemd-nspawn)\n' "$1"
        printf '0 passed, 0 failed, 1 skipped\n'
        exit 0
    fi
}

# boot ROOTFS VARDIR LOG CHECK
# Boots ROOTFS with VARDIR as /var, runs tests/nspawn/check CHECK inside as a unit once the boot is done,
# then powers off. The check's output lands in VARDIR/lib/rampart-test/CHECK.out and its exit code in .rc.
boot() {
    local rootfs=$1 var=$2 log=$3 name=$4
    mkdir -p -- "$var"
    rm -rf -- "$var/lib/rampart-test"
    # --private-network: the container's firewall must never touch the host's tables (and nspawn grants CAP_NET_ADMIN
    # only with a network namespace of its own).
    # The test unit is a template bound into /run/systemd/system (runtime units: nspawn's fresh /run, so the
    # read-only tree is untouched); `systemd.wants=` on PID 1's command line pulls it into the boot transaction.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 timeout 120 script -qfec "$(printf '%q ' \
        systemd-nspawn --boot --read-only --register=no --keep-unit --quiet --resolv-conf=off --private-network \
        "${BPF_OPTS[@]}" --directory="$rootfs" \
        --bind="$var:/var" \
        --bind-ro="$NSPAWN_DIR/units:/run/systemd/system" \
        --bind-ro="$NSPAWN_DIR/check:/run/rampart-test-check" \
        -- "systemd.wants=rampart-test@$name.service")" /dev/null > "$log" 2>&1 || true
    if [[ ! -f $var/lib/rampart-test/$name.rc ]]; then
        printf 'boot for check %s produced no result; console log %s:\n' "$name" "$log"
        tail -n 40 -- "$log"
        return 1
    fi
}

# result NAME: the check's exit code
result_rc() { cat -- "$2/lib/rampart-test/$1.rc"; }
result_out() { cat -- "$2/lib/rampart-test/$1.out"; }

# --- Containers the host talks to while they run (network tests) ---------------------------------------------
# boot_bg NAME ROOTFS VARDIR LOG [nspawn options...]
# Boots ROOTFS in the background (same read-only tree + /var bind as `boot`), waits until systemd inside reports
# the boot finished, and sets BOX_LEADER to the container's PID 1 so `in_box` can run commands inside.
boot_bg() {
    local name=$1 rootfs=$2 var=$3 log=$4; shift 4
    mkdir -p -- "$var"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 script -qfec "$(printf '%q ' \
        systemd-nspawn --boot --read-only --register=no --keep-unit --quiet --resolv-conf=off "${BPF_OPTS[@]}" \
        --machine="$name" --directory="$rootfs" --bind="$var:/var" "$@")" /dev/null > "$log" 2>&1 &
    BOX_SCRIPT=$!
    find_box "$name" 90 || { echo "container $name did not start; console $log:"; tail -n 40 -- "$log"; return 1; }
    local state
    state=$(in_box timeout 90 systemctl is-system-running --wait 2>&1 || true)
    echo "container $name: system $state"
}

# find_box NAME SECONDS: sets BOX_LEADER to the PID 1 of the running container NAME (started by anyone).
find_box() {
    local name=$1 deadline=$((SECONDS + $2)) nspawn=""
    BOX_LEADER=""
    while ((SECONDS < deadline)); do
        nspawn=$(pgrep -f -- "^systemd-nspawn .*--machine=$name " | head -n1 || true)
        [[ -n $nspawn ]] && BOX_LEADER=$(pgrep -P "$nspawn" | head -n1 || true)
        # The leader is the container's PID 1 once it runs in its own mount namespace (not nspawn's fork).
        if [[ -n $BOX_LEADER && $(readlink "/proc/$BOX_LEADER/ns/mnt" 2>/dev/null) != "$(readlink /proc/self/ns/mnt)" ]] &&
            in_box test -S /run/systemd/private 2>/dev/null; then
            return 0
        fi
        BOX_LEADER=""
        sleep 0.2
    done
    return 1
}

# in_box CMD...: runs CMD inside the running container (all its namespaces: mounts, PIDs, network, its bus).
in_box() {
    nsenter --target "$BOX_LEADER" --all --setuid=0 --setgid=0 -- "$@"
}

# stop_box: powers the container off and waits for nspawn to exit.
stop_box() {
    [[ -n ${BOX_LEADER:-} ]] && in_box systemctl --no-block poweroff 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while kill -0 "$BOX_SCRIPT" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill "$BOX_SCRIPT" 2>/dev/null || true
    BOX_LEADER=""
}
