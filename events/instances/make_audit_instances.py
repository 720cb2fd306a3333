"""Write (or, with --check, verify) the simulated instances of the readiness audit.

Each tree shows one thing the audit must judge (``crashdiag audit --instances
events/instances``): a healthy instance, kdump switched off, no crash kernel memory,
``vm.panic_on_oom=1``, a kernel older than a known issue's fix. What would come from
``systemctl`` or ``df`` on a real guest is in ``root/run/crashdiag-fixture/``; tools the
audit looks for are tiny executable stand-ins.

    python events/instances/make_audit_instances.py          # (re)write the trees
    python events/instances/make_audit_instances.py --check  # exit 1 if they differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GiB_KB = 1024 * 1024

RHEL_TOOL = "#!/bin/sh\n# fixture stand-in: the audit only checks that this tool is installed\nexit 0\n"

SYSCTL_DEFAULTS = {
    "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1", "kernel/softlockup_panic": "0",
    "kernel/hung_task_panic": "0", "kernel/hung_task_timeout_secs": "120", "kernel/unknown_nmi_panic": "0",
    "kernel/panic_on_warn": "0", "kernel/watchdog_thresh": "10", "kernel/sysrq": "16",
}

OS = {
    "alinux3": ('NAME="Alibaba Cloud Linux"\nVERSION="3 (Soaring Falcon)"\nID="alinux"\nID_LIKE="rhel fedora centos anolis"\n'
                'VERSION_ID="3"\nPRETTY_NAME="Alibaba Cloud Linux 3 (Soaring Falcon)"\n'),
    "rocky8": ('NAME="Rocky Linux"\nVERSION="8.5 (Green Obsidian)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
               'VERSION_ID="8.5"\nPRETTY_NAME="Rocky Linux 8.5 (Green Obsidian)"\n'),
    "centos7": ('NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
                'PRETTY_NAME="CentOS Linux 7 (Core)"\n'),
    "ubuntu22": ('PRETTY_NAME="Ubuntu 22.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\n'
                 'ID=ubuntu\nID_LIKE=debian\n'),
    "debian12": ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                 'VERSION="12 (bookworm)"\nID=debian\n'),
}

# instance id -> what makes it what it is
INSTANCES = {
    "i-bp1rdyhealthy001": dict(
        name="ready-01", os="alinux3", family="rhel", release="5.10.134-16.3.al8.x86_64",
        version="Linux version 5.10.134-16.3.al8.x86_64 (mockbuild@alinux) #1 SMP Thu Jun 20 2024",
        mem_gb=16, crashkernel="0M-2G:0M,2G-8G:192M,8G-:256M", crash_size=256 << 20, enabled="enabled", active="active",
        avail_gb=60, tags={"crashdiag:audit": "true", "env": "prod"}),
    "i-bp1rdykdumpoff02": dict(
        name="kdump-off-02", os="rocky8", family="rhel", release="4.18.0-348.7.1.el8_5.x86_64",
        version="Linux version 4.18.0-348.7.1.el8_5.x86_64 (mockbuild@rocky) #1 SMP Wed Dec 22 2021",
        mem_gb=8, crashkernel="auto", crash_size=192 << 20, enabled="disabled", active="inactive", loaded="0",
        avail_gb=30, tags={"env": "prod"}),
    "i-bp1rdynockmem003": dict(
        name="no-crashkernel-03", os="ubuntu22", family="debian", release="5.15.0-91-generic",
        version="Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023",
        mem_gb=4, crashkernel=None, crash_size=0, enabled="enabled", active="active", loaded="0",
        avail_gb=25, tags={"crashdiag:audit": "true"}),
    "i-bp1rdyoompanic04": dict(
        name="oom-panic-04", os="debian12", family="debian", release="6.1.0-13-amd64",
        version="Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",
        mem_gb=8, crashkernel="1G-4G:192M,4G-64G:256M,64G-:512M", crash_size=256 << 20, enabled="enabled",
        active="active", avail_gb=40, sysctl={"vm/panic_on_oom": "1"}, tags={"crashdiag:audit": "true"}),
    "i-bp1rdyoldkern005": dict(
        name="old-kernel-05", os="centos7", family="rhel", release="3.10.0-1160.76.1.el7.x86_64",
        version="Linux version 3.10.0-1160.76.1.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) #1 SMP Wed Aug 10 16:21:17 UTC 2022",
        mem_gb=32, crashkernel="auto", crash_size=256 << 20, enabled="enabled", active="active",
        avail_gb=80, tags={"crashdiag:audit": "true"}),
}


def files_of(spec: dict) -> dict[str, tuple[str, int]]:
    """path under the instance folder -> (content, mode)."""
    f: dict[str, tuple[str, int]] = {}

    def put(path: str, text: str, mode: int = 0o644) -> None:
        f[path] = (text, mode)

    meta = {"region": spec.get("region", "cn-hangzhou"), "name": spec["name"], "status": ["Running"], "agent_online": True,
            "os_type": "linux", "memory_mb": spec["mem_gb"] * 1024, "tags": spec["tags"]}
    put("instance.json", json.dumps(meta, indent=2) + "\n")
    r = "root/"
    put(r + "etc/os-release", OS[spec["os"]])
    ck = f" crashkernel={spec['crashkernel']}" if spec["crashkernel"] else ""
    put(r + "proc/cmdline", f"BOOT_IMAGE=/boot/vmlinuz-{spec['release']} root=UUID=3f1c0b7e-5a8e-4d0e-9c2b-7d4e2a9b6c11 ro"
        f"{ck} console=tty0 console=ttyS0,115200n8 net.ifnames=0\n")
    put(r + "proc/version", spec["version"] + "\n")
    put(r + "proc/meminfo", f"MemTotal:       {spec['mem_gb'] * GiB_KB - 180224} kB\nMemFree:         {spec['mem_gb'] * GiB_KB // 2} kB\n")
    put(r + "proc/sys/kernel/osrelease", spec["release"] + "\n")
    for k, v in {**SYSCTL_DEFAULTS, **spec.get("sysctl", {})}.items():
        put(r + f"proc/sys/{k}", v + "\n")
    put(r + "sys/kernel/kexec_crash_size", f"{spec['crash_size']}\n")
    loaded = spec.get("loaded", "1" if spec["active"] == "active" and spec["crash_size"] else "0")
    put(r + "sys/kernel/kexec_crash_loaded", loaded + "\n")
    put(r + "sys/module/pstore/parameters/backend", "(null)\n")
    if spec["family"] == "debian":
        put(r + "lib/systemd/system/kdump-tools.service", "[Unit]\nDescription=Kernel crash dump capture service\n")
        put(r + "etc/default/kdump-tools", 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\n')
        put(r + "usr/bin/makedumpfile", RHEL_TOOL, 0o755)
        put(r + "usr/sbin/kdump-config", RHEL_TOOL, 0o755)
    else:
        put(r + "usr/lib/systemd/system/kdump.service", "[Unit]\nDescription=Crash recovery kernel arming\n")
        put(r + "etc/kdump.conf", "path /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\n")
        put(r + "usr/sbin/makedumpfile", RHEL_TOOL, 0o755)
        put(r + "usr/sbin/vmcore-dmesg", RHEL_TOOL, 0o755)
        put(r + "usr/bin/kdumpctl", RHEL_TOOL, 0o755)
    put(r + "etc/systemd/journald.conf", "[Journal]\nStorage=persistent\n")
    put(r + "usr/local/share/aliyun-assist/2.2.3.857/aliyun-service", RHEL_TOOL, 0o755)
    put(r + "run/crashdiag-fixture/kdump-enabled", spec["enabled"] + "\n")
    put(r + "run/crashdiag-fixture/kdump-active", spec["active"] + "\n")
    size = 100 * GiB_KB
    avail = spec["avail_gb"] * GiB_KB
    put(r + "run/crashdiag-fixture/df-kdump", "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        f"/dev/vda3      {size:>11} {size - avail:>8} {avail:>9}      {100 - spec['avail_gb']}% /\n")
    return f


def main(argv: list[str]) -> int:
    check = "--check" in argv
    bad = []
    for iid, spec in INSTANCES.items():
        for rel, (text, mode) in files_of(spec).items():
            path = HERE / iid / rel
            if check:
                if not path.is_file() or path.read_text() != text or bool(path.stat().st_mode & 0o100) != bool(mode & 0o100):
                    bad.append(str(path.relative_to(HERE)))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
    if bad:
        print("differs from the generator: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
