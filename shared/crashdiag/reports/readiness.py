"""Fleet readiness: judge what the guest audit script saw (``pipeline/guest/audit-readiness.sh``).

The script only reports facts (``name=value`` lines); every judgement lives here, so it
can be tested without a guest and changed without touching the script Cloud Assistant
runs. A result says, per check, ``ok``, ``warn`` or ``fail`` with a one-line reason and
the command that fixes it on that distribution family, whether the instance would leave
a usable crash log (``ready``), and which known issues of the catalogue its running
kernel still carries (``exposed``) with the kernel to upgrade to.

Everything in the facts comes from the guest and is untrusted: values are kept as plain
strings (bounded by the parser), numbers are parsed defensively, and nothing here is
rendered; pages and messages escape it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

AUDIT_SCHEMA_VERSION = 1
BEGIN = "CRASHDIAG-AUDIT-BEGIN"
END = "CRASHDIAG-AUDIT-END"
OUTPUT_VERSION = "1"
MAX_OUTPUT = 64 * 1024  # Cloud Assistant keeps 24 KB; anything longer is not ours
MAX_VALUE = 1024
_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")

# The checks whose failure means the next crash leaves no kdump evidence: `ready` is
# true when none of them fails.
EVIDENCE_CHECKS = ("kdump", "crashkernel", "dump-space", "dump-tools")

# The RunCommand docs ask for at least this Linux agent for scheduled tasks; older agents
# answer newer features with ClientNeedUpgrade
# (https://api.alibabacloud.com/document/Ecs/2014-05-26/RunCommand, "Considerations").
MIN_AGENT = (2, 2, 3, 282)
AGENT_PACKAGE = "https://aliyun-client-assist.oss-accelerate.aliyuncs.com/linux/aliyun_assist_latest"
# RHEL 9's kexec-tools default reservation: enough for the crash kernel from 1 GB up.
CRASHKERNEL_RANGES = "1G-4G:192M,4G-64G:256M,64G-:512M"


class AuditOutputError(ValueError):
    """The text is not the audit script's output."""


@dataclass(frozen=True)
class Check:
    id: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


# --- the script's output -------------------------------------------------------------------


def parse_audit_output(output: str | bytes) -> dict[str, str]:
    """The facts between ``CRASHDIAG-AUDIT-BEGIN 1`` and ``CRASHDIAG-AUDIT-END``.

    Raises ``AuditOutputError`` for anything else: no markers, another version, output
    cut before the end marker, a malformed line. Values are cut at 1 KB and keys must be
    the script's lower-case names, so a hostile guest cannot grow the result."""
    if isinstance(output, bytes):
        output = output[:MAX_OUTPUT].decode("utf-8", "replace")
    else:
        output = output[:MAX_OUTPUT]
    lines = output.replace("\r\n", "\n").split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith(BEGIN)), None)
    if start is None:
        raise AuditOutputError("no CRASHDIAG-AUDIT-BEGIN marker: not the audit script's output")
    version = lines[start][len(BEGIN):].strip()
    if version != OUTPUT_VERSION:
        raise AuditOutputError(f"unsupported audit output version {version[:20]!r}")
    facts: dict[str, str] = {}
    for line in lines[start + 1:]:
        if line == END:
            return facts
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.match(key):
            raise AuditOutputError(f"malformed audit line {line[:80]!r}")
        facts[key] = value[:MAX_VALUE]
    raise AuditOutputError("the audit output ends before CRASHDIAG-AUDIT-END (cut or the script died)")


# --- helpers -------------------------------------------------------------------------------

_RHEL_IDS = {"rhel", "centos", "fedora", "rocky", "almalinux", "alinux", "anolis", "ol", "opencloudos",
             "tencentos", "openeuler", "kylin", "amzn"}
_DEBIAN_IDS = {"debian", "ubuntu", "uos", "deepin", "linuxmint"}


