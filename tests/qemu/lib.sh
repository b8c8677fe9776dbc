# Reusable pieces for qemu tests of the Rampart disk image. Sourced, not executed.
#   qemu_init <test-name>         work dir, log dir, cleanup trap
#   qemu_disk_copy <raw>          throw-away copy of the image (the built image is never modified)
#   qemu_pick_accel               KVM if it really runs firmware here, else TCG (QEMU_ACCEL= overrides)
#   qemu_start <disk> [guest-port...]   boot with OVMF; forwards 127.0.0.1:<free port> -> guest port
#   qemu_wait_console <ere> <secs>      wait for a console line; fails if qemu dies
#   qemu_wait_count <ere> <n> <secs>    wait until <n> console lines match (the n-th boot, with QEMU_FOLLOW_REBOOTS)
#   qemu_powerdown [secs]         ACPI power button via QMP, wait for qemu to exit
#   disk_part_range <disk> <name> "offset size" in bytes of the partition labelled <name>
#   esp_ls / esp_cat              list / read files on the ESP with mtools (never mounts vfat)
#   var_extract <disk> <out.img>  copy the var partition to a file (for debugfs / journalctl)
#   var_debugfs <disk> <request>  one debugfs request on the var partition ('cat /machine-id')
#   var_journal <disk> <out>      the guest's persistent journal as text (short-monotonic)
#   t_pass / t_fail / t_summary   PASS/FAIL lines and the final count
# shellcheck shell=bash

QEMU_REPO_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
QEMU_LOG_DIR=${QEMU_LOG_DIR:-$QEMU_REPO_DIR/build/test-logs}
QEMU_PID=''
QEMU_QMP_PORT=''
declare -A QEMU_FWD=() # guest port -> host port
T_PASSED=0
T_FAILED=0

q_log() { printf '[%s] %s\n' "$QEMU_TEST" "$*" >&2; }
q_die() { printf '[%s] error: %s\n' "$QEMU_TEST" "$*" >&2; exit 2; }

qemu_need_tools() {
    local t missing=()
    for t in qemu-system-x86_64 sfdisk jq mdir mtype debugfs journalctl "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || q_die "missing host tools: ${missing[*]} (run: make deps)"
}

qemu_init() {
    QEMU_TEST=$1
    qemu_need_tools
    mkdir -p -- "$QEMU_LOG_DIR"
    QEMU_WORK=$(mktemp -d "${TMPDIR:-/tmp}/rampart-qemu-$QEMU_TEST.XXXXXX")
    QEMU_CONSOLE=$QEMU_LOG_DIR/$QEMU_TEST.console
    : > "$QEMU_CONSOLE"
    trap qemu_cleanup EXIT
}

qemu_cleanup() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    [[ -n ${QEMU_KEEP_WORK:-} ]] || rm -rf -- "$QEMU_WORK"
}

qemu_disk_copy() {
    local src=$1 dst=$QEMU_WORK/disk.raw
    [[ -e $src ]] || q_die "$src does not exist (run: make image)"
    cp --sparse=always -L -- "$src" "$dst"
    printf '%s\n' "$dst"
}

qemu_ovmf() {
    local d=/usr/share/OVMF
    [[ -f $d/OVMF_CODE_4M.fd && -f $d/OVMF_VARS_4M.fd ]] || q_die "OVMF not found in $d (package ovmf)"
    OVMF_CODE=$d/OVMF_CODE_4M.fd
    OVMF_VARS=$QEMU_WORK/OVMF_VARS.fd
    cp -- "$d/OVMF_VARS_4M.fd" "$OVMF_VARS"
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    q_die "no free TCP port found"
}

