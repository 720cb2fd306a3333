"""What the notifications say and how untrusted text is written into them (no network)."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crashdiag.notify.content import EXCERPT_BYTES, card, digest, excerpt_of, short_cause
from crashdiag.notify.dingtalk import at_mobiles, payload, sign
from crashdiag.notify.mail import addresses, build_email
from crashdiag.notify.messages import md_inert, to_html, to_markdown, to_text
from crashdiag.notify.notifier import notice_id, report_prefix
from crashdiag.settings import Settings

REPORT = {
    "source": "incidents/cn-hangzhou/i-bp1abc/e-1/crash.log",
    "incident": {"instance_id": "i-bp1abc", "instance_name": "web-1", "region": "cn-hangzhou", "event_time": "2026-11-26T10:00:01Z",
                 "host_failure": True},
    "collection": {"method": "console", "complete": False},
    "diagnosis": {"kind": "oom_panic", "title": "Kernel panic - Out of memory", "fingerprint": "abc123", "confidence": "high",
                  "fix_status": None, "modules": {"suspect": "eudp", "suspect_reason": "named in the call trace"},
                  "rule": {"id": "x", "cause": "First sentence. Second sentence! Third sentence.", "remedy_steps": ["Do this.", "Then that."]},
                  "evidence": ["line <1>"], "call_trace": [{"function": "f", "module": "m", "reliable": False}]},
}
NOTICE = {"id": "i-bp1abc.e-1", "instance_id": "i-bp1abc", "instance_name": "web-1", "kind": "oom_panic",
          "title": "Kernel panic - Out of memory", "fingerprint": "abc123", "created_at": 0}


def test_card_fields_in_order_and_email_only_blocks_left_out_of_the_card():
    msg = card(NOTICE, REPORT, "en", link="https://b.oss/x?Signature=a%2Bb", link_ttl=3600)
    title, text = to_markdown(msg)
    labels = re.findall(r"\*\*([^*]+)\*\*", text)
    assert labels == ["Instance", "Region", "Time", "Kind", "Cause", "First step", "Fix status", "Suspect module", "Confidence",
                      "Log obtained from"]
    assert "First sentence. Second sentence!" in text and "Third" not in text  # the cause in two sentences
    assert "Do this." in text and "Then that" not in text  # the first step only
    assert "eudp (named in the call trace)" in text and "no fixed kernel version is known" in text
    assert "serial console" in text and "(partial)" in text
    assert "oom\\_panic" in text and "\\" not in text.replace("\\_", "")  # only the underscore: no stray backslashes
    assert "> The host failed" in text
    assert "[Full report](https://b.oss/x?Signature=a%2Bb) (link valid for 1 hours)" in text
    assert "line" not in text and "Call trace" not in text  # evidence and trace are for the email
    assert title == "[crash] i-bp1abc (web-1): Kernel panic - Out of memory"
    plain = to_text(msg)
    assert "Evidence:\n    line <1>" in plain and "Call trace:\n    ? f [m]" in plain
    html = to_html(msg, "en")
    assert "<pre>line &lt;1&gt;</pre>" in html and '<a href="https://b.oss/x?Signature=a%2Bb">' in html


def test_card_without_a_known_issue_or_a_crash():
    rep = {**REPORT, "diagnosis": {**REPORT["diagnosis"], "rule": None, "fix_status": "affected", "fix_detail": "x predates y"}}
    text = to_markdown(card(NOTICE, rep, "en", link="", link_ttl=0))[1]
    assert "No known issue matched" in text and "affected: x predates y" in text and "Full report" not in text
    none = {**REPORT, "diagnosis": {"kind": "none", "title": "no crash", "rule": None}}
    assert "No crash report was found" in to_markdown(card(NOTICE, none, "en", link="", link_ttl=0))[1]
    assert "没有发现宕机报告" in to_markdown(card(NOTICE, none, "zh", link="", link_ttl=0))[1]


def test_links_we_do_not_make_are_dropped():
    for bad in ("javascript:alert(1)", "data:text/html,x", ""):
        msg = card(NOTICE, REPORT, "en", link=bad, link_ttl=60)
        assert "](" not in to_markdown(msg)[1] and "<a " not in to_html(msg, "en")


def test_digest_groups_by_fingerprint_and_counts_repeats():
    a = [({**NOTICE, "id": f"i-{n}.e", "instance_id": f"i-{n}", "instance_name": None}, REPORT) for n in range(70)]
    b = [({**NOTICE, "id": f"i-b{n}.e", "instance_id": f"i-b{n}", "instance_name": None, "fingerprint": "def456",
           "title": "other"}, None) for n in range(2)]
    rep = [{**NOTICE, "instance_id": "i-r", "instance_name": None, "created_at": t, "event_time": f"T{t}"} for t in (1, 2)]
    text = to_markdown(digest(a + b, rep, "en", "digest-1"))[1]
    assert text.startswith("### [crash] 74 incidents, 2 kind(s) of crash")
    assert text.index("#### 70 × Kernel panic") < text.index("#### 2 × other")
    assert all(f"i-{n}," in text or f"i-{n}\n" in text for n in range(70))  # every instance named, none cut
    assert "- i-r: Kernel panic - Out of memory: 2 more time(s), last at T2" in text


def test_dingtalk_payload_keyword_and_mentions():
    msg = card(NOTICE, REPORT, "en", link="", link_ttl=0)
    p = payload(msg, keyword="告警", mobiles=at_mobiles("138 0000 0000, 13900000000,+86-13700000000, evil<x>"), at_all=False)
    assert p["at"] == {"atMobiles": ["13900000000", "+86-13700000000"], "isAtAll": False}
    assert p["markdown"]["text"].endswith("告警\n\n@13900000000 @+86-13700000000")
    assert "告警" in p["markdown"]["title"]
    # a keyword with punctuation is in the text exactly as typed (the robot looks for it there)
    p = payload(msg, keyword="ECS-告警!")
    assert "\n\nECS-告警!" in p["markdown"]["text"] and "ECS\\-" not in p["markdown"]["text"]


def test_sign_is_what_dingtalk_documents():
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote_plus, unquote_plus

    secret, ts = "SECabc", 1700000000000
    expected = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert sign(secret, ts) == quote_plus(expected) and unquote_plus(sign(secret, ts)) == expected


def test_email_headers_parts_and_attachment():
    notice = {**NOTICE, "instance_name": "a\r\nBcc: x@evil.example"}
    msg = card(notice, REPORT, "en", link="", link_ttl=0, excerpt=("crash-i-bp1abc.log.txt", "kernel: BUG 内核\n".encode()))
    m = email.message_from_bytes(bytes(build_email(msg, mail_from="a@b.example", mail_to=["c@d.example"], lang="en", now=0)),
                                 policy=email.policy.default)
    assert m["Bcc"] is None and m["To"] == "c@d.example" and "\n" not in m["Subject"]
    assert m["Message-ID"] == "<crashdiag.i-bp1abc.e-1@b.example>" and m["Auto-Submitted"] == "auto-generated"
    (att,) = m.iter_attachments()
    assert att.get_filename() == "crash-i-bp1abc.log.txt" and att.get_content_charset() == "utf-8"
    assert att.get_content() == "kernel: BUG 内核\n"  # non-ASCII log text readable as it was


def test_mail_to_takes_only_plain_addresses():
    assert addresses("a@b.example, Ops <ops@b.example>,, bad, x@y.example\r\nBcc: z@evil") == ["a@b.example", "ops@b.example"]


def test_excerpt_is_a_window_around_the_crash():
    filler = b"".join(b"[%8d.000000] nothing to see here, line %d\n" % (n, n) for n in range(20000))
    crash = b"[99999.000000] BUG: unable to handle kernel NULL pointer dereference at 0000000000000008\n"
    log = filler + crash + filler
    report = {"diagnosis": {"evidence": [crash.decode().strip()]}}
    name, data = excerpt_of(log, report, "x.log.txt")
    assert len(data) <= EXCERPT_BYTES and crash in data
    assert data.startswith(b"[") and data.endswith(b"\n")
    assert excerpt_of(b"short\n", report, "x")[1] == b"short\n"
    # no evidence found: the tail
    assert excerpt_of(log, {"diagnosis": {"evidence": ["not in the log at all, nowhere"]}}, "x")[1].endswith(filler[-100:])


def test_short_cause_keeps_one_or_two_sentences():
    assert short_cause("One. Two. Three.") == "One. Two."
    assert short_cause("内存耗尽。配置导致重启。其他。") == "内存耗尽。配置导致重启。"
    assert short_cause("x" * 1000).endswith("…") and len(short_cause("x" * 1000)) <= 320


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_untrusted_text_is_inert_in_every_medium(s):
    out = md_inert(s)
    assert "<" not in out and ">" not in out and "\n" not in out and "\r" not in out
    assert not re.search(r"&#?[A-Za-z0-9]+;", out)  # no HTML entity that a renderer could turn back into '<'
    # every '[', ']', '`', '*', '_' (and so every link, image, code span or emphasis) is escaped
    assert not re.search(r"[\[\]`*_\\]", re.sub(r"\\.", "", out))
    from crashdiag.reports.escape import h

    assert "<" not in h(s) and ">" not in h(s) and '"' not in h(s)


def test_keys_the_notifier_accepts():
    assert report_prefix("incidents/cn-hangzhou/i-a/e-1/report.json") == "incidents/cn-hangzhou/i-a/e-1/"
    assert report_prefix("reports/inbox/x.log/report.json") == "reports/inbox/x.log/"
    for bad in ("inbox/report.json", "incidents/../x/report.json", "incidents/a/report.md", "notify/report.json"):
        with pytest.raises(ValueError):
            report_prefix(bad)
    assert notice_id("incidents/cn-hangzhou/i-a/e-1/") == "i-a.e-1"
    assert re.fullmatch(r"inbox\.[0-9a-f]{16}", notice_id("reports/inbox/x.log/"))


def test_notify_settings_from_the_environment():
    env = {"DINGTALK_WEBHOOK": "https://oapi.dingtalk.com/robot/send?access_token=tok123456", "DINGTALK_SECRET": "SECxyz",
           "DINGTALK_AT_ALL": "true", "SMTP_PORT": "587", "SMTP_SECURITY": "starttls", "SMTP_PASSWORD": "pw-123456",
           "MAIL_TO": "a@b.example"}
    s = Settings.from_env(env)
    assert s.dingtalk_at_all is True and s.smtp_port == 587 and s.smtp_security == "starttls"
    assert "tok123456" in s.secrets() and "SECxyz" in s.secrets() and "pw-123456" in s.secrets()
    assert "tok123456" not in repr(s) and "SECxyz" not in repr(s) and "pw-123456" not in repr(s)
    with pytest.raises(ValueError, match="SMTP_SECURITY"):
        Settings.from_env({"SMTP_SECURITY": "tls"})
    with pytest.raises(ValueError, match="DINGTALK_AT_ALL"):
        Settings.from_env({"DINGTALK_AT_ALL": "maybe"})
    assert Settings.from_env({}).dingtalk_at_all is False


def test_a_webhook_without_a_token_is_refused_without_echoing_it():
    from crashdiag.notify.dingtalk import DingTalkRobot

    with pytest.raises(ValueError) as err:
        DingTalkRobot("https://oapi.dingtalk.com/robot/send?token=secret-ish-value")
    assert "secret-ish-value" not in str(err.value)


def test_header_values_drop_c0_c1_controls_and_line_separators():
    """U+0085 (NEL) in an instance name made build_email raise on every retry."""
    for name in ("web\u0085Bcc: x@evil.example", "web\u2028Bcc: x@evil.example", "web\u2029\x1b[31m\x9b\x0b\x0cx"):
        notice = {**NOTICE, "instance_name": name}
        msg = card(notice, REPORT, "en", link="", link_ttl=0, excerpt=(f"crash-{name}.log.txt", b"kernel: BUG\n"))
        raw = bytes(build_email(msg, mail_from="a@b.example", mail_to=["c@d.example"], lang="en", now=0))
        m = email.message_from_bytes(raw, policy=email.policy.default)
        assert m["Bcc"] is None and m["To"] == "c@d.example"
        for value in (m["Subject"], next(m.iter_attachments()).get_filename()):
            assert "web" in value and not any(c in value for c in "\u0085\u2028\u2029\x1b\x9b\x0b\x0c\r\n"), value
