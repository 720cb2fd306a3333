"""Write i-bp1bigmessages06's /var/log/messages: ~2 MB of ordinary syslog traffic from
one boot of an Ubuntu 22.04 instance, the real hung-task panic of
tests/cases/public/hung_task-ubuntu-5.15-ltp-swap-panic.txt near the end, then the first
lines of the next boot. Deterministic (seeded): running it again rewrites the same bytes.

    .venv/bin/python events/instances/make_big_messages.py [--check]

``--check`` compares instead of writing (exit status 1 when the file differs).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASE = REPO / "tests/cases/public/hung_task-ubuntu-5.15-ltp-swap-panic.txt"
OUT = HERE / "i-bp1bigmessages06/root/var/log/messages"

HOST = "big-06"
BOOT = dt.datetime(2026, 11, 26, 8, 55, 12)  # the boot that ends in the panic (local time, UTC+8)
BOOT_EPOCH = 1795654512  # BOOT as epoch seconds, for audit record stamps
NEXT_BOOT = dt.datetime(2026, 11, 26, 10, 0, 3)
TARGET_BYTES = 2_000_000
SEED = 20261126

# The guest script's crash-line pattern: filler must never match it.
CRASH_RE = re.compile(
    r"Kernel panic|BUG:|Oops|general protection|Call Trace|WARNING:|INFO: task|soft lockup|hard LOCKUP"
    r"|rcu.*stall|Out of memory|invoked oom-killer|Hardware Error|divide error|invalid opcode|[Uu]nable to handle"
)


def stamp(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def crash_lines() -> list[tuple[float, str]]:
    text = CASE.read_text(encoding="utf-8")
    log = text.split("\n\n", 1)[1]
    out: list[tuple[float, str]] = []
    last = 0.0
    for line in log.splitlines():
        m = re.match(r"\[\s*(\d+\.\d+)\]", line)
        if m:
            last = float(m.group(1))
        out.append((last, line))
    return out


class Filler:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pid = 2400
        self.session = 3
        self.audit = 180

    def next_pid(self) -> int:
        self.pid += self.rng.randint(1, 40)
        return self.pid

    def ip(self) -> str:
        r = self.rng
        return f"{r.choice([45, 61, 89, 103, 117, 141, 185, 193, 222])}.{r.randint(1, 254)}.{r.randint(0, 254)}.{r.randint(1, 254)}"

    def line(self, up: float) -> str:
        r = self.rng
        k = f"kernel: [{up:12.6f}] "
        c = r.random()
        if c < 0.34:
            return (k + f"[UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:2a:9c:41:ee:ff:ff:ff:ff:ff:08:00 SRC={self.ip()} "
                    f"DST=172.16.8.21 LEN={r.choice([40, 44, 52, 60])} TOS=0x00 PREC=0x00 TTL={r.randint(40, 250)} "
                    f"ID={r.randint(1, 65535)} PROTO=TCP SPT={r.randint(1024, 65535)} "
                    f"DPT={r.choice([22, 23, 80, 443, 445, 1433, 3306, 3389, 5900, 6379, 8080, 9200])} "
                    f"WINDOW={r.choice([1024, 14600, 29200, 65535])} RES=0x00 SYN URGP=0")
        if c < 0.44:
            self.audit += 1
            prof = r.choice(["/usr/sbin/chronyd", "/usr/bin/man", "snap.lxd.activate", "/usr/lib/snapd/snap-confine"])
            return (k + f'audit: type=1400 audit({BOOT_EPOCH + up:.3f}:{self.audit}): apparmor="ALLOWED" '
                    f'operation="open" profile="{prof}" name="/proc/{r.randint(100, 9000)}/status" '
                    f'pid={self.next_pid()} comm="{prof.rsplit("/", 1)[-1][:15]}" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
        if c < 0.56:
            pid = self.next_pid()
            return f"sshd[{pid}]: " + r.choice([
                f"Invalid user {r.choice(['admin', 'test', 'oracle', 'ubuntu', 'git', 'postgres'])} from {self.ip()} port {r.randint(1024, 65535)}",
                f"Connection closed by invalid user admin {self.ip()} port {r.randint(1024, 65535)} [preauth]",
                f"Received disconnect from {self.ip()} port {r.randint(1024, 65535)}:11: Bye Bye [preauth]",
                f"Disconnected from authenticating user root {self.ip()} port {r.randint(1024, 65535)} [preauth]",
            ])
        if c < 0.66:
            self.session += 1
            return r.choice([
                f"systemd[1]: Started Session {self.session} of User root.",
                f"systemd-logind[731]: New session {self.session} of user root.",
                f"systemd-logind[731]: Session {self.session - 1} logged out. Waiting for processes to exit.",
                f"systemd-logind[731]: Removed session {self.session - 1}.",
            ])
        if c < 0.78:
            return f"CRON[{self.next_pid()}]: (root) CMD (" + r.choice([
                "command -v debian-sa1 > /dev/null && debian-sa1 1 1",
                "/usr/local/share/aliyun-assist/update >/dev/null 2>&1",
                "/usr/local/bin/ltp-status.sh >> /var/tmp/ltp-status.log 2>&1",
                "test -x /etc/cron.daily/popularity-contest && /etc/cron.daily/popularity-contest --crond",
            ]) + ")"
        if c < 0.84:
            return f"chronyd[802]: Selected source 100.100.61.{r.choice([88, 89, 90, 91])} (ntp{r.randint(1, 12)}.cloud.aliyuncs.com)"
        if c < 0.92:
            return k + r.choice([
                "IPv6: ADDRCONF(NETDEV_CHANGE): veth3f2a1c9: link becomes ready",
                f"docker0: port 1(veth{r.randint(0x100000, 0xffffff):06x}) entered forwarding state",
                f"docker0: port 1(veth{r.randint(0x100000, 0xffffff):06x}) entered disabled state",
                f"device veth{r.randint(0x100000, 0xffffff):06x} left promiscuous mode",
                "TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters.",
                "EXT4-fs (vdb1): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
            ])
        return r.choice([
            "systemd[1]: Starting Cleanup of Temporary Directories...",
            "systemd[1]: systemd-tmpfiles-clean.service: Deactivated successfully.",
            "systemd[1]: Finished Cleanup of Temporary Directories.",
            "systemd[1]: Starting Daily apt download activities...",
            "systemd[1]: apt-daily.service: Deactivated successfully.",
            "systemd[1]: Finished Daily apt download activities.",
            f"systemd-resolved[688]: Using degraded feature set UDP instead of UDP+EDNS0 for DNS server 100.100.2.{r.choice([136, 138])}.",
            f"aliyun-service[{r.randint(900, 990)}]: [INFO] heartbeat ok, next in 60s",
            f"ltp-stress[{r.randint(3000, 3100)}]: iteration {r.randint(1, 400)} running float_bessel, float_exp_log, mmap-corruption01",
        ])


def boot_lines(t0: dt.datetime) -> list[str]:
    return [
        f"{stamp(t0)} {HOST} kernel: [    0.000000] Linux version 5.15.0-46-generic (buildd@lcy02-amd64-007) (gcc (Ubuntu 11.2.0-19ubuntu1) 11.2.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #49-Ubuntu SMP Thu Aug 4 18:03:25 UTC 2022 (Ubuntu 5.15.0-46.49-generic 5.15.39)",
        f"{stamp(t0)} {HOST} kernel: [    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-5.15.0-46-generic root=UUID=2c4cf1a4-3b6e-4f52-9b1d-5f0e3e0b6a71 ro console=tty1 console=ttyS0,115200n8 net.ifnames=0",
        f"{stamp(t0)} {HOST} kernel: [    0.000000] DMI: Alibaba Cloud Alibaba Cloud ECS, BIOS 449e491 04/01/2014",
        f"{stamp(t0)} {HOST} kernel: [    0.000000] Hypervisor detected: KVM",
        f"{stamp(t0)} {HOST} kernel: [    1.012533] EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
        f"{stamp(t0)} {HOST} kernel: [    2.438870] Adding 67108860k swap on /swapfile.  Priority:-2 extents:33 across:67895292k FS",
        f"{stamp(t0)} {HOST} systemd[1]: Started Journal Service.",
        f"{stamp(t0)} {HOST} systemd[1]: Started System Logging Service.",
        f"{stamp(t0)} {HOST} systemd[1]: Reached target Network.",
        f"{stamp(t0)} {HOST} systemd[1]: Started OpenBSD Secure Shell server.",
        f"{stamp(t0)} {HOST} systemd[1]: Started Aliyun Assist.",
        f"{stamp(t0)} {HOST} systemd[1]: Startup finished in 2.145s (kernel) + 6.802s (userspace) = 8.947s.",
    ]


def build() -> bytes:
    crash = crash_lines()
    crash_start = crash[0][0]
    out: list[str] = [f"{stamp(BOOT)} {HOST} rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2112.0\" x-pid=\"826\" x-info=\"https://www.rsyslog.com\"] start"]
    out += boot_lines(BOOT)
    after_boot = [
        f"{stamp(NEXT_BOOT)} {HOST} rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2112.0\" x-pid=\"829\" x-info=\"https://www.rsyslog.com\"] start",
        *boot_lines(NEXT_BOOT),
        f"{stamp(NEXT_BOOT + dt.timedelta(seconds=9))} {HOST} systemd-logind[733]: New session 1 of user root.",
        f"{stamp(NEXT_BOOT + dt.timedelta(seconds=9))} {HOST} systemd[1]: Started Session 1 of User root.",
    ]
    crash_text = [f"{stamp(BOOT + dt.timedelta(seconds=ts))} {HOST} kernel: {line}" for ts, line in crash]
    budget = TARGET_BYTES - sum(len(x) + 1 for x in out + crash_text + after_boot)

    def fill(mean_gap: float) -> tuple[list[str], float]:
        rng = random.Random(SEED)
        filler = Filler(rng)
        lines: list[str] = []
        size, up = 0, 9.0
        while size < budget:
            up += rng.expovariate(1 / mean_gap)
            msg = filler.line(up)
            assert not CRASH_RE.search(msg), msg
            line = f"{stamp(BOOT + dt.timedelta(seconds=up))} {HOST} {msg}"
            lines.append(line)
            size += len(line) + 1
        return lines, up

    # first pass: how many lines make the budget; second: spread them over the uptime
    trial, _ = fill(1.0)
    lines, last_up = fill((crash_start - 12.0) / len(trial) * 0.95)
    assert last_up < crash_start, "filler ran past the crash"
    out += lines + crash_text + after_boot
    for line in out[: len(out) - len(crash_text) - len(after_boot)] + after_boot:
        assert not CRASH_RE.search(line), line
    return ("\n".join(out) + "\n").encode("utf-8")


def main(argv: list[str]) -> int:
    data = build()
    if "--check" in argv:
        same = OUT.exists() and OUT.read_bytes() == data
        print(f"{OUT.relative_to(REPO)}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    nlines = data.count(b"\n")
    print(f"wrote {OUT.relative_to(REPO)} ({len(data)} bytes, {nlines} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
