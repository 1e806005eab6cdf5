# shellcheck shell=bash
# scratch-btrfs.sh - a throw-away btrfs on a loop file, for workloads, integration tests and `demo`.
#
# Source it, then:
#     scratch_btrfs_require || exit 77          # root, loop devices, btrfs, mkfs.btrfs? (prints why not)
#     trap scratch_btrfs_cleanup EXIT INT TERM  # safe to call any number of times
#     scratch_btrfs_setup [SIZE]                # default 2G (a sparse file)
# After a successful setup these are set (and exported):
#     SCRATCH_DIR    private directory /tmp/<prefix>-XXXXXX holding everything below
#     SCRATCH_IMG    the loop file
#     SCRATCH_LOOP   the loop device (/dev/loopN) this setup attached
#     SCRATCH_MNT    the mount point
#     SCRATCH_NOCOW  a directory on it with the nocow attribute (chattr +C): files created in it
#                    get NODATACOW|NODATASUM, so O_DIRECT writes really go direct
#     SCRATCH_FSID   the filesystem UUID (what btrfs tracepoints print and the tool calls `fs`)
# Knobs (environment, read at setup time):
#     SCRATCH_PREFIX       name prefix, default "bdt-scratch"; use a unique one per user, e.g. bdt-test-em
#     SCRATCH_MKFS_OPTS    extra mkfs.btrfs options (default: none)
#     SCRATCH_MOUNT_OPTS   mount options (default: none)
#
# Cleanup only touches what this shell's setup created: it unmounts SCRATCH_MNT, detaches SCRATCH_LOOP
# (only if it is still backed by SCRATCH_IMG) and removes SCRATCH_DIR. It never looks at other mounts or
# loop devices. It does not kill processes: stop your own background jobs before (or in your trap
# before calling it); a busy mount is retried for a few seconds and then lazily unmounted.

_scratch_log() { printf 'scratch-btrfs: %s\n' "$*" >&2; }

# Returns 0 when a scratch btrfs can be made here, 1 otherwise (with the reason on stderr).
scratch_btrfs_require() {
    if [[ $(id -u) -ne 0 ]]; then _scratch_log "needs root"; return 1; fi
    local t
    for t in losetup mkfs.btrfs mount umount chattr blkid; do
        if ! command -v "$t" >/dev/null 2>&1; then _scratch_log "missing tool: $t"; return 1; fi
    done
    if ! grep -qw btrfs /proc/filesystems && ! modprobe btrfs 2>/dev/null; then
        _scratch_log "kernel has no btrfs (not in /proc/filesystems, modprobe failed)"; return 1
    fi
    if [[ ! -e /dev/loop-control ]] && ! modprobe loop 2>/dev/null; then
        _scratch_log "no loop device support (/dev/loop-control missing)"; return 1
    fi
    return 0
}

