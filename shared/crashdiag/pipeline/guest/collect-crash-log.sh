#!/bin/sh
# ecs-crashdiag: collect the last kernel crash log of this instance (Cloud Assistant).
#
# POSIX sh (dash, busybox ash, bash). Read-only on the guest: the only thing written is
# a private mktemp directory (the one copy of the chosen log, a journal capture), removed
# on exit; without a usable temporary directory the copy is held in memory (MEM_MAX).
# Bounded in time (slow commands run under `timeout` when it exists), in memory (every
# read of guest text is capped) and in output (everything it prints stays under
# MAX_BYTES, inside the 12,000 bytes the Cloud Assistant agent keeps). Output format:
# docs/PIPELINE.md, "The guest collection script"; what it trusts: SECURITY.md.
#
# Cloud Assistant substitutes the three parameters just below before the script runs.
# They are read through quoted here-documents, so quotes, `$(...)`, backquotes or `;`
# in a value stay plain text, and each value is validated again right after.
set -u

IFS= read -r SINCE <<'CRASHDIAG_PARAM_EOF' || :
{{since}}
CRASHDIAG_PARAM_EOF
IFS= read -r MAX_BYTES <<'CRASHDIAG_PARAM_EOF' || :
{{max_bytes}}
CRASHDIAG_PARAM_EOF
IFS= read -r UPLOAD_URL <<'CRASHDIAG_PARAM_EOF' || :
{{upload_url}}
CRASHDIAG_PARAM_EOF
# --- end of parameters: collect.guest_command() sends what follows gzip-compressed ---

LC_ALL=C
export LC_ALL
umask 077
# Cloud Assistant mixes stderr into the output: keep it to our markers only.
exec 2>/dev/null

NL='
'
CR=$(printf '\r')

# --- parameters ----------------------------------------------------------------------

strip_zeros() {  # $1 -> SZ_OUT without leading zeros ("0" stays "0")
    SZ_OUT=$1
    while :; do
        case $SZ_OUT in 0?*) SZ_OUT=${SZ_OUT#0} ;; *) break ;; esac
    done
}

# SINCE: epoch seconds, digits only, else 0.
case $SINCE in '' | *[!0-9]*) SINCE=0 ;; esac
strip_zeros "$SINCE"
SINCE=$SZ_OUT
[ "${#SINCE}" -le 12 ] || SINCE=0

# MAX_BYTES: the whole output's budget, digits, clamped to [4096, 20000]; anything else
# means 11000 (the agent keeps 12,000 bytes of output).
case $MAX_BYTES in '' | *[!0-9]*) MAX_BYTES=11000 ;; esac
strip_zeros "$MAX_BYTES"
MAX_BYTES=$SZ_OUT
if [ "${#MAX_BYTES}" -gt 6 ]; then MAX_BYTES=11000; fi
if [ "$MAX_BYTES" -lt 4096 ]; then MAX_BYTES=4096; fi
if [ "$MAX_BYTES" -gt 20000 ]; then MAX_BYTES=20000; fi

# UPLOAD_URL: http(s), URL characters only (no quote, space, backslash, control or
# non-ASCII byte), at most 4096 bytes; else empty (no upload).
case $UPLOAD_URL in
    https://?* | http://?*) ;;
    *) UPLOAD_URL= ;;
esac
case $UPLOAD_URL in
    *[!]A-Za-z0-9._~:/?#@!\$\&\(\)*+,\;=%[-]*) UPLOAD_URL= ;;
esac
[ "${#UPLOAD_URL}" -le 4096 ] || UPLOAD_URL=

# The guest's filesystem root: tests point CRASHDIAG_ROOT at a fixture tree. With a
# root set, live kernel state is read from files under it (proc/..., run/crashdiag-fixture).
ROOT=${CRASHDIAG_ROOT:-}
while :; do
    case $ROOT in */) ROOT=${ROOT%/} ;; *) break ;; esac
