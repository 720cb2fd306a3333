from __future__ import annotations

import json

from crashdiag.redact import redact_log, redact_report, redact_text


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
