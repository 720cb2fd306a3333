#!/bin/sh
# ecs-crashdiag: is this instance ready for its next crash? (Cloud Assistant, read-only)
#
# POSIX sh (dash, busybox ash, bash). Changes nothing on the guest and writes no file:
# it reads a few small files and asks systemctl and df, every external command bounded
# by `timeout` when it exists and every file read bounded by `head -c`. It prints raw
# facts in a line protocol; judging them (ok / warn / fail, the fix, exposure to known
# issues) happens in crashdiag.reports.readiness. Format: docs/PIPELINE.md, "The guest
# audit script".
#
#     CRASHDIAG-AUDIT-BEGIN 1
#     <name>=<value>        one line each, at most 1024 bytes, no CR/LF in a value
#     CRASHDIAG-AUDIT-END
#
# The script takes no parameters: nothing from the caller reaches the shell.
set -u

LC_ALL=C
export LC_ALL
umask 077
# Cloud Assistant mixes stderr into the output: keep it to our lines only.
exec 2>/dev/null

NL='
'
CR=$(printf '\r')
OLDIFS=$IFS

# The guest's filesystem root: tests point CRASHDIAG_ROOT at a fixture tree. With a root
# set, what would come from systemctl or df is read from run/crashdiag-fixture/ instead.
ROOT=${CRASHDIAG_ROOT:-}
while :; do
    case $ROOT in */) ROOT=${ROOT%/} ;; *) break ;; esac