done
case $ROOT in '' | /*) ;; *) ROOT=./$ROOT ;; esac

# --- helpers ---------------------------------------------------------------------------

# have, run_t, is_num, clean, kv and unquote are the same in audit-readiness.sh: each script is
# sent alone, so each carries them (tests/test_audit.py keeps the two copies equal).
have() { command -v "$1" >/dev/null 2>&1; }

HAVE_TIMEOUT=no
if have timeout && timeout 5 true; then HAVE_TIMEOUT=yes; fi
run_t() {  # run_t SECONDS command...: bounded when `timeout` exists
    rt_secs=$1
    shift
    if [ "$HAVE_TIMEOUT" = yes ]; then timeout "$rt_secs" "$@"; else "$@"; fi
}

HAVE_WC=no
have wc && HAVE_WC=yes
HAVE_STAT=no
have stat && HAVE_STAT=yes
HAVE_DATE=no
have date && HAVE_DATE=yes
HAVE_TR=no
have tr && HAVE_TR=yes
GA=
if printf 'x\n' | grep -a x >/dev/null; then GA=-a; fi

ENC=none
if have base64; then
    ENC=base64
    if have gzip; then ENC=gzip+base64; fi
fi

TMP=
cleanup() {
    if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
    TMP=
}
trap cleanup EXIT
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

make_tmp() {  # a private temporary directory, or TMP= when there is none to be had
    [ -n "$TMP" ] && return 0
    have mktemp && have rm || return 1
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/crashdiag.XXXXXX") || TMP=
    if [ -n "$TMP" ] && [ ! -d "$TMP" ]; then TMP=; fi
    [ -n "$TMP" ]
}

is_num() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    return 0
}
# Files dated after NOW+300 s are ignored (a forged future date would win every later run).
NOW=
if [ "$HAVE_DATE" = yes ]; then NOW=$(date +%s) || NOW=; fi
is_num "$NOW" || NOW=
# Guest files must be owned by root (or by whoever runs this, e.g. a test; root on a guest).
# Whoever runs this: the effective uid in the shell's own /proc/self/status (read by the shell,
# so no `id` is needed: a guest or a test may lack it), else `id -u`, else root.
MY_UID=
while read -r k _ e _; do
    if [ "$k" = Uid: ]; then MY_UID=$e; break; fi
done </proc/self/status
is_num "$MY_UID" || { MY_UID=0; if have id; then MY_UID=$(id -u) || MY_UID=0; fi; }

trim() {  # $1 -> TRIM without surrounding spaces
    TRIM=$1
    TRIM=${TRIM#"${TRIM%%[! ]*}"}
    TRIM=${TRIM%"${TRIM##*[! ]}"}
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

first_line() {  # $1 file -> FL (empty when missing)
    FL=
    if [ -f "$1" ]; then IFS= read -r FL <"$1" || :; fi
}

unquote() {  # $1 -> UQ without one level of surrounding quotes
    UQ=$1
    case $UQ in
        \"*\") UQ=${UQ#\"}; UQ=${UQ%\"} ;;
        \'*\') UQ=${UQ#\'}; UQ=${UQ%\'} ;;
    esac
}

mtime_of() {  # $1 file -> MT (epoch seconds, 0 when no tool can tell)
    MT=
    if [ "$HAVE_STAT" = yes ]; then MT=$(stat -c %Y "$1") || MT=; fi
    if ! is_num "$MT" && [ "$HAVE_DATE" = yes ]; then MT=$(date -r "$1" +%s) || MT=; fi
    if ! is_num "$MT"; then
        mt_ls=$(ls -ln --time-style=+%s "$1") || mt_ls=
        set -f
        # shellcheck disable=SC2086
        set -- $mt_ls
        set +f
        MT=${6:-}
    fi
    is_num "$MT" || MT=0
}

lsl() {  # ls -lnid "$@" -> LS_INO LS_MODE LS_LINKS LS_UID LS_SIZE (metadata only, no read)
    LS_MODE=
    ll=$(ls -lnid "$@") || return 1
    set -f
    # shellcheck disable=SC2086
    set -- $ll
    set +f
    LS_INO=${1:-} LS_MODE=${2:-} LS_LINKS=${3:-} LS_UID=${4:-x} LS_SIZE=${6:-}
}
own_ok() { [ "$LS_UID" = 0 ] || [ "$LS_UID" = "$MY_UID" ]; }

size_of() {  # $1 file -> SIZE in bytes (from ls: wc would read a sparse file whole)
    SIZE=
    lsl "$1" && SIZE=$LS_SIZE
    is_num "$SIZE" || SIZE=0
}

# A guest file is trusted when no local user but root can have put it there or change it:
# a regular file (no symlink) with one link, owned by root, in a folder owned by root that
# others cannot write. Sets SIZE and ID (inode:owner, compared again on the open descriptor).
# With $2 = sys, a system account below uid 1000 (login.defs' SYS_UID_MAX default) may own
# the file too: Ubuntu's rsyslog writes /var/log/kern.log as user syslog (0640 syslog:adm).
trusted() {
    [ ! -L "$1" ] && lsl "${1%/*}/" && own_ok || return 1
    case $LS_MODE in d???????w*) return 1 ;; d*) ;; *) return 1 ;; esac
    lsl "$1" && [ "$LS_LINKS" = 1 ] && is_num "$LS_SIZE" || return 1
    own_ok || { [ "${2:-}" = sys ] && is_num "$LS_UID" && [ "$LS_UID" -lt 1000 ]; } || return 1
    case $LS_MODE in -*) ;; *) return 1 ;; esac
    SIZE=$LS_SIZE ID=$LS_INO:$LS_UID
}

open3() {  # $1 file, $2 its ID: fd 3 open on it when the open file still is the one checked
    command exec 3<"$1" || return 1
    # (ls's /proc/self/fd/3 is the descriptor it inherits: the file itself, whatever its name now)
    if lsl -L /proc/self/fd/3 && [ "$LS_INO:$LS_UID" = "$2" ]; then
        case $LS_MODE in -*) return 0 ;; esac
    fi
    exec 3<&-
    return 1
}

count_bytes() {  # stdin -> its length in bytes on stdout
    if [ "$HAVE_WC" = yes ]; then
        wc -c
    else
        cb=$(cat; echo .)
        cb=${cb%.}
        echo "${#cb}"
    fi
}

# --- context ---------------------------------------------------------------------------

UNAME_R=
first_line "$ROOT/proc/sys/kernel/osrelease"
UNAME_R=$FL
if [ -z "$UNAME_R" ] && [ -z "$ROOT" ] && have uname; then UNAME_R=$(uname -r) || UNAME_R=; fi
first_line "$ROOT/proc/sys/kernel/hostname"
HOST_NAME=$FL  # so that CRASHDIAG_REDACT can hide it wherever the log repeats it

OS_ID=
OS_VERSION_ID=
OSR=$ROOT/etc/os-release
[ -f "$OSR" ] || OSR=$ROOT/usr/lib/os-release
if [ -f "$OSR" ]; then
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        [ "$n" -le 200 ] || break
        case $line in
            ID=*) unquote "${line#ID=}"; OS_ID=$UQ ;;
            VERSION_ID=*) unquote "${line#VERSION_ID=}"; OS_VERSION_ID=$UQ ;;
        esac
    done <"$OSR"
fi

first_line "$ROOT/proc/cmdline"
CMDLINE=$FL
CRASHKERNEL=
set -f
for w in $CMDLINE; do
    case $w in crashkernel=*) CRASHKERNEL=${w#crashkernel=} ;; esac
done
set +f

KDUMP_ACTIVE=unknown
if [ -n "$ROOT" ]; then
    if [ -f "$ROOT/run/crashdiag-fixture/kdump-active" ]; then
        first_line "$ROOT/run/crashdiag-fixture/kdump-active"
        KDUMP_ACTIVE=${FL:-unknown}
    fi
elif have systemctl; then
    ka_first=
    for svc in kdump kdump-tools; do
        st=$(run_t 5 systemctl is-active "$svc" | head -n 1) || :
        case $st in
            active) KDUMP_ACTIVE=active; break ;;
            failed) ka_first=failed ;;
            ?*) [ -n "$ka_first" ] || ka_first=$st ;;
        esac
    done
    if [ "$KDUMP_ACTIVE" != active ] && [ -n "$ka_first" ]; then KDUMP_ACTIVE=$ka_first; fi
fi

# Persistent journal: journald's Storage= (last one wins), else auto: /var/log/journal exists.
JSTORAGE=
for f in "$ROOT/etc/systemd/journald.conf" "$ROOT"/etc/systemd/journald.conf.d/*.conf; do
    [ -f "$f" ] || continue
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        [ "$n" -le 500 ] || break
        case $line in Storage=*) JSTORAGE=${line#Storage=} ;; esac
    done <"$f"
done
case $JSTORAGE in
    persistent) JOURNAL_PERSISTENT=yes ;;
    volatile | none) JOURNAL_PERSISTENT=no ;;
    *) if [ -d "$ROOT/var/log/journal" ]; then JOURNAL_PERSISTENT=yes; else JOURNAL_PERSISTENT=no; fi ;;
esac

MEM_TOTAL_KB=
if [ -f "$ROOT/proc/meminfo" ]; then
    while read -r k v _; do
        if [ "$k" = MemTotal: ]; then MEM_TOTAL_KB=$v; break; fi
    done <"$ROOT/proc/meminfo"
fi

# Modules with taint flags in /proc/modules: "name size refs deps state addr (OE)".
TAINTED=
if [ -f "$ROOT/proc/modules" ]; then
    n=0
    while read -r name _ _ _ _ _ flags _; do
        n=$((n + 1))
        [ "$n" -le 5000 ] || break
        case ${flags:-} in
            \(*\)) TAINTED="${TAINTED:+$TAINTED }$name$flags" ;;
        esac
        [ "${#TAINTED}" -le 900 ] || break
    done <"$ROOT/proc/modules"
fi

# When this boot began (epoch seconds): collect checks the log comes from the boot after
# the crash, not from one the command reached before the reboot.
BTIME=
if [ -f "$ROOT/proc/stat" ]; then
    n=0
    while read -r k v _; do
        n=$((n + 1))
        [ "$n" -le 10000 ] || break
        if [ "$k" = btime ]; then BTIME=$v; break; fi
    done <"$ROOT/proc/stat"
fi
is_num "$BTIME" || BTIME=

print_context() {
kv context.boot_time "$BTIME"
kv context.uname_r "$UNAME_R"
kv context.hostname "$HOST_NAME"
kv context.os_id "$OS_ID"
kv context.os_version_id "$OS_VERSION_ID"
kv context.cmdline "$CMDLINE"
kv context.crashkernel "$CRASHKERNEL"
kv context.kdump_active "$KDUMP_ACTIVE"
kv context.journal_persistent "$JOURNAL_PERSISTENT"
kv context.mem_total_kb "$MEM_TOTAL_KB"
kv context.tainted_modules "$TAINTED"
for pair in vm.panic_on_oom:vm/panic_on_oom kernel.panic:kernel/panic \
    kernel.panic_on_oops:kernel/panic_on_oops kernel.hung_task_panic:kernel/hung_task_panic \
    kernel.softlockup_panic:kernel/softlockup_panic kernel.panic_on_warn:kernel/panic_on_warn \
    kernel.sysrq:kernel/sysrq kernel.unknown_nmi_panic:kernel/unknown_nmi_panic; do
    first_line "$ROOT/proc/sys/${pair#*:}"
    kv "context.sysctl.${pair%%:*}" "$FL"
done
}
# Printed now (a command cut short still says this much) and measured for the budget.
CTX=$(printf 'CRASHDIAG-BEGIN 2\n'; print_context; echo .)
CTX=${CTX%.}
printf '%s' "$CTX"

# --- find the crash log -------------------------------------------------------------------
# Sources in order: kdump, pstore, journal, messages, kern.log. The first source holding
# evidence written at or after SINCE wins (its newest file); when none does, the newest
# evidence of any source is taken and marked stale.

F_SRC='' F_FILE='' F_PATH='' F_M=0 F_SIZE=0 F_ID=  # first fresh
A_SRC='' A_FILE='' A_PATH='' A_M=0 A_SIZE=0 A_ID=  # newest of all
JTEXT=

consider() {  # $1 source, $2 file here ("-": JTEXT), $3 path on the guest, [$4 mtime: our own capture]
    ID=
    if [ "$2" = - ]; then
        SIZE=$((${#JTEXT} + 1))
        [ -n "$JTEXT" ] || return 0
    elif [ -n "${4:-}" ]; then
        size_of "$2"
    else
        case $1 in messages | kern.log) trusted "$2" sys ;; *) trusted "$2" ;; esac || return 0
    fi
    [ "$SIZE" -gt 0 ] || return 0
    if [ -n "${4:-}" ]; then MT=$4; else mtime_of "$2"; fi
    [ -z "$NOW" ] || [ "$MT" -le $((NOW + 300)) ] || return 0
    if [ "$MT" -ge "$SINCE" ]; then
        if [ -z "$F_SRC" ] || { [ "$F_SRC" = "$1" ] && [ "$MT" -ge "$F_M" ]; }; then
            F_SRC=$1 F_FILE=$2 F_PATH=$3 F_M=$MT F_SIZE=$SIZE F_ID=$ID
        fi
    fi
    if [ -z "$A_SRC" ] || [ "$MT" -gt "$A_M" ] || { [ "$A_SRC" = "$1" ] && [ "$MT" -eq "$A_M" ]; }; then
        A_SRC=$1 A_FILE=$2 A_PATH=$3 A_M=$MT A_SIZE=$SIZE A_ID=$ID
    fi
}

# kdump: directories from /etc/kdump.conf (path), /etc/default/kdump-tools (KDUMP_COREDIR), /var/crash
KDIRS=
KP=
if [ -f "$ROOT/etc/kdump.conf" ]; then
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        [ "$n" -le 1000 ] || break
        set -f
        # shellcheck disable=SC2086
        set -- $line
        set +f
        if [ "${1:-}" = path ] && [ -n "${2:-}" ]; then KP=$2; fi
    done <"$ROOT/etc/kdump.conf"
fi
case $KP in /*) KDIRS=$KP ;; esac
KP=
if [ -f "$ROOT/etc/default/kdump-tools" ]; then
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        [ "$n" -le 1000 ] || break
        trim "$line"
        case $TRIM in KDUMP_COREDIR=*) unquote "${TRIM#KDUMP_COREDIR=}"; KP=$UQ ;; esac
    done <"$ROOT/etc/default/kdump-tools"
fi
case $KP in /*) KDIRS="$KDIRS$NL$KP" ;; esac
KDIRS="$KDIRS$NL/var/crash"

# Caps on what is read of a log: LOG_MAX into the private directory (past that, its end:
# where a crash is), MEM_MAX when it has to be held in memory.
LOG_MAX=67108864
MEM_MAX=4194304

# A crash folder and a file in it that are root's (test -O starts no process, so the
# folders others make in a 1777 kdump dir cost the scan nothing) and no symlinked folder.
root_crash_file() { [ -O "${1%/*}" ] && [ ! -L "${1%/*}" ] && [ -O "$1" ]; }

SEEN=
VMCORE='' VMCORE_M=0 VMCORE_ID=  # the newest fresh dump without its dmesg
DMESG_MAX=16777216
OLDIFS=$IFS
IFS=$NL
set -f
for d in $KDIRS; do
    IFS=$OLDIFS
    set +f
    while :; do case $d in ?*/) d=${d%/} ;; *) break ;; esac; done
    case "$NL$SEEN$NL" in *"$NL$d$NL"*) continue ;; esac
    SEEN="$SEEN$NL$d"
    # a kdump directory owned by root, which others cannot write or only with the sticky bit
    # (Ubuntu's /var/crash is 1777): nobody else can rename or replace root's crash folders
    [ -d "$ROOT$d" ] && lsl "$ROOT$d/" && own_ok || continue
    case $LS_MODE in d???????w[!tT]*) continue ;; esac
    # Crash folders that are symlinks are not followed (anyone may make one in a 1777 dir).
    for f in "$ROOT$d"/*/vmcore-dmesg.txt "$ROOT$d"/*/dmesg.*; do
        root_crash_file "$f" && consider kdump "$f" "${f#"$ROOT"}"
    done
    # A dump with no dmesg beside it (old kexec-tools on a newer kernel, a save cut short,
    # only vmcore-dmesg-incomplete.txt): remembered for makedumpfile below.
    for v in "$ROOT$d"/*/vmcore "$ROOT$d"/*/dump.[0-9]*; do
        root_crash_file "$v" && trusted "$v" || continue
        vd=${v%/*}
        [ -s "$vd/vmcore-dmesg.txt" ] && continue
        case $v in */dump.*) [ -s "$vd/dmesg.${v##*/dump.}" ] && continue ;; esac
        mtime_of "$v"
        [ -z "$NOW" ] || [ "$MT" -le $((NOW + 300)) ] || continue
        if [ "$MT" -ge "$SINCE" ] && { [ -z "$VMCORE" ] || [ "$MT" -gt "$VMCORE_M" ]; }; then
            VMCORE=$v VMCORE_M=$MT VMCORE_ID=$ID
        fi
    done