def family(facts: dict[str, str]) -> str:
    """rhel (yum/dnf, kdump), debian (apt, kdump-tools), suse (zypper, kdump) or other."""
    os_id = facts.get("os.id", "").lower()
    like = facts.get("os.id_like", "").lower().split()
    if os_id in _DEBIAN_IDS or "debian" in like or "ubuntu" in like:
        return "debian"
    if os_id.startswith(("sles", "opensuse", "suse")) or "suse" in like:
        return "suse"
    if os_id in _RHEL_IDS or {"rhel", "fedora", "centos"} & set(like):
        return "rhel"
    return "other"


def _major(facts: dict[str, str]) -> int:
    m = re.match(r"\d+", facts.get("os.version_id", ""))
    return int(m.group(0)) if m else 0


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"-?\d{1,18}", value):
        return int(value)
    return None


def _gb(kb: int) -> str:
    gb = kb / 1024 / 1024
    return f"{gb:.1f} GB" if gb < 10 else f"{gb:.0f} GB"


def _service(facts: dict[str, str], fam: str) -> str:
    return facts.get("kdump.service") or ("kdump-tools" if fam == "debian" else "kdump")


def _install_kdump(fam: str, major: int) -> str:
    if fam == "debian":
        return "apt-get install -y kdump-tools && systemctl enable --now kdump-tools"
    if fam == "suse":
        return "zypper install -y kdump && systemctl enable --now kdump"
    tool = "dnf" if major >= 8 else "yum"
    return f"{tool} install -y kexec-tools && systemctl enable --now kdump"


def _crashkernel_fix(facts: dict[str, str], fam: str) -> str:
    major = _major(facts)
    if fam == "rhel" and facts.get("os.id") in ("rhel", "centos", "rocky", "almalinux", "ol") and major >= 9:
        # RHEL 9 dropped crashkernel=auto; kdumpctl writes the default reservation.
        return "kdumpctl reset-crashkernel --kernel=ALL && reboot"
    if fam == "rhel":
        return f'grubby --update-kernel=ALL --args="crashkernel={CRASHKERNEL_RANGES}" && reboot'
    if fam == "debian":
        return ("echo 'GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT "
                f"crashkernel={CRASHKERNEL_RANGES}\"' > /etc/default/grub.d/kdump-tools.cfg && update-grub && reboot")
    return (f"sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"/&crashkernel={CRASHKERNEL_RANGES} /' /etc/default/grub"
            " && grub2-mkconfig -o /boot/grub2/grub.cfg && reboot")


def _sysctl_fix(name: str, value: str) -> str:
    """Set now and keep across reboots (a later sysctl.d file wins, so the file sorts last)."""
    return f"sysctl -w {name}={value} && echo '{name} = {value}' >> /etc/sysctl.d/99-crashdiag.conf"


def _agent_fix(fam: str) -> str:
    if fam == "debian":
        return f"wget -O /tmp/aliyun_assist.deb {AGENT_PACKAGE}.deb && dpkg -i /tmp/aliyun_assist.deb"
    return f"rpm -ivh --force {AGENT_PACKAGE}.rpm"


def _version_tuple(text: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"\d{1,6}(\.\d{1,6}){1,5}", text):
        return None
    return tuple(int(p) for p in text.split("."))


# --- the checks ----------------------------------------------------------------------------