done
case $ROOT in '' | /*) ;; *) ROOT=./$ROOT ;; esac
FIX=$ROOT/run/crashdiag-fixture

# have, run_t, is_num, clean, kv and unquote are the same in collect-crash-log.sh: each script is
# sent alone, so each carries them (tests/test_audit.py keeps the two copies equal).
have() { command -v "$1" >/dev/null 2>&1; }

HAVE_TIMEOUT=no
if have timeout && timeout 5 true; then HAVE_TIMEOUT=yes; fi
run_t() {  # run_t SECONDS command...: bounded when `timeout` exists
    rt_secs=$1
    shift
    if [ "$HAVE_TIMEOUT" = yes ]; then timeout "$rt_secs" "$@"; else "$@"; fi
}
HAVE_HEAD=no
have head && HAVE_HEAD=yes

is_num() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    return 0
}

clean() {  # $1 -> CLEAN: one line (CR and LF become spaces), at most 1024 bytes
    CLEAN=$1
    while :; do
        case $CLEAN in
            *"$NL"*) CLEAN=${CLEAN%%"$NL"*}' '${CLEAN#*"$NL"} ;;
            *"$CR"*) CLEAN=${CLEAN%%"$CR"*}' '${CLEAN#*"$CR"} ;;
            *) break ;;
        esac
    done
    if [ "${#CLEAN}" -gt 1024 ]; then CLEAN=$(printf '%.1024s' "$CLEAN"); fi
}

kv() {  # print name=value, the value made single-line
    clean "$2"
    printf '%s=%s\n' "$1" "$CLEAN"
}

first_line() {  # $1 file -> FL: its first line, from at most 4 KB (empty when missing)
    FL=
    [ -f "$1" ] && [ -r "$1" ] || return 0
    if [ "$HAVE_HEAD" = yes ]; then
        FL=$(run_t 5 head -c 4096 "$1" | { IFS= read -r l || :; printf '%s' "${l:-}"; }) || FL=
    else
        IFS= read -r FL <"$1" || :
    fi
}

unquote() {  # $1 -> UQ without one level of surrounding quotes
    UQ=$1
    case $UQ in
        \"*\") UQ=${UQ#\"}; UQ=${UQ%\"} ;;
        \'*\') UQ=${UQ#\'}; UQ=${UQ%\'} ;;
    esac
}

# read_lines FILE MAX_BYTES: the file's first MAX_BYTES bytes on stdout (nothing if missing)
read_lines() {
    [ -f "$1" ] && [ -r "$1" ] || return 0
    if [ "$HAVE_HEAD" = yes ]; then run_t 5 head -c "$2" "$1"; else cat "$1"; fi
}

printf 'CRASHDIAG-AUDIT-BEGIN 1\n'

# --- system --------------------------------------------------------------------------------

first_line "$ROOT/proc/sys/kernel/osrelease"
UNAME_R=$FL
if [ -z "$UNAME_R" ] && [ -z "$ROOT" ] && have uname; then UNAME_R=$(run_t 5 uname -r) || UNAME_R=; fi
kv kernel.release "$UNAME_R"
first_line "$ROOT/proc/version"
kv kernel.version "$FL"

OS_ID='' OS_LIKE='' OS_VERSION_ID='' OS_NAME=''
OSR=$ROOT/etc/os-release
[ -f "$OSR" ] || OSR=$ROOT/usr/lib/os-release
TEXT=$(read_lines "$OSR" 8192)
IFS=$NL
set -f
for line in $TEXT; do
    IFS=$OLDIFS
    case $line in
        ID=*) unquote "${line#ID=}"; OS_ID=$UQ ;;
        ID_LIKE=*) unquote "${line#ID_LIKE=}"; OS_LIKE=$UQ ;;
        VERSION_ID=*) unquote "${line#VERSION_ID=}"; OS_VERSION_ID=$UQ ;;
        PRETTY_NAME=*) unquote "${line#PRETTY_NAME=}"; OS_NAME=$UQ ;;
    esac
done
IFS=$OLDIFS
set +f
kv os.id "$OS_ID"
kv os.id_like "$OS_LIKE"
kv os.version_id "$OS_VERSION_ID"
kv os.name "$OS_NAME"

MEM_TOTAL_KB=
TEXT=$(read_lines "$ROOT/proc/meminfo" 8192)
IFS=$NL
set -f
for line in $TEXT; do
    IFS=$OLDIFS
    # shellcheck disable=SC2086
    set -- $line
    if [ "${1:-}" = MemTotal: ]; then MEM_TOTAL_KB=${2:-}; break; fi
done
IFS=$OLDIFS
set +f
kv mem.total_kb "$MEM_TOTAL_KB"

# --- crash kernel memory -------------------------------------------------------------------

first_line "$ROOT/proc/cmdline"
CRASHKERNEL=
set -f
for w in $FL; do
    case $w in crashkernel=*) CRASHKERNEL=${w#crashkernel=} ;; esac
done
set +f
kv crashkernel "$CRASHKERNEL"
kv crashkernel.present "$(case $FL in *crashkernel=*) echo yes ;; *) echo no ;; esac)"
first_line "$ROOT/sys/kernel/kexec_crash_size"
kv kexec.crash_size "$FL"
first_line "$ROOT/sys/kernel/kexec_crash_loaded"
kv kexec.crash_loaded "$FL"

# --- the kdump service ---------------------------------------------------------------------
# kdump (kexec-tools: RHEL family, Alibaba Cloud Linux, SUSE) or kdump-tools (Debian,
# Ubuntu): whichever has a unit file or an init script.

SVC=
for s in kdump kdump-tools; do
    for d in /usr/lib/systemd/system /lib/systemd/system /etc/systemd/system /etc/init.d; do
        if [ -f "$ROOT$d/$s.service" ] || [ -f "$ROOT$d/$s" ]; then SVC=$s; break 2; fi
    done
done
# No unit file found (an unusual layout, an image without systemd units in the usual
# places): the package's own configuration file still names the service.
if [ -z "$SVC" ]; then
    if [ -f "$ROOT/etc/default/kdump-tools" ]; then SVC=kdump-tools; elif [ -f "$ROOT/etc/kdump.conf" ]; then SVC=kdump; fi
fi
kv kdump.service "$SVC"
ENABLED=unknown
ACTIVE=unknown
if [ -z "$SVC" ]; then
    ENABLED=not-found
    ACTIVE=not-found
elif [ -n "$ROOT" ]; then
    first_line "$FIX/kdump-enabled"
    ENABLED=${FL:-unknown}
    first_line "$FIX/kdump-active"
    ACTIVE=${FL:-unknown}
elif have systemctl; then
    ENABLED=$(run_t 5 systemctl is-enabled "$SVC" | { IFS= read -r l || :; printf '%s' "${l:-}"; }) || :
    ACTIVE=$(run_t 5 systemctl is-active "$SVC" | { IFS= read -r l || :; printf '%s' "${l:-}"; }) || :
    [ -n "$ENABLED" ] || ENABLED=unknown
    [ -n "$ACTIVE" ] || ACTIVE=unknown
fi
kv kdump.enabled "$ENABLED"
kv kdump.active "$ACTIVE"

# Where the dump goes: /etc/kdump.conf (path, and a remote or raw target) or
# /etc/default/kdump-tools (KDUMP_COREDIR, NFS=, SSH=).
KPATH=/var/crash
KTARGET=local
if [ -f "$ROOT/etc/kdump.conf" ]; then
        TEXT=$(read_lines "$ROOT/etc/kdump.conf" 65536)
    IFS=$NL
    set -f
    for line in $TEXT; do
        IFS=$OLDIFS
        set -f
        # shellcheck disable=SC2086
        set -- $line
        set +f
        case ${1:-} in
            path) [ -n "${2:-}" ] && KPATH=$2 ;;
            nfs | nfs4 | ssh | raw) KTARGET=$1 ;;
            ext2 | ext3 | ext4 | xfs | btrfs | minix) KTARGET=fs:$1 ;;
        esac
    done
    IFS=$OLDIFS
    set +f
elif [ -f "$ROOT/etc/default/kdump-tools" ]; then
        TEXT=$(read_lines "$ROOT/etc/default/kdump-tools" 65536)
    IFS=$NL
    set -f
    for line in $TEXT; do
        IFS=$OLDIFS
        case $line in
            KDUMP_COREDIR=*) unquote "${line#KDUMP_COREDIR=}"; [ -n "$UQ" ] && KPATH=$UQ ;;
            NFS=?*) KTARGET=nfs ;;
            SSH=?*) KTARGET=ssh ;;
        esac
    done
    IFS=$OLDIFS
    set +f
fi
case $KPATH in /*) ;; *) KPATH=/var/crash ;; esac
kv kdump.path "$KPATH"
kv kdump.target "$KTARGET"

# Free space where the dump lands: df -Pk of the deepest existing folder on its path.
DF=
if [ -n "$ROOT" ]; then
    DF=$(read_lines "$FIX/df-kdump" 4096)
elif have df; then
    d=$KPATH
    while [ ! -d "$d" ]; do
        d=${d%/*}
        [ -n "$d" ] || { d=/; break; }
    done
    DF=$(run_t 10 df -Pk "$d")
fi
DF_AVAIL='' DF_SIZE='' DF_MOUNT=''
IFS=$NL
set -f
for line in $DF; do  # "Filesystem 1024-blocks Used Available Capacity Mounted-on"
    IFS=$OLDIFS
    # shellcheck disable=SC2086
    set -- $line
    case ${2:-} in '' | *[!0-9]*) continue ;; esac
    DF_SIZE=$2 DF_AVAIL=${4:-} DF_MOUNT=${6:-}
done
IFS=$OLDIFS
set +f
kv dump.avail_kb "$DF_AVAIL"
kv dump.size_kb "$DF_SIZE"
kv dump.mount "$DF_MOUNT"

# The tools that turn memory into a dump and a dmesg.
for tool in makedumpfile vmcore-dmesg kdumpctl kdump-config; do
    where=
    for d in /usr/sbin /sbin /usr/bin /bin /usr/local/sbin; do
        if [ -f "$ROOT$d/$tool" ] && [ -x "$ROOT$d/$tool" ]; then where=$d/$tool; break; fi
    done
    kv "tool.$tool" "$where"
done

# --- panic knobs ---------------------------------------------------------------------------

for pair in vm.panic_on_oom:vm/panic_on_oom kernel.panic:kernel/panic \
    kernel.panic_on_oops:kernel/panic_on_oops kernel.softlockup_panic:kernel/softlockup_panic \
    kernel.hung_task_panic:kernel/hung_task_panic kernel.hung_task_timeout_secs:kernel/hung_task_timeout_secs \
    kernel.unknown_nmi_panic:kernel/unknown_nmi_panic kernel.panic_on_warn:kernel/panic_on_warn \
    kernel.watchdog_thresh:kernel/watchdog_thresh; do
    first_line "$ROOT/proc/sys/${pair#*:}"
    kv "sysctl.${pair%%:*}" "$FL"
done

# --- journal and pstore --------------------------------------------------------------------

JSTORAGE=
for f in "$ROOT/etc/systemd/journald.conf" "$ROOT"/etc/systemd/journald.conf.d/*.conf; do
    [ -f "$f" ] || continue
        TEXT=$(read_lines "$f" 65536)
    IFS=$NL
    set -f
    for line in $TEXT; do
        IFS=$OLDIFS
        case $line in Storage=*) JSTORAGE=${line#Storage=} ;; esac
    done
    IFS=$OLDIFS
    set +f
done
kv journal.storage "$JSTORAGE"
kv journal.dir "$(if [ -d "$ROOT/var/log/journal" ]; then echo yes; else echo no; fi)"
kv journal.systemd "$(if [ -d "$ROOT/run/systemd/system" ] || [ -d "$ROOT/etc/systemd" ]; then echo yes; else echo no; fi)"

first_line "$ROOT/sys/module/pstore/parameters/backend"
kv pstore.backend "$FL"
kv pstore.dir "$(if [ -d "$ROOT/sys/fs/pstore" ]; then echo yes; else echo no; fi)"
kv firmware.efi "$(if [ -d "$ROOT/sys/firmware/efi" ]; then echo yes; else echo no; fi)"

# --- Cloud Assistant -------------------------------------------------------------------------
# The agent keeps one folder per installed version: /usr/local/share/aliyun-assist/<version>/.

VERSIONS=
n=0
for d in "$ROOT"/usr/local/share/aliyun-assist/[0-9]*; do
    [ -d "$d" ] || continue
    n=$((n + 1))
    [ "$n" -le 20 ] || break
    VERSIONS="${VERSIONS:+$VERSIONS }${d##*/}"
done
kv agent.versions "$VERSIONS"

printf 'CRASHDIAG-AUDIT-END\n'
exit 0