done
IFS=$OLDIFS
set +f

# No fresh vmcore-dmesg: read the log buffer out of the newest fresh dump with makedumpfile
# --dump-dmesg (into the private temporary directory, under timeout and a file-size limit),
# before pstore and the journal. makedumpfile reads the dump through our descriptor, checked
# to be the file checked above. The description says where the text came from.
L_EXTRACTED=
if [ -z "$F_SRC" ] && [ -n "$VMCORE" ]; then
    MDF=
    for c in "$ROOT/usr/sbin/makedumpfile" "$ROOT/sbin/makedumpfile" "$ROOT/usr/bin/makedumpfile"; do
        if [ -f "$c" ] && [ -x "$c" ]; then MDF=$c; break; fi
    done
    if [ -z "$MDF" ] && [ -z "$ROOT" ] && have makedumpfile; then MDF=makedumpfile; fi
    if [ -n "$MDF" ] && make_tmp && open3 "$VMCORE" "$VMCORE_ID"; then
        # ulimit -f counts 512-byte blocks: 32768 of them is 16 MB, far above any log buffer.
        (ulimit -f 32768 || :; run_t 120 "$MDF" --dump-dmesg /proc/self/fd/3 "$TMP/makedumpfile-dmesg.txt") >/dev/null 2>&1 || :
        exec 3<&-
        if [ -s "$TMP/makedumpfile-dmesg.txt" ]; then
            head -c "$DMESG_MAX" "$TMP/makedumpfile-dmesg.txt" >"$TMP/vmcore-dmesg.txt"
            rm -f "$TMP/makedumpfile-dmesg.txt"
            consider kdump "$TMP/vmcore-dmesg.txt" "${VMCORE#"$ROOT"} (makedumpfile --dump-dmesg)" "$VMCORE_M"
            if [ "$F_FILE" = "$TMP/vmcore-dmesg.txt" ]; then L_EXTRACTED="makedumpfile --dump-dmesg"; fi
        fi
    fi
