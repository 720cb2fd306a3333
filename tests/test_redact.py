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


SECRETS = ("hunter2", "s3cr3t-luks", "tok-abc123")
ADDRESSES = ("10.1.2.3", "fe80::a1:b2", "192.168.7.9")
HOSTS = ("app-02", "app-02.corp.example")


def _hostile_instance(tmp_path):
    """i-bp1oompanic0002 with secrets on its command line and in its log, addresses and its
    host name in the log, and its host name where the guest script reads it."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    inst = tmp_path / "instances"
    shutil.copytree(root / "events" / "instances" / "i-bp1oompanic0002", inst / "i-bp1oompanic0002")
    r = inst / "i-bp1oompanic0002" / "root"
    (r / "proc" / "sys" / "kernel" / "hostname").write_text("app-02\n")
    cmdline = (r / "proc" / "cmdline").read_text().strip()
    (r / "proc" / "cmdline").write_text(f"{cmdline} password=hunter2 rd.luks.key=s3cr3t-luks api_token=tok-abc123\n")
    messages = r / "var" / "log" / "messages"
    lines = messages.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if "Kernel panic" in ln)
    extra = [
        "Nov 26 09:00:00 app-02 kernel: [    0.000000] Command line: BOOT_IMAGE=/vmlinuz ro password=hunter2 "
        "rd.luks.key=s3cr3t-luks api_token=tok-abc123\n",
        "Nov 26 09:59:59 app-02 kernel: [3624965.300000] IPv4: martian source 10.1.2.3 from 192.168.7.9, on dev eth0\n",
        "Nov 26 09:59:59 app-02 kernel: [3624965.300001] nfs: server app-02.corp.example not responding, fe80::a1:b2 timed out\n",
    ]
    messages.write_text("".join([*lines[:at], *extra, *lines[at:]]))
    return root, inst


def _stored_texts(tmp_path):
    """Every stored object but the guest's own log, and every outbox message (attachments
    decoded), as text."""
    import email
    from email import policy

    out = {}
    for f in sorted((tmp_path / "store").rglob("*")):
        if f.is_file() and f.name not in ("crash.log", "guest-upload.log"):
            out[str(f.relative_to(tmp_path))] = f.read_text(errors="replace")
    for f in sorted((tmp_path / "outbox").iterdir()):
        if f.suffix == ".eml":
            msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
            parts = [str(v) for _, v in msg.items()]
            for part in msg.walk():
                payload = part.get_payload(decode=True)
                if payload:
                    parts.append(payload.decode("utf-8", "replace"))
            out[f.name] = "\n".join(parts)
        else:
            out[f.name] = f.read_text(errors="replace")
    return out


def _hostile_replay(tmp_path, redact: bool):
    from crashdiag.replay import replay
    from crashdiag.settings import Settings

    root, inst = _hostile_instance(tmp_path)
    settings = Settings.from_env({"CRASHDIAG_REDACT": "1" if redact else "0"}, store_dir=str(tmp_path / "store"),
                                 instances_dir=str(inst), outbox_dir=str(tmp_path / "outbox"), collect_poll_seconds=0.01)
    result = replay((root / "events" / "eventbridge-crash-oom-messages.json").read_bytes(), settings)
    [inc] = result["incidents"]
    crash = (tmp_path / "store" / inc["prefix"] / "crash.log").read_text()
    for s in (*SECRETS, *ADDRESSES, *HOSTS):
        assert s in crash  # the guest's log keeps everything ...
    texts = _stored_texts(tmp_path)
    assert any(n.endswith(".eml") for n in texts) and any(n.endswith("report.html") for n in texts)
    assert any(n.endswith("collect.json") for n in texts) and any(n.endswith("event.json") for n in texts)
    return texts


def test_a_whole_replay_with_redaction_stores_and_sends_no_secret_address_or_host_name(tmp_path):
    texts = _hostile_replay(tmp_path, redact=True)
    for name, text in texts.items():  # ... and nothing else does
        for s in (*SECRETS, *ADDRESSES, *HOSTS):
            assert s not in text, (name, s)
    report = json.loads(next(t for n, t in texts.items() if n.endswith("report.json")))
    assert report["redacted"] is True and report["diagnosis"]["kind"] == "oom_panic"
    assert "&lt;host&gt;" in next(t for n, t in texts.items() if n.endswith("report.html"))  # the raw-log section, redacted


def test_command_line_secrets_are_masked_with_redaction_off(tmp_path):
    texts = _hostile_replay(tmp_path, redact=False)
    for name, text in texts.items():
        for s in SECRETS:
            assert s not in text, (name, s)
    collect = json.loads(next(t for n, t in texts.items() if n.endswith("collect.json")))
    assert "password=<redacted>" in collect["context"]["cmdline"] and "root=UUID=" in collect["context"]["cmdline"]
    html = next(t for n, t in texts.items() if n.endswith("report.html"))
    assert "10.1.2.3" in html and "rd.luks.key=&lt;redacted&gt;" in html  # redaction off: only secrets hidden