# scratch_btrfs_setup [SIZE]  -> 0 on success; on failure cleans up what it made and returns 1.
scratch_btrfs_setup() {
    local size=${1:-2G}
    local prefix=${SCRATCH_PREFIX:-bdt-scratch}
    if [[ -n ${SCRATCH_DIR:-} && -d ${SCRATCH_DIR} ]]; then
        _scratch_log "already set up in $SCRATCH_DIR (call scratch_btrfs_cleanup first)"; return 1
    fi
    SCRATCH_DIR=$(mktemp -d "/tmp/${prefix}-XXXXXX") || { _scratch_log "mktemp failed"; return 1; }
    SCRATCH_IMG=$SCRATCH_DIR/img
    SCRATCH_MNT=$SCRATCH_DIR/mnt
    SCRATCH_LOOP=
    SCRATCH_NOCOW=
    SCRATCH_FSID=
    export SCRATCH_DIR SCRATCH_IMG SCRATCH_MNT SCRATCH_LOOP SCRATCH_NOCOW SCRATCH_FSID
    mkdir -p "$SCRATCH_MNT"
    if ! truncate -s "$size" "$SCRATCH_IMG"; then
        _scratch_log "cannot create $size loop file $SCRATCH_IMG"; scratch_btrfs_cleanup; return 1
    fi
    # mkfs on the plain file first: no loop device is held if mkfs fails.
    # shellcheck disable=SC2086
    if ! mkfs.btrfs -q -f ${SCRATCH_MKFS_OPTS:-} "$SCRATCH_IMG" >"$SCRATCH_DIR/mkfs.log" 2>&1; then
        _scratch_log "mkfs.btrfs failed: $(tail -n 3 "$SCRATCH_DIR/mkfs.log")"; scratch_btrfs_cleanup; return 1
    fi
    if ! SCRATCH_LOOP=$(losetup --find --show "$SCRATCH_IMG" 2>"$SCRATCH_DIR/losetup.log"); then
        SCRATCH_LOOP=
        _scratch_log "losetup failed: $(cat "$SCRATCH_DIR/losetup.log")"; scratch_btrfs_cleanup; return 1
    fi
    export SCRATCH_LOOP
    local opts=()
    [[ -n ${SCRATCH_MOUNT_OPTS:-} ]] && opts=(-o "$SCRATCH_MOUNT_OPTS")
    if ! mount -t btrfs "${opts[@]}" "$SCRATCH_LOOP" "$SCRATCH_MNT" 2>"$SCRATCH_DIR/mount.log"; then
        _scratch_log "mount failed: $(cat "$SCRATCH_DIR/mount.log")"; scratch_btrfs_cleanup; return 1
    fi
    SCRATCH_NOCOW=$SCRATCH_MNT/nocow
    if ! mkdir "$SCRATCH_NOCOW" || ! chattr +C "$SCRATCH_NOCOW"; then
        _scratch_log "cannot make nocow directory"; scratch_btrfs_cleanup; return 1
    fi
    SCRATCH_FSID=$(blkid -s UUID -o value "$SCRATCH_IMG" 2>/dev/null || true)
    export SCRATCH_NOCOW SCRATCH_FSID
    return 0
}

# Safe to call twice, from traps, and after a partial setup.
scratch_btrfs_cleanup() {
    local rc=$?   # keep the caller's status when used as an EXIT trap
    local dir=${SCRATCH_DIR:-}
    [[ -z $dir ]] && return $rc
    case $dir in /tmp/*) ;; *) _scratch_log "refusing to clean unexpected SCRATCH_DIR=$dir"; return $rc;; esac
    if [[ -n ${SCRATCH_MNT:-} ]] && mountpoint -q "$SCRATCH_MNT" 2>/dev/null; then
        local _
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            umount "$SCRATCH_MNT" 2>/dev/null && break
            sleep 0.5
        done
        if mountpoint -q "$SCRATCH_MNT" 2>/dev/null; then
            _scratch_log "$SCRATCH_MNT still busy, unmounting lazily"
            umount -l "$SCRATCH_MNT" 2>/dev/null || true
        fi
    fi
    if [[ -n ${SCRATCH_LOOP:-} ]]; then
        # Detach only if the device is still ours (backed by our image).
        local backing
        backing=$(losetup -n -O BACK-FILE "$SCRATCH_LOOP" 2>/dev/null | sed 's/[[:space:]]*$//')
        if [[ $backing == "$SCRATCH_IMG"* ]]; then
            losetup -d "$SCRATCH_LOOP" 2>/dev/null || _scratch_log "could not detach $SCRATCH_LOOP"
        fi
    fi
    if [[ -n ${SCRATCH_MNT:-} ]] && ! mountpoint -q "$SCRATCH_MNT" 2>/dev/null; then
        rm -rf --one-file-system "$dir"
    else
        _scratch_log "leaving $dir in place (still mounted)"
    fi
    SCRATCH_DIR='' SCRATCH_IMG='' SCRATCH_MNT='' SCRATCH_LOOP='' SCRATCH_NOCOW='' SCRATCH_FSID=''
    return $rc
}

# bdt_root_lock: root tests and benchmarks share the kernel, loop devices and bpffs, so only one
# runs at a time on a machine. Takes an exclusive flock on fd 9 (released when the process exits);
# waits up to 30 min, saying what it waits for. BDT_ROOT_LOCK overrides the lock file.
bdt_root_lock() {
    local lock=${BDT_ROOT_LOCK:-/run/lock/btrfs-dio-trace-root.lock}
    mkdir -p "${lock%/*}" 2>/dev/null   # a bare system (the VM tier's guest) has no /run/lock
    exec 9>"$lock" || { echo "cannot open lock file $lock" >&2; return 1; }
    flock -n 9 && return 0
    echo "waiting for $lock (another root test or benchmark is running)" >&2
    flock -w 1800 9 || { echo "timed out after 30 min waiting for $lock" >&2; return 1; }
}