fi

# pstore: the kernel's own records and what systemd-pstore archived
if [ -z "$F_SRC" ]; then
    for d in /sys/fs/pstore /var/lib/systemd/pstore; do
        [ -d "$ROOT$d" ] || continue
        for f in "$ROOT$d"/dmesg-* "$ROOT$d"/*/dmesg-*; do
            consider pstore "$f" "${f#"$ROOT"}"
        done
    done
fi

# journal of the previous boot: its last records (the crash is at the end), at most
# JOURNAL_MAX bytes of them (MEM_MAX in memory); the capture is cut at LOG_MAX before its end is kept
JOURNAL_MAX=16777216
JOURNAL_LINES=200000
if [ -z "$F_SRC" ]; then
    if [ -n "$ROOT" ]; then
        consider journal "$ROOT/run/crashdiag-fixture/journal-k-b-1.txt" "journalctl -k -b -1"
    elif have journalctl; then
        # the time of the previous boot's last kernel record
        jm=$(run_t 10 journalctl -k -b -1 -n 1 -o export --no-pager -q |
            sed -n 's/^__REALTIME_TIMESTAMP=\([0-9][0-9]*\)$/\1/p' | head -n 1) || jm=
        if [ "${#jm}" -gt 6 ]; then jm=${jm%??????}; else jm=; fi
        is_num "$jm" || jm=0
        if make_tmp; then
            run_t 20 journalctl -k -b -1 -n "$JOURNAL_LINES" --no-pager -q | head -c "$LOG_MAX" >"$TMP/journal-all.txt"
            run_t 20 tail -c "$JOURNAL_MAX" "$TMP/journal-all.txt" >"$TMP/journal-k-b-1.txt"
            rm -f "$TMP/journal-all.txt"
            consider journal "$TMP/journal-k-b-1.txt" "journalctl -k -b -1" "$jm"
        else
            JTEXT=$(run_t 20 journalctl -k -b -1 -n "$JOURNAL_LINES" --no-pager -q | run_t 20 tail -c "$MEM_MAX") || :
            consider journal - "journalctl -k -b -1" "$jm"
        fi
    fi
fi

if [ -z "$F_SRC" ]; then consider messages "$ROOT/var/log/messages" /var/log/messages; fi
if [ -z "$F_SRC" ]; then consider kern.log "$ROOT/var/log/kern.log" /var/log/kern.log; fi

STALE=no
if [ -n "$F_SRC" ]; then
    L_SRC=$F_SRC L_FILE=$F_FILE L_PATH=$F_PATH L_M=$F_M L_SIZE=$F_SIZE L_ID=$F_ID
elif [ -n "$A_SRC" ]; then
    L_SRC=$A_SRC L_FILE=$A_FILE L_PATH=$A_PATH L_M=$A_M L_SIZE=$A_SIZE L_ID=$A_ID
    STALE=yes
else
    L_SRC=none L_FILE='' L_PATH='' L_M=0 L_SIZE=0 L_ID=
fi
if [ "$L_FILE" != - ]; then JTEXT=; fi

# --- one copy of the chosen file ---------------------------------------------------------------
# A guest file (our own captures have no ID) is opened once, on fd 3; the open file must be
# the one checked above (same inode and owner, a regular file), so a symlink or another file
# swapped in since is refused. It is copied through that descriptor, at most LOG_MAX bytes
# (past that, its end: where a crash is), into the private directory, or without one into
# memory (at most MEM_MAX); everything below reads only the copy, so a file changed or
# replaced from now on changes nothing.
if [ -n "$L_ID" ]; then
    if open3 "$L_FILE" "$L_ID"; then
        L_SIZE=$LS_SIZE
        cp_c=head
        if make_tmp; then
            [ "$L_SIZE" -le "$LOG_MAX" ] || cp_c=tail
            run_t 60 "$cp_c" -c "$LOG_MAX" <&3 >"$TMP/log"
            L_FILE=$TMP/log
        else
            [ "$L_SIZE" -le "$MEM_MAX" ] || cp_c=tail
            JTEXT=$(run_t 60 "$cp_c" -c "$MEM_MAX" <&3) || :
            L_FILE=-
        fi
        exec 3<&-
    else
        L_SRC=none L_FILE='' L_PATH='' L_M=0 L_SIZE=0 STALE=no
    fi
fi
src_cat() {
    if [ "$L_FILE" = - ]; then printf '%s\n' "$JTEXT"; else head -c "$LOG_MAX" "$L_FILE"; fi
}
C_SIZE=0  # what the copy holds
if [ "$L_FILE" = - ]; then C_SIZE=$((${#JTEXT} + 1)); elif [ -n "$L_FILE" ]; then size_of "$L_FILE"; C_SIZE=$SIZE; fi

# --- upload the whole log ---------------------------------------------------------------------
# The presigned PUT URL signs this Content-Type: send exactly it.
CT='Content-Type: application/octet-stream'
UPLOADED=no
# The URL never appears on a command line (any local user can read /proc/*/cmdline and PUT a
# forged log after ours): curl reads it from a config on stdin (-K -; the URL was checked
# above to hold no quote, backslash or space), wget from an input list on stdin (-i -).
url_config() { printf 'url = "%s"\n' "$UPLOAD_URL"; }
if [ -n "$UPLOAD_URL" ] && [ "$L_SRC" != none ]; then
    UPLOADED=failed
    if have curl; then
        if [ "$L_FILE" = - ]; then  # journal text: stdin carries the config, the body comes on fd 3
            if src_cat | { url_config | run_t 70 curl -fsS -K - -X PUT -H "$CT" -H "Expect:" --connect-timeout 10 --max-time 60 \
                --data-binary @/dev/fd/3 >/dev/null; } 3<&0; then UPLOADED=yes; fi
        else
            # --upload-file streams the file (a PUT with its length) instead of loading it
            if url_config | run_t 70 curl -fsS -K - -X PUT -H "$CT" -H "Expect:" --connect-timeout 10 --max-time 60 \
                --upload-file "$L_FILE" >/dev/null; then UPLOADED=yes; fi
        fi
    elif have wget && [ "$L_FILE" != - ]; then
        if printf '%s\n' "$UPLOAD_URL" | run_t 70 wget -q -O /dev/null -T 30 -t 1 --method=PUT --header="$CT" \
            --body-file="$L_FILE" -i -; then UPLOADED=yes; fi
    fi
