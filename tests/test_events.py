"""ECS event parsing: both forms, batches, every way an event can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crashdiag.pipeline.events import Accepted, Rejected, Skipped, parse_events, parse_oss_events

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def test_eventbridge_and_cloudmonitor_forms_name_the_same_incident():
    [eb] = parse_events(load("eventbridge-crash-kdump-executing.json"))
    [cm] = parse_events(load("cloudmonitor-crash-kdump-executed.json"))
    assert isinstance(eb, Accepted) and isinstance(cm, Accepted)
    assert (eb.event.form, cm.event.form) == ("eventbridge", "cloudmonitor")
    assert eb.event.incident_id == cm.event.incident_id == "e-bp1crash0kdump01"
    assert eb.event.prefix == cm.event.prefix == "incidents/cn-hangzhou/i-bp1kdumpel7demo01/e-bp1crash0kdump01/"
    assert (eb.event.status, cm.event.status) == ("Executing", "Executed")


def test_samples_have_the_published_envelopes():
    """EventBridge: subject acs.ecs:<region>:<account>:<id>, time with +08:00,
    aliyunpublishaddr; CloudMonitor: ver, id, product, resourceId, level, name, userId,
    eventTime, regionId, content (the shapes events.py's docstring cites)."""
    eb = json.loads(load("eventbridge-crash-kdump-executing.json"))
    assert eb["subject"] == "acs.ecs:cn-hangzhou:1234567890123456:i-bp1kdumpel7demo01"
    assert eb["time"].endswith("+08:00") and "aliyunpublishaddr" in eb
    cm = json.loads(load("cloudmonitor-crash-kdump-executed.json"))
    assert list(cm) == ["ver", "id", "product", "resourceId", "level", "name", "userId", "eventTime", "regionId", "content"]


def test_instance_id_only_in_the_subject():
    raw = json.loads(load("eventbridge-crash-kdump-executed.json"))
    assert "instanceId" not in raw["data"]
    [o] = parse_events(raw)
    assert isinstance(o, Accepted) and o.event.instance_id == "i-bp1kdumpel7demo01"
    del raw["aliyunregionid"]
    [o] = parse_events(raw)
    assert o.event.region == "cn-hangzhou"  # from the subject too


def test_subject_naming_something_else_is_not_an_instance():
    raw = json.loads(load("eventbridge-crash-kdump-executed.json"))
    raw["subject"] = "acs.ecs:cn-hangzhou:1234567890123456:215672"
    [o] = parse_events(raw)
    assert isinstance(o, Rejected) and "is not i-" in o.reason


def test_times_with_offsets_become_publish_time_when_details_lack_it():
    eb = json.loads(load("eventbridge-crash-kdump-executing.json"))
    del eb["data"]["publishTime"]
    [o] = parse_events(eb)
    assert o.event.publish_time == "2026-11-26T18:00:05+08:00"
    cm = json.loads(load("cloudmonitor-crash-kdump-executed.json"))
    del cm["content"]["publishTime"]
    [o] = parse_events(cm)
    assert o.event.publish_time == "2026-11-26T18:02:31.922+08:00"
    cm["eventTime"] = "yesterday"
    [o] = parse_events(cm)
    assert o.event.publish_time is None


def test_instance_name_is_read_when_an_envelope_carries_one():
    cm = json.loads(load("cloudmonitor-crash-kdump-executed.json"))
    [o] = parse_events(cm)
    assert o.event.instance_name is None  # not in the documented envelope
    cm["instanceName"] = "web-01"
    [o] = parse_events(cm)
    assert o.event.instance_name == "web-01"


def test_bom_and_leading_whitespace_are_read():
    raw = load("eventbridge-crash-bom-windows.json")
    assert raw.startswith(b"\xef\xbb\xbf\r\n")
    [o] = parse_events(raw)
    assert isinstance(o, Accepted) and o.event.instance_id == "i-bp1oompanic0002"
    [o] = parse_events(raw.decode("utf-8"))  # the BOM as a character
    assert isinstance(o, Accepted)
    utf16 = raw.decode("utf-8-sig").encode("utf-16")  # Notepad's "Unicode": BOM + UTF-16
    [o] = parse_events(utf16)
    assert isinstance(o, Accepted)
    [o] = parse_events(b"\xef\xbb\xbf")
    assert isinstance(o, Rejected) and "not JSON" in o.reason


def test_bytes_str_dict_and_batch():
    raw = load("eventbridge-crash-kdump-executing.json")
    for payload in (raw, raw.decode(), json.loads(raw)):
        [o] = parse_events(payload)
        assert isinstance(o, Accepted)
    outcomes = parse_events(load("eventbridge-batch-two-crashes.json"))
    assert [o.event.instance_id for o in outcomes] == ["i-bp1kdumpel7demo01", "i-bp1oompanic0002"]
    wrapped = {"events": json.loads(load("eventbridge-batch-two-crashes.json"))}
    assert len(parse_events(wrapped)) == 2


def test_host_failure_is_marked():
    [o] = parse_events(load("eventbridge-system-failure-bootloop.json"))
    assert o.event.code == "SystemFailure.Reboot" and o.event.host_failure


@pytest.mark.parametrize("name", ["eventbridge-not-crash-maintenance.json", "eventbridge-not-crash-statechange.json",
                                  "eventbridge-crash-canceled-status.json"])
def test_other_events_are_skipped_with_a_reason(name):
    [o] = parse_events(load(name))
    assert isinstance(o, Skipped) and o.reason


@pytest.mark.parametrize(
    "name, words",
    [("malformed-not-json.json", "not JSON"), ("malformed-bad-instance-id.json", "is not i-"),
     ("malformed-wrong-source.json", "not acs.ecs"), ("malformed-no-instance.json", "no instance id")],
)
def test_malformed_events_are_rejected_not_raised(name, words):
    [o] = parse_events(load(name))
    assert isinstance(o, Rejected) and words in o.reason


def test_instance_id_from_the_arn_when_details_lack_it():
    ev = json.loads(load("eventbridge-crash-kdump-executing.json"))
    ev["subject"] = "acs:ecs:cn-hangzhou:1234567890123456:instance/i-bp1kdumpel7demo01"
    del ev["data"]["instanceId"]
    del ev["aliyunregionid"]
    [o] = parse_events(ev)
    assert o.event.instance_id == "i-bp1kdumpel7demo01" and o.event.region == "cn-hangzhou"


def test_trust_event_status_not_the_name_suffix():
    ev = json.loads(load("cloudmonitor-crash-kdump-executed.json"))
    ev["name"] = "Instance:InstanceFailure.Reboot:Executing"
    [o] = parse_events(ev)
    assert o.event.status == "Executed"
    ev["name"] = "Instance:InstanceFailure.Reboot:Executed"
    ev["content"]["eventStatus"] = "Canceled"
    [o] = parse_events(ev)
    assert isinstance(o, Skipped) and o.status == "Canceled"


def test_event_without_event_id_uses_source_and_envelope_id():
    ev = json.loads(load("eventbridge-crash-kdump-executing.json"))
    del ev["data"]["eventId"]
    [a] = parse_events(ev)
    [b] = parse_events(ev)
    assert a.event.incident_id == b.event.incident_id and a.event.incident_id.startswith("x-")


def test_hostile_values_never_reach_a_key():
    ev = json.loads(load("eventbridge-crash-kdump-executing.json"))
    for field, value in [("eventId", "../../etc"), ("eventId", "a/b"), ("instanceId", "i-abc/../x")]:
        e = json.loads(json.dumps(ev))
        e["data"][field] = value
        [o] = parse_events(e)
        assert isinstance(o, Rejected)
    e = json.loads(json.dumps(ev))
    e["aliyunregionid"] = "cn-hangzhou/../../x"
    [o] = parse_events(e)
    assert isinstance(o, Rejected)


def test_deep_and_huge_payloads():
    deep = "[" * 100_000 + "]" * 100_000
    [o] = parse_events(deep)
    assert isinstance(o, Rejected)
    [o] = parse_events(b"{" + b" " * 300_000 + b"}")
    assert isinstance(o, Rejected) and "over" in o.reason


def test_oss_event():
    [c] = parse_oss_events(load("oss-object-created-inbox.json"))
    assert (c.bucket, c.key) == ("ecs-crashdiag-demo", "inbox/vmcore-dmesg-sample.txt")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=500), st.text(max_size=500)))
def test_anything_ends_as_an_outcome(value):
    payload = value if isinstance(value, (bytes, str)) else json.dumps(value)
    outcomes = parse_events(payload)
    assert outcomes and all(isinstance(o, (Accepted, Skipped, Rejected)) for o in outcomes)
    for o in outcomes:
        if isinstance(o, Accepted):
            assert o.event.prefix.startswith("incidents/") and ".." not in o.event.prefix


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["eventId", "instanceId", "eventType", "eventStatus", "publishTime"]),
                       st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=5)))))
def test_mutated_details(details):
    ev = json.loads(load("eventbridge-crash-kdump-executing.json"))
    ev["data"].update(details)
    [o] = parse_events(ev)
    if isinstance(o, Accepted):
        e = o.event
        assert e.prefix == f"incidents/{e.region}/{e.instance_id}/{e.incident_id}/"
        assert all(c.isalnum() or c in "/-_." for c in e.prefix)