def _check_kdump(f: dict[str, str], fam: str) -> Check:
    enabled, active, loaded = f.get("kdump.enabled", "unknown"), f.get("kdump.active", "unknown"), f.get("kexec.crash_loaded", "")
    if not f.get("kdump.service"):
        return Check("kdump", "fail", "kdump is not installed: a crash leaves no vmcore and no vmcore-dmesg.txt",
                     _install_kdump(fam, _major(f)))
    svc = _service(f, fam)
    enable = f"systemctl enable --now {svc}"
    on_boot = enabled in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
    if enabled in ("disabled", "masked", "not-found"):
        return Check("kdump", "fail", f"{svc} is {enabled} at boot (now {active}): after the next reboot nothing captures a crash",
                     (f"systemctl unmask {svc} && " if enabled == "masked" else "") + enable)
    if active == "failed":
        return Check("kdump", "fail", f"{svc} failed to start: the crash kernel is not armed",
                     f"journalctl -u {svc} -b --no-pager | tail -n 20; systemctl restart {svc}")
    if active != "active":
        return Check("kdump", "fail", f"{svc} is {active}: a crash now leaves no vmcore and no vmcore-dmesg.txt", enable)
    if loaded == "0":
        return Check("kdump", "fail", f"{svc} is active but no crash kernel is loaded (/sys/kernel/kexec_crash_loaded is 0)",
                     f"systemctl restart {svc} && cat /sys/kernel/kexec_crash_loaded")
    if not on_boot:
        return Check("kdump", "warn", f"{svc} is active; whether it starts at boot is unknown ({enabled})", enable)
    return Check("kdump", "ok", f"{svc} is enabled and active" + (", crash kernel loaded" if loaded == "1" else ""))


def _check_crashkernel(f: dict[str, str], fam: str) -> Check:
    value = f.get("crashkernel", "")
    size = _int(f.get("kexec.crash_size"))
    fix = _crashkernel_fix(f, fam)
    if f.get("crashkernel.present") != "yes" and not value:
        return Check("crashkernel", "fail", "no crashkernel= on the kernel command line: no memory is reserved for the crash kernel", fix)
    if size == 0:
        return Check("crashkernel", "fail",
                     f"crashkernel={value} is set but nothing is reserved (/sys/kernel/kexec_crash_size is 0): "
                     "the instance's memory is below the reservation's range, or the reservation failed", fix)
    if size is None:
        return Check("crashkernel", "ok", f"crashkernel={value} (the reserved size is not reported)")
    return Check("crashkernel", "ok", f"{size // (1024 * 1024)} MB reserved for the crash kernel (crashkernel={value})")


def _check_dump_space(f: dict[str, str], fam: str) -> Check:
    target, path = f.get("kdump.target", "local"), f.get("kdump.path", "/var/crash")
    if target in ("nfs", "nfs4", "ssh"):
        return Check("dump-space", "ok", f"dumps go to a remote {target} target; its space is not checked here")
    if target == "raw" or target.startswith("fs:"):
        return Check("dump-space", "ok", f"dumps go to a dedicated device ({target}); its space is not checked here")
    avail, mem = _int(f.get("dump.avail_kb")), _int(f.get("mem.total_kb"))
    mount = f.get("dump.mount") or "?"
    where = "path in /etc/default/kdump-tools (KDUMP_COREDIR)" if fam == "debian" else "path in /etc/kdump.conf"
    fix = f"free space on {mount}, or point kdump at a larger disk ({where}); check with: df -h {path}"
    if avail is None:
        return Check("dump-space", "warn", f"the free space where kdump writes ({path}) could not be read", f"df -h {path}")
    if not mem:
        return Check("dump-space", "ok", f"{_gb(avail)} free on {mount} for {path} (memory size unknown)")
    if avail >= mem:
        return Check("dump-space", "ok", f"{_gb(avail)} free on {mount} for {path}, more than the {_gb(mem)} of memory")
    if avail * 8 >= mem:
        return Check("dump-space", "warn",
                     f"{_gb(avail)} free on {mount} for {path}: a filtered dump (makedumpfile -d 31) of {_gb(mem)} of memory "
                     "usually fits, a full one would not", fix)
    return Check("dump-space", "fail",
                 f"only {_gb(avail)} free on {mount} for {path}: too little for a dump of {_gb(mem)} of memory", fix)