fi

# --- the excerpt -------------------------------------------------------------------------------

encode() {
    case $ENC in
        gzip+base64) gzip -c | base64 ;;
        base64) base64 ;;
        *) grep ${GA:+"$GA"} '' ;;  # plain text, every line newline-terminated
    esac
}

txt_cat() {  # the copy with its NUL bytes dropped when tr exists: busybox grep and sed stop
    # reading a line at a NUL, and a log's NUL runs (a hole) become nothing for them to hold
    if [ "$HAVE_TR" = yes ]; then src_cat | tr -d '\000'; else src_cat; fi
}
lines_of_log() {  # lines $1..$2 of the log, at most WMAX bytes
    txt_cat | run_t 30 sed -n "$1,$2p;$2q" | head -c "$WMAX"
}

# The widest window is read from the log once and kept in memory (a few hundred lines, at
# most WMAX bytes), so shrinking it does not read a large log again and again.
WMAX=1048576
WTEXT=
W0=0
window() {  # lines $1..$2 of the log, both inside the kept window
    printf '%s' "$WTEXT" | sed -n "$(($1 - W0 + 1)),$(($2 - W0 + 1))p"
}

measured() {  # $1: a byte count from count_bytes -> MEASURED
    trim "$1"
    MEASURED=$TRIM
    is_num "$MEASURED" || MEASURED=999999999
}

