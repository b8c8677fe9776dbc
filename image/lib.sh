# Shared helpers for the image scripts. Sourced, not executed.
# shellcheck shell=bash

IMAGE_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$IMAGE_DIR/.." && pwd)
SUITE=bookworm
MIRROR=${RAMPART_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${RAMPART_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# One-line sources for mmdebstrap: the point release, its updates and security.
SOURCES=(
    "deb $MIRROR $SUITE main"
    "deb $MIRROR $SUITE-updates main"
    "deb $SECURITY_MIRROR $SUITE-security main"
)
LOCK=${RAMPART_LOCK:-$IMAGE_DIR/packages.lock} # override only to test the build's lock checks

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 must run as root (mmdebstrap, chroot, loop-free disk assembly)"
}

need_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || die "missing host tools: ${missing[*]} (run: make deps, see image/host-packages)"
}

# Print the package names of image/packages (comments and blanks stripped).
read_packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$IMAGE_DIR/packages"
}

# Print the name=version lines of the lock (comments stripped).
read_lock() {
    [[ -s $LOCK ]] || die "$LOCK is missing or empty; run image/lock-refresh"
    sed -e '/^#/d' -e '/^$/d' "$LOCK"
}

# SOURCE_DATE_EPOCH: the caller's, else the last commit's time, else a fixed value.
source_date_epoch() {
    if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
        printf '%s\n' "$SOURCE_DATE_EPOCH"
    elif git -C "$REPO_DIR" rev-parse --git-dir >/dev/null 2>&1 && git -C "$REPO_DIR" log -1 --format=%ct >/dev/null 2>&1; then
        git -C "$REPO_DIR" log -1 --format=%ct
    else
        printf 'warning: not a git checkout with commits; SOURCE_DATE_EPOCH falls back to 1700000000\n' >&2
        printf '1700000000\n'
    fi
}

# The release version: [workspace.package] version in the top-level Cargo.toml.
workspace_version() {
    local v
    v=$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' "$REPO_DIR/Cargo.toml" | head -n1)
    [[ -n $v ]] || die "no [workspace.package] version in $REPO_DIR/Cargo.toml"
    printf '%s\n' "$v"
}

# mmdebstrap arguments that keep downloaded .debs in $1 across builds.
deb_cache_args() {
    local cache=$1
    printf '%s\n' \
        --skip=essential/unlink \
        "--setup-hook=mkdir -p \"\$1\"/var/cache/apt/archives" \
        "--setup-hook=sync-in $cache /var/cache/apt/archives/" \
        "--customize-hook=sync-out /var/cache/apt/archives $cache"
}

# Parse image/partitions into PART_* arrays (index = disk order) and LABEL_ID / EXT4_HASH_SEED.
load_partitions() {
    local file="$IMAGE_DIR/partitions" kw name size type uuid fs fsid rest
    PART_NAME=() PART_MIB=() PART_TYPE=() PART_UUID=() PART_FS=() PART_FSID=() PART_START_MIB=()
    LABEL_ID='' EXT4_HASH_SEED=''
    local start=1
    while read -r kw name size type uuid fs fsid rest; do
        case $kw in
            '' | '#'*) continue ;;
            label-id) LABEL_ID=$name ;;
            ext4-hash-seed) EXT4_HASH_SEED=$name ;;
            partition)
                [[ -n $fsid && -z $rest && $size =~ ^[0-9]+$ ]] || die "$file: bad partition line for '$name'"
                PART_NAME+=("$name") PART_MIB+=("$size") PART_TYPE+=("$type") PART_UUID+=("$uuid")
                PART_FS+=("$fs") PART_FSID+=("$fsid") PART_START_MIB+=("$start")
                start=$((start + size))
                ;;
            *) die "$file: unknown keyword '$kw'" ;;
        esac
    done < "$file"
    [[ -n $LABEL_ID && -n $EXT4_HASH_SEED ]] || die "$file: label-id and ext4-hash-seed are required"
    DISK_MIB=$((start + 1)) # + 1 MiB for the backup GPT at the end
}

# Index of the partition named $1 in the PART_* arrays.
part_index() {
    local i
    for i in "${!PART_NAME[@]}"; do
        [[ ${PART_NAME[i]} == "$1" ]] && { printf '%s\n' "$i"; return 0; }
    done
    die "image/partitions has no partition named '$1'"
}

# erofs_length <image file>: the bytes the erofs filesystem at the start of the file spans (its superblock at
# 1024: magic 0xE0F5E1E2, log2 of the block size at +12, block count at +36, little-endian), which is what an
# update writes into a slot: the partition's zero padding after it is never read. Fails on anything else.
erofs_length() {
    local magic bits blocks
    magic=$(od -An -tx4 --endian=little -j1024 -N4 -- "$1" | tr -d ' ')
    [[ $magic == e0f5e1e2 ]] || die "$1 does not start with an erofs filesystem (magic '$magic')"
    bits=$(od -An -tu1 -j1036 -N1 -- "$1" | tr -d ' ')
    blocks=$(od -An -tu4 --endian=little -j1060 -N4 -- "$1" | tr -d ' ')
    ((bits >= 9 && bits <= 16 && blocks > 0)) || die "$1: implausible erofs superblock (block size 2^$bits, $blocks blocks)"
    printf '%s\n' $((blocks << bits))
}