def _check_tools(f: dict[str, str], fam: str) -> Check:
    mdf, vmd = f.get("tool.makedumpfile", ""), f.get("tool.vmcore-dmesg", "")
    major = _major(f)
    if fam == "debian":
        fix = "apt-get install -y makedumpfile kdump-tools"
    elif fam == "suse":
        fix = "zypper install -y makedumpfile kexec-tools"
    else:
        # RHEL 9 and Fedora ship makedumpfile in its own package; before, kexec-tools held both.
        fix = "dnf install -y kexec-tools makedumpfile" if major >= 9 else ("dnf" if major >= 8 else "yum") + " install -y kexec-tools"
    if not mdf:
        return Check("dump-tools", "fail", "makedumpfile is missing: kdump cannot write a filtered dump", fix)
    if not vmd and fam != "debian":
        # kdump-tools saves dmesg.<stamp> with makedumpfile --dump-dmesg; kexec-tools' kdump
        # writes vmcore-dmesg.txt with vmcore-dmesg.
        return Check("dump-tools", "warn", "vmcore-dmesg is missing: the crash leaves a vmcore but no vmcore-dmesg.txt to read", fix)
    return Check("dump-tools", "ok", "makedumpfile" + (" and vmcore-dmesg are" if vmd else " is") + " installed")