CRASH_RE='Kernel panic|BUG:|Oops|general protection|Call Trace|WARNING:|INFO: task|soft lockup|hard LOCKUP|rcu.*stall|Out of memory|invoked oom-killer|Hardware Error|divide error|invalid opcode|[Uu]nable to handle'

print_meta() {  # the log's description: after the header and again at the very end
    kv log.source "$L_SRC"
    kv log.path "$L_PATH"
    kv log.mtime "$L_M"
    kv log.size "$L_SIZE"
    kv log.stale "$STALE"
    kv log.uploaded "$UPLOADED"
    kv log.encoding "$ENC"
    kv log.complete "$COMPLETE"
    if [ "$COMPLETE" = no ]; then kv log.window "$WIN_S-$WIN_E"; fi
    if [ -n "$L_EXTRACTED" ] && [ "$L_FILE" = "$TMP/vmcore-dmesg.txt" ]; then kv log.extracted "$L_EXTRACTED"; fi
}

# The excerpt gets what MAX_BYTES leaves after the header, the description twice (measured
# at its longest) and the markers.
COMPLETE=no
WIN_S=999999999 WIN_E=999999999
META=$(print_meta; echo .)
EXB=$((MAX_BYTES - ${#CTX} - 2 * ${#META} - 80))
[ "$EXB" -ge 1024 ] || EXB=1024

COMPLETE=yes
WIN_S=0 WIN_E=0 CUT=no
if [ "$L_SRC" != none ]; then
    try_whole=no
    case $ENC in
        gzip+base64) [ "$C_SIZE" -le $((EXB * 20)) ] && try_whole=yes ;;
        base64) [ $((C_SIZE * 4 / 3)) -le "$EXB" ] && try_whole=yes ;;
        *) [ "$C_SIZE" -le "$EXB" ] && try_whole=yes ;;
    esac
    fits=no
    if [ "$try_whole" = yes ]; then
        measured "$(src_cat | encode | count_bytes)"
        [ "$MEASURED" -le "$EXB" ] && fits=yes
    fi
    if [ "$fits" = no ]; then
        COMPLETE=no
        TOTAL=$(txt_cat | run_t 30 grep -c ${GA:+"$GA"} '') || :
        trim "$TOTAL"
        TOTAL=$TRIM
        is_num "$TOTAL" || TOTAL=1
        [ "$TOTAL" -ge 1 ] || TOTAL=1
        LAST=$(txt_cat | run_t 30 grep -n ${GA:+"$GA"} -E "$CRASH_RE" | tail -n 1) || :
        LAST=${LAST%%:*}
        is_num "$LAST" || LAST=$TOTAL
        before=200
        after=100
        W0=$((LAST - before))
        [ "$W0" -ge 1 ] || W0=1
        w_end=$((LAST + after))
        [ "$w_end" -le "$TOTAL" ] || w_end=$TOTAL
        WTEXT=$(lines_of_log "$W0" "$w_end"; echo .)
        WTEXT=${WTEXT%.}
        if [ "${#WTEXT}" -ge "$WMAX" ]; then  # lines too long to hold: the last crash line alone
            W0=$LAST before=0 after=0
            WTEXT=$(lines_of_log "$LAST" "$LAST"; echo .)
            WTEXT=${WTEXT%.}
        fi
        while :; do
            WIN_S=$((LAST - before))
            [ "$WIN_S" -ge 1 ] || WIN_S=1
            WIN_E=$((LAST + after))
            [ "$WIN_E" -le "$TOTAL" ] || WIN_E=$TOTAL
            measured "$(window "$WIN_S" "$WIN_E" | encode | count_bytes)"
            [ "$MEASURED" -le "$EXB" ] && break
            if [ "$before" -eq 0 ] && [ "$after" -eq 0 ]; then
                CUT=yes  # one line longer than the budget: its head only
                break
            fi
            # lines after the last crash line matter least: shrink those first
            if [ "$after" -gt 30 ]; then
                after=$((after / 2))
            else
                before=$((before * 4 / 5))
                after=$((after * 4 / 5))
            fi
        done
        if [ "$CUT" = no ] && [ "$WIN_S" -eq 1 ] && [ "$WIN_E" -ge "$TOTAL" ]; then COMPLETE=yes; fi
    fi
fi

emit_excerpt() {
    if [ "$L_SRC" = none ]; then return 0; fi
    if [ "$COMPLETE" = yes ] && [ "$WIN_S" -eq 0 ]; then
        src_cat | encode
    elif [ "$CUT" = yes ]; then
        case $ENC in
            none) cut_n=$((EXB - 2)) ;;
            *) cut_n=$((EXB * 7 / 10)) ;;
        esac
        window "$WIN_S" "$WIN_E" | head -c "$cut_n" | encode
    else
        window "$WIN_S" "$WIN_E" | encode
    fi
}

print_meta
printf 'CRASHDIAG-LOG\n'
emit_excerpt
# The agent keeps the start and the end of the output and drops the middle: what collect
# needs to read the excerpt is said again here, after it.
printf 'CRASHDIAG-TAIL\n'
kv context.boot_time "$BTIME"
print_meta
printf 'CRASHDIAG-END 2\n'
cleanup
exit 0
