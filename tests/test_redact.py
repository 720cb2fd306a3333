from __future__ import annotations

import json

from crashdiag.reports.redact import redact_log, redact_report, redact_text


def test_addresses_hosts_and_cmdline_are_hidden_symbols_kept():
    line = "Nov 26 10:00:01 web-01 kernel: eth0: 10.0.0.5 fe80::1:2 2001:db8::8a2e:370:7334 RIP: 0010:tcp_v4_rcv+0x1/0x2"
    out = redact_text(line)
    assert "web-01" not in out and "10.0.0.5" not in out and "fe80::1:2" not in out and "2001:db8" not in out
    assert out.startswith("Nov 26 10:00:01 <host> kernel:") and "tcp_v4_rcv+0x1/0x2" in out


def test_kernel_values_that_look_like_addresses_survive():
    for keep in ["RSP: 0018:ffff8820c2b9fd18 EFLAGS: 00010246", "3.10.0-1160.80.1.el7.x86_64", "10:00:01.123456",
                 "[ 1.073741] ata1.00: ATA-8", "list_del corruption, ffff91bc2ad47048->prev"]:
        assert redact_text(keep) == keep


def test_report_walk():
    rep = {"incident": {"instance_name": "db-primary"},
           "guest_context": {"cmdline": "root=UUID=abc ro crashkernel=auto rd.luks.key=secret", "hostname": "db-primary.corp"},
           "diagnosis": {"boot": {"cmdline": "root=UUID=abc"}, "evidence": ["db-primary login: [ 5.0] BUG: x at 192.168.1.7"]},
           "collection": {"log": {"path": "/var/crash/192.168.1.7-2026-11-26-10:00:01/vmcore-dmesg.txt"}}}
    red = redact_report(rep)
    text = json.dumps(red)
    for secret in ("rd.luks.key", "192.168.1.7", "db-primary"):
        assert secret not in text
    assert red["redacted"] is True and red["guest_context"]["cmdline"] == "<redacted>"


def test_log_bytes():
    assert b"10.1.2.3" not in redact_log(b"[ 1.0] IPv4: martian source 10.1.2.3 from 10.1.2.4\n")


def test_redact_setting_applies_to_everything_the_pipeline_writes(tmp_path):
    """CRASHDIAG_REDACT through a replay: report.json/.md/.html and the outbox messages
    hide the guest's addresses, host names and command line; crash.log keeps them."""
    from pathlib import Path

    from crashdiag.replay import replay
    from crashdiag.settings import Settings

    root = Path(__file__).resolve().parents[1]
    settings = Settings.from_env({"CRASHDIAG_REDACT": "1"}, store_dir=str(tmp_path / "store"),
                                 instances_dir=str(root / "events" / "instances"), outbox_dir=str(tmp_path / "outbox"),
                                 collect_poll_seconds=0.01)
    assert settings.redact is True
    result = replay((root / "events" / "eventbridge-crash-oom-messages.json").read_bytes(), settings)
    [inc] = result["incidents"]
    prefix = tmp_path / "store" / inc["prefix"]
    crash = (prefix / "crash.log").read_text()
    assert "app-02" in crash  # the syslog host is in the raw log ...
    written = [prefix / n for n in ("report.json", "report.md", "report.html")] + list((tmp_path / "outbox").iterdir())
    assert len(written) >= 5
    cmdline = (root / "events" / "instances" / "i-bp1oompanic0002" / "root" / "proc" / "cmdline").read_text().split()
    root_arg = next(a for a in cmdline if a.startswith("root="))
    for f in written:
        text = f.read_text(errors="replace")
        assert "app-02" not in text and root_arg not in text, f.name  # ... but nowhere else
    rep = json.loads((prefix / "report.json").read_text())
    assert rep["redacted"] is True and rep["diagnosis"]["kind"] == "oom_panic"