# The panic knobs, each with the value the fix sets.
_KNOBS: tuple[tuple[str, str], ...] = (
    ("vm.panic_on_oom", "0"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.softlockup_panic", "0"),
    ("kernel.hung_task_panic", "0"),
    ("kernel.unknown_nmi_panic", "0"),
    ("kernel.panic_on_warn", "0"),
)


def _check_knob(f: dict[str, str], name: str, good: str) -> Check:
    raw = f.get(f"sysctl.{name}", "")
    v = _int(raw)
    fix = _sysctl_fix(name, good)
    if v is None:
        return Check(name, "ok", f"{name} is not available on this kernel" if not raw else f"{name} = {raw[:40]} (not a number)")
    if name == "vm.panic_on_oom":
        if v == 0:
            return Check(name, "ok", "0: out of memory, the OOM killer ends one process and the instance stays up")
        scope = "any" if v == 2 else "a system-wide"
        return Check(name, "fail", f"{v}: {scope} out-of-memory event panics the kernel and the instance reboots "
                     "(an InstanceFailure.Reboot event) instead of losing one process", fix)
    if name == "kernel.panic":
        if v == 0:
            return Check(name, "warn", "0: after a panic the instance hangs until someone restarts it from the console; "
                         "ECS does not restart it", fix)
        return Check(name, "ok", f"{v}: the instance reboots " + (f"{v} s after a panic" if v > 0 else "at once after a panic")
                     + " (kdump, when armed, saves the dump first)")
    if name == "kernel.panic_on_oops":
        if v:
            return Check(name, "ok", "1: an oops panics the kernel, so kdump captures it and the instance reboots")
        return Check(name, "ok", "0: an oops kills the task and the kernel runs on; kdump sees nothing, the journal keeps the oops")
    if v == 0:
        return Check(name, "ok", {
            "kernel.softlockup_panic": "0: a soft lockup is logged and the instance stays up",
            "kernel.hung_task_panic": "0: a task blocked too long is logged and the instance stays up",
            "kernel.unknown_nmi_panic": "0: an unknown NMI is logged and ignored",
            "kernel.panic_on_warn": "0: a kernel WARNING is logged and the instance stays up",
        }[name])
    what = {
        "kernel.softlockup_panic": f"a CPU stuck in the kernel for {2 * (_int(f.get('sysctl.kernel.watchdog_thresh')) or 10)} s "
                                   "panics the kernel and reboots the instance",
        "kernel.hung_task_panic": f"a task blocked for {_int(f.get('sysctl.kernel.hung_task_timeout_secs')) or 120} s "
                                  "(a slow cloud disk at its IOPS limit is enough) reboots the instance",
        "kernel.unknown_nmi_panic": "any unknown NMI, including one sent to the instance from the console or API, panics the kernel",
        "kernel.panic_on_warn": "any kernel WARNING, however harmless, panics the kernel and reboots the instance",
    }[name]
    return Check(name, "warn", f"{v}: {what}", fix)


def _check_journal(f: dict[str, str], kdump_ok: bool) -> Check:
    storage = f.get("journal.storage", "").strip().lower()
    fix = ("mkdir -p /var/log/journal /etc/systemd/journald.conf.d && "
           "printf '[Journal]\\nStorage=persistent\\n' > /etc/systemd/journald.conf.d/99-crashdiag.conf && "
           "systemctl restart systemd-journald")
    bad = "warn" if kdump_ok else "fail"
    if f.get("journal.systemd") == "no" and not storage:
        return Check("journal", "ok", "no systemd journal; syslog keeps kernel messages in /var/log")
    if storage == "persistent":
        return Check("journal", "ok", "persistent (Storage=persistent): the previous boot's kernel messages survive")
    if storage in ("volatile", "none"):
        return Check("journal", bad, f"Storage={storage}: the kernel messages of a crashed boot are lost"
                     + ("" if kdump_ok else ", and kdump is not there to keep them either"), fix)
    if f.get("journal.dir") == "yes":
        return Check("journal", "ok", "persistent (/var/log/journal exists)")
    return Check("journal", bad, "volatile (no /var/log/journal): the kernel messages of a crashed boot are lost"
                 + ("" if kdump_ok else ", and kdump is not there to keep them either"), fix)


def _check_pstore(f: dict[str, str], kdump_ok: bool) -> Check:
    backend = f.get("pstore.backend", "").strip()
    if backend and backend != "(null)":
        return Check("pstore", "ok", f"pstore backend {backend[:40]}: the kernel's last messages survive a reboot")
    fix = "modprobe efi_pstore && echo efi_pstore > /etc/modules-load.d/efi_pstore.conf" if f.get("firmware.efi") == "yes" else ""
    if kdump_ok:
        return Check("pstore", "ok", "no pstore backend; kdump keeps the crash instead", fix)
    return Check("pstore", "warn", "no pstore backend, and kdump is not ready: nothing keeps the kernel's last words", fix)


def _check_agent(f: dict[str, str], fam: str) -> Check:
    versions = [v for v in (_version_tuple(x) for x in f.get("agent.versions", "").split()) if v]
    if not versions:
        return Check("agent", "warn", "no Cloud Assistant agent found under /usr/local/share/aliyun-assist", _agent_fix(fam))
    best = max(versions)
    text = ".".join(str(p) for p in best)
    if best < MIN_AGENT:
        return Check("agent", "warn", f"Cloud Assistant agent {text} is older than {'.'.join(map(str, MIN_AGENT))}: "
                     "newer commands may fail with ClientNeedUpgrade", _agent_fix(fam))
    return Check("agent", "ok", f"Cloud Assistant agent {text}")


# --- exposure ------------------------------------------------------------------------------


def exposure(release: str | None, build: str | None = None, rules: Any = None) -> tuple[list[dict[str, Any]], str | None]:
    """Known issues the running kernel still carries: every catalogue rule whose
    ``fixed_in`` names the kernel's own stream and whose fix postdates it. Returns the
    exposures and the one kernel that clears them all (the newest fix, per stream order).

    Only the kernel's own stream counts: an ``upstream`` version is not a package anyone
    can install on a distribution kernel, which may carry the fix as a backport."""
    from functools import cmp_to_key

    from ..classifier.catalogue import load_catalogue
    from ..classifier.kernels import compare, fix_status, parse_release

    kernel = parse_release(release, build)
    if kernel is None or not kernel.stream or not kernel.version:
        return [], None
    out = []
    for rule in rules if rules is not None else load_catalogue():
        fixed = (rule.data.get("fixed_in") or {}).get(kernel.stream)
        if not fixed:
            continue
        st = fix_status(kernel, {kernel.stream: list(fixed)})
        if st.status == "affected" and st.fixed_version:
            out.append({"rule": rule.id, "title": rule.data["title"]["en"], "category": rule.category,
                        "fixed_in": list(fixed), "upgrade_to": st.fixed_version})
    if not out:
        return [], None
    target = max((e["upgrade_to"] for e in out), key=cmp_to_key(lambda a, b: compare(kernel.stream, a, b)))
    return out, target


# --- one instance --------------------------------------------------------------------------


def judge(facts: dict[str, str], *, instance_id: str, region: str = "", account: str = "", name: str = "",
          audited_at: str | None = None, rules: Any = None) -> dict[str, Any]:
    """The audit result of one instance: checks, ``ready``, exposure (schema in docs/PIPELINE.md)."""
    fam = family(facts)
    checks = [_check_kdump(facts, fam), _check_crashkernel(facts, fam), _check_dump_space(facts, fam), _check_tools(facts, fam)]
    kdump_ok = all(c.status != "fail" for c in checks)
    checks += [_check_knob(facts, n, good) for n, good in _KNOBS]
    checks += [_check_journal(facts, kdump_ok), _check_pstore(facts, kdump_ok), _check_agent(facts, fam)]
    release = facts.get("kernel.release") or None
    exposed, upgrade_to = exposure(release, facts.get("kernel.version") or None, rules)
    from ..classifier.kernels import parse_release

    kernel = parse_release(release, facts.get("kernel.version") or None)
    return {
        "schema_version": AUDIT_SCHEMA_VERSION,
        "instance_id": instance_id,
        "name": name,
        "region": region,
        "account": account,
        "audited_at": audited_at,
        "os": {"id": facts.get("os.id", ""), "version_id": facts.get("os.version_id", ""), "name": facts.get("os.name", ""),
               "family": fam},
        "kernel": {"release": release, "stream": kernel.stream if kernel else None},
        "ready": kdump_ok,
        "checks": [asdict(c) for c in checks],
        "exposed": exposed,
        "upgrade_to": upgrade_to,
        "error": None,
    }


def unreachable(instance_id: str, reason: str, *, region: str = "", account: str = "", name: str = "",
                audited_at: str | None = None) -> dict[str, Any]:
    """The result of an instance the audit could not run on: not ready, and why."""
    return {
        "schema_version": AUDIT_SCHEMA_VERSION, "instance_id": instance_id, "name": name, "region": region,
        "account": account, "audited_at": audited_at, "os": {}, "kernel": {"release": None, "stream": None},
        "ready": False,
        "checks": [asdict(Check("audit", "fail", reason[:300],
                                "check the Cloud Assistant agent: systemctl status aliyun; it must be online for collection too"))],
        "exposed": [], "upgrade_to": None, "error": reason[:300],
    }


def problems(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks that are not ok, fails first."""
    order = {"fail": 0, "warn": 1}
    return sorted((c for c in result.get("checks") or [] if c.get("status") in order), key=lambda c: order[c["status"]])


def render_table(results: list[dict[str, Any]]) -> str:
    """The readable form of ``crashdiag audit``: one block per instance, problems only."""
    from .escape import plain

    out = []
    ready = sum(1 for r in results if r.get("ready"))
    out.append(f"{ready} of {len(results)} instances ready for the next crash")
    for r in results:
        head = f"{plain(r['instance_id'], 40)}  {'READY' if r.get('ready') else 'NOT READY'}"
        extra = [plain(x, 60) for x in (r.get("name"), r.get("region"), (r.get("kernel") or {}).get("release")) if x]
        out.append("")
        out.append(head + (f"  ({', '.join(extra)})" if extra else ""))
        for c in problems(r):
            out.append(f"  {c['status'].upper():<4}  {c['id']:<24} {plain(c['detail'], 300)}")
            if c.get("fix"):
                out.append(f"        fix: {plain(c['fix'], 400)}")
        for e in r.get("exposed") or []:
            out.append(f"  EXPOSED {e['rule']}: {plain(e['title'], 120)} (fixed in {plain(e['upgrade_to'], 60)})")
        if r.get("upgrade_to"):
            out.append(f"        upgrade the kernel to {plain(r['upgrade_to'], 60)} or later")
        if not problems(r) and not r.get("exposed"):
            out.append("  all checks ok")
    return "\n".join(out)


# --- the fleet's readiness: summaries the audit writes, merged for the fleet page --------------

SUMMARY_PREFIX = "audit/summary/"
SUMMARY_DAYS = 8  # the fleet page shows the newest audit of each region within this many days
EXPOSED_SHOWN = 200  # instances listed per known issue on the page


def compact_row(r: dict[str, Any]) -> dict[str, Any]:
    """One instance in a region summary: what the fleet page and digest need, nothing more."""
    return {
        "instance_id": r["instance_id"], "name": r.get("name") or "", "region": r.get("region") or "",
        "account": r.get("account") or "", "kernel": (r.get("kernel") or {}).get("release") or "",
        "ready": bool(r.get("ready")), "audited_at": r.get("audited_at"),
        "fail": [c["id"] for c in r.get("checks") or [] if c.get("status") == "fail"],
        "warn": [c["id"] for c in r.get("checks") or [] if c.get("status") == "warn"],
        "exposed": [{"rule": e["rule"], "title": e.get("title", ""), "upgrade_to": e.get("upgrade_to")} for e in r.get("exposed") or []],
        "upgrade_to": r.get("upgrade_to"),
    }


def region_summary(results: list[dict[str, Any]], day: str, region: str, account: str) -> dict[str, Any]:
    """What one audit run of one region (and account) found: a row per instance and, per
    check that is not ok, how many instances it hit with the fixes seen for it."""
    problems: dict[str, dict[str, Any]] = {}
    for r in results:
        for c in r.get("checks") or []:
            if c.get("status") not in ("fail", "warn"):
                continue
            p = problems.setdefault(c["id"], {"id": c["id"], "fail": 0, "warn": 0, "fixes": {}, "detail": c.get("detail", "")})
            p[c["status"]] += 1
            if c.get("fix"):
                p["fixes"][c["fix"]] = p["fixes"].get(c["fix"], 0) + 1
    return {"schema_version": AUDIT_SCHEMA_VERSION, "day": day, "region": region, "account": account,
            "rows": [compact_row(r) for r in results], "problems": sorted(problems.values(), key=lambda p: p["id"])}


def summary_key(day: str, region: str, account: str) -> str:
    return f"{SUMMARY_PREFIX}{day}/{region or 'unknown'}/{account or 'default'}.json"


def load_readiness(store: Any, today: str | None = None, days: int = SUMMARY_DAYS) -> dict[str, Any] | None:
    """The fleet's readiness from the newest summary of each (region, account) within
    ``days`` of ``today``: reads one small object per region and account, whatever the
    fleet's size. None when nothing was ever audited."""
    import datetime as dt
    import json

    from ..cloud.store import NotFound

    end = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.timezone.utc).date()
    newest: dict[tuple[str, str], str] = {}
    for back in range(days):
        day = (end - dt.timedelta(days=back)).isoformat()
        for key in store.list(f"{SUMMARY_PREFIX}{day}/"):
            parts = key[len(SUMMARY_PREFIX):].split("/")
            if len(parts) == 3 and parts[2].endswith(".json"):
                newest.setdefault((parts[1], parts[2][:-5]), key)
    summaries = []
    for key in sorted(newest.values()):
        try:
            doc = json.loads(store.get(key))
        except (NotFound, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
            summaries.append(doc)
    return merge_summaries(summaries) if summaries else None


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One view of many region summaries: ready N of M, the most common problems with
    their most common fix, exposed instances grouped by known issue."""
    rows: dict[str, dict[str, Any]] = {}
    problems: dict[str, dict[str, Any]] = {}
    for s in summaries:
        for row in s["rows"]:
            if isinstance(row, dict) and isinstance(row.get("instance_id"), str):
                rows[row["instance_id"]] = row
        for p in s.get("problems") or []:
            q = problems.setdefault(p["id"], {"id": p["id"], "fail": 0, "warn": 0, "fixes": {}, "detail": p.get("detail", "")})
            q["fail"] += int(p.get("fail") or 0)
            q["warn"] += int(p.get("warn") or 0)
            for fix, n in (p.get("fixes") or {}).items():
                q["fixes"][fix] = q["fixes"].get(fix, 0) + int(n)
    top = []
    for p in problems.values():
        fixes = sorted(p["fixes"].items(), key=lambda kv: (-kv[1], kv[0]))
        top.append({"id": p["id"], "status": "fail" if p["fail"] else "warn", "count": p["fail"] + p["warn"],
                    "fail": p["fail"], "warn": p["warn"], "detail": p["detail"], "fix": fixes[0][0] if fixes else "",
                    "other_fixes": len(fixes) - 1 if fixes else 0})
    top.sort(key=lambda p: (p["status"] != "fail", -p["count"], p["id"]))
    issues: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        for e in row.get("exposed") or []:
            g = issues.setdefault(e["rule"], {"rule": e["rule"], "title": e.get("title", ""), "instances": [], "upgrade_to": set()})
            g["instances"].append({k: row.get(k) for k in ("instance_id", "name", "region", "account", "kernel")}
                                  | {"upgrade_to": e.get("upgrade_to")})
            if e.get("upgrade_to"):
                g["upgrade_to"].add(e["upgrade_to"])
    exposed = []
    for g in sorted(issues.values(), key=lambda g: (-len(g["instances"]), g["rule"])):
        inst = sorted(g["instances"], key=lambda i: (i["region"] or "", i["instance_id"]))
        exposed.append({"rule": g["rule"], "title": g["title"], "count": len(inst), "upgrade_to": sorted(g["upgrade_to"]),
                        "instances": inst[:EXPOSED_SHOWN]})
    ordered = sorted(rows.values(), key=lambda r: (r.get("ready", False), r.get("region") or "", r["instance_id"]))
    return {
        "day": max(s["day"] for s in summaries),
        "audited": len(rows), "ready": sum(1 for r in rows.values() if r.get("ready")),
        "exposed_instances": sum(1 for r in rows.values() if r.get("exposed")),
        "regions": sorted({r.get("region") or "" for r in rows.values()} - {""}),
        "accounts": sorted({r.get("account") or "" for r in rows.values()} - {""}),
        "problems": top, "exposed": exposed, "instances": ordered,
    }


def last_audit(store: Any, region: str, instance_id: str, today: str | None = None,
               days: int = SUMMARY_DAYS) -> dict[str, Any] | None:
    """The instance's newest audit within ``days`` (for its incident report): when, ready
    or not, what was not ok, what it was exposed to. None when it was not audited."""
    import datetime as dt
    import json

    from ..cloud.store import NotFound, StoreError, check_key

    end = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.timezone.utc).date()
    for back in range(days):
        key = f"audit/{(end - dt.timedelta(days=back)).isoformat()}/{region}/{instance_id}.json"
        try:
            check_key(key)
            doc = json.loads(store.get(key))
        except (NotFound, ValueError):
            continue
        except StoreError:
            return None  # the report goes out without it rather than not at all
        if not isinstance(doc, dict):
            continue
        return {"audited_at": doc.get("audited_at"), "ready": bool(doc.get("ready")),
                "problems": [{k: c.get(k, "") for k in ("id", "status", "detail", "fix")} for c in problems(doc)][:20],
                "exposed": [{k: e.get(k) for k in ("rule", "title", "upgrade_to")} for e in doc.get("exposed") or []][:20],
                "upgrade_to": doc.get("upgrade_to")}
    return None