# KVM here may exist but fail on firmware ("failed to set MSR", "emulation failure"): run OVMF for a few
# seconds and keep KVM only if qemu is still alive and the firmware printed to the serial port.
qemu_pick_accel() {
    if [[ -n ${QEMU_ACCEL:-} ]]; then
        QEMU_ACCEL_USED=$QEMU_ACCEL
        return 0
    fi
    QEMU_ACCEL_USED=tcg
    [[ -r /dev/kvm && -w /dev/kvm ]] || { q_log "no /dev/kvm: using TCG"; return 0; }
    qemu_ovmf
    local probe=$QEMU_WORK/kvm-probe.console rc=0
    timeout 8 qemu-system-x86_64 -machine q35 -accel kvm -m 256 -display none -monitor none \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
        -drive "if=pflash,format=raw,unit=1,file=$OVMF_VARS" \
        -serial "file:$probe" > "$QEMU_WORK/kvm-probe.log" 2>&1 || rc=$?
    if ((rc == 124)) && [[ -s $probe ]]; then
        QEMU_ACCEL_USED=kvm
        q_log "KVM works: using it"
    else
        q_log "KVM unusable here (qemu exit $rc: $(head -c 200 "$QEMU_WORK/kvm-probe.log" | tr '\n' ' ')): using TCG"
    fi
}

# qemu_start <disk> [guest-port...]
qemu_start() {
    local disk=$1 fwd='' gp hp
    shift
    [[ -n ${QEMU_ACCEL_USED:-} ]] || qemu_pick_accel
    qemu_ovmf # fresh firmware variables for every boot of a fresh disk
    for gp in "$@"; do
        hp=$(free_port)
        QEMU_FWD[$gp]=$hp
        fwd+=",hostfwd=tcp:127.0.0.1:$hp-:$gp"
    done
    QEMU_QMP_PORT=$(free_port)
    local args=(
        -machine q35 -accel "$QEMU_ACCEL_USED" -cpu max -smp 2 -m 1536
        -display none -monitor none
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
        -drive "if=pflash,format=raw,unit=1,file=$OVMF_VARS"
        -drive "if=virtio,format=raw,file=$disk,cache=unsafe"
        -netdev "user,id=n0$fwd" -device virtio-net-pci,netdev=n0
        -serial "file:$QEMU_CONSOLE"
        -qmp "tcp:127.0.0.1:$QEMU_QMP_PORT,server=on,wait=off"
    )
    # A reboot ends qemu (so a test sees each boot on its own), unless the test follows a guest across reboots
    # (QEMU_FOLLOW_REBOOTS=1: an update's switch to the new slot and a failed version's fall back).
    [[ -n ${QEMU_FOLLOW_REBOOTS:-} ]] || args+=(-no-reboot)
    # One console file per boot: a later boot must never match a line the previous one printed.
    if ((${QEMU_BOOTS:-0} > 0)); then
        mv -- "$QEMU_CONSOLE" "${QEMU_CONSOLE%.console}.boot$QEMU_BOOTS.console"
    fi
    QEMU_BOOTS=$((${QEMU_BOOTS:-0} + 1))
    : > "$QEMU_CONSOLE"
    q_log "starting qemu, boot $QEMU_BOOTS (accel $QEMU_ACCEL_USED; console $QEMU_CONSOLE)"
    QEMU_START_TIME=$SECONDS
    qemu-system-x86_64 "${args[@]}" > "$QEMU_WORK/qemu.log" 2>&1 &
    QEMU_PID=$!
}

qemu_alive() { [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; }

# qemu_wait_console <extended regex> <timeout seconds>
qemu_wait_console() {
    local re=$1 deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        grep -aqE -- "$re" "$QEMU_CONSOLE" && return 0
        qemu_alive || { grep -aqE -- "$re" "$QEMU_CONSOLE" && return 0; q_log "qemu exited: $(tail -c 300 "$QEMU_WORK/qemu.log")"; return 1; }
        sleep 1
    done
    return 1
}

# qemu_wait_count <extended regex> <count> <timeout seconds>
qemu_wait_count() {
    local re=$1 n=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        (($(grep -acE -- "$re" "$QEMU_CONSOLE") >= n)) && return 0
        qemu_alive || return 1
        sleep 2
    done
    return 1
}

# Send one QMP command (JSON) after the capabilities handshake; prints the replies.
qemu_qmp() {
    local cmd=$1 line fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$QEMU_QMP_PORT" || return 1
    read -r -t 10 line <&"$fd" || true # greeting
    printf '%s\n' '{"execute":"qmp_capabilities"}' >&"$fd"
    read -r -t 10 line <&"$fd" || true
    printf '%s\n' "$cmd" >&"$fd"
    read -r -t 10 line <&"$fd" && printf '%s\n' "$line"
    exec {fd}>&-
}

# qemu_powerdown [timeout]: clean ACPI shutdown; returns non-zero (and kills qemu) on timeout.
qemu_powerdown() {
    local deadline=$((SECONDS + ${1:-120}))
    qemu_alive || return 0
    local next=0
    while ((SECONDS < deadline)); do
        # Press the button again every 30 s: a press before the guest's ACPI button driver and logind
        # are up is lost.
        if ((SECONDS >= next)); then
            qemu_qmp '{"execute":"system_powerdown"}' >/dev/null || q_log "QMP system_powerdown failed"
            next=$((SECONDS + 30))
        fi
        if ! qemu_alive; then
            wait "$QEMU_PID" 2>/dev/null || true
            QEMU_PID=''
            return 0
        fi
        sleep 1
    done
    q_log "guest did not power off in time; killing qemu"
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=''
    return 1
}

# disk_part_range <disk> <partition name>: prints "<byte offset> <byte size>".
disk_part_range() {
    local r
    r=$(sfdisk -J -- "$1" | jq -r --arg n "$2" \
        '.partitiontable as $t | $t.partitions[] | select(.name == $n) | "\(.start * ($t.sectorsize // 512)) \(.size * ($t.sectorsize // 512))"')
    [[ -n $r ]] || q_die "no partition named '$2' on $1"
    printf '%s\n' "$r"
}

# disk_part_number <disk> <partition name>: 1-based index, as the guest kernel numbers it.
disk_part_number() {
    sfdisk -J -- "$1" | jq -r --arg n "$2" '.partitiontable.partitions | to_entries[] | select(.value.name == $n) | .key + 1'
}

esp_image() { local off _; read -r off _ < <(disk_part_range "$1" esp); printf '%s@@%s' "$1" "$off"; }
# esp_ls <disk> <dir>: bare file names in an ESP directory.
esp_ls() { MTOOLS_SKIP_CHECK=1 mdir -b -i "$(esp_image "$1")" "::$2" 2>/dev/null | sed 's|.*/||'; }
esp_cat() { MTOOLS_SKIP_CHECK=1 mtype -i "$(esp_image "$1")" "::$2"; }

# var_extract <disk> <out file>: the var partition as its own file (no loop device needed).
var_extract() {
    local off size
    read -r off size < <(disk_part_range "$1" var)
    dd if="$1" of="$2" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$size" conv=sparse status=none
}

# var_debugfs <disk> <debugfs request>: run one read-only debugfs request on the var partition, e.g.
# 'cat /machine-id' or 'ls -l /lib/rampart' (paths are relative to /var).
var_debugfs() {
    local img=$QEMU_WORK/var-debugfs.img
    var_extract "$1" "$img"
    debugfs -R "$2" "$img" 2>/dev/null
    rm -f -- "$img"
}

# var_journal <disk> <out file>: the guest's persistent journal (every boot), short-monotonic text.
var_journal() {
    local img=$QEMU_WORK/var-journal.img dir=$QEMU_WORK/var-journal
    var_extract "$1" "$img"
    rm -rf -- "$dir"
    mkdir -p -- "$dir"
    debugfs -R "rdump /log/journal $dir" "$img" >/dev/null 2>&1 || true
    rm -f -- "$img"
    journalctl -D "$dir/journal" --no-pager -q -o short-monotonic > "$2" 2>/dev/null || true
}

t_pass() { printf 'PASS: %s\n' "$*"; T_PASSED=$((T_PASSED + 1)); }
t_fail() {
    printf 'FAIL: %s\n' "$*"
    T_FAILED=$((T_FAILED + 1))
    if [[ -z ${T_TAIL_SHOWN:-} ]]; then
        T_TAIL_SHOWN=1
        printf -- '--- last 40 console lines (%s) ---\n' "$QEMU_CONSOLE"
        tail -n 40 -- "$QEMU_CONSOLE" | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g'
        printf -- '--- end of console ---\n'
    fi
}
# t_check <description> <command...>: PASS if the command succeeds.
t_check() {
    local d=$1
    shift
    if "$@"; then t_pass "$d"; else t_fail "$d"; fi
}
t_summary() {
    printf '%d passed, %d failed\n' "$T_PASSED" "$T_FAILED"
    ((T_FAILED == 0))
}
