"""ECS crash events in, validated ``CrashEvent`` objects out.

Two forms reach the ingest function:

- EventBridge (CloudEvents 1.0): ``source: acs.ecs``, ``type:
  ecs:Instance:InstanceFailure.Reboot``, details in ``data``. Alibaba's published samples
  write ``subject`` as ``acs.ecs:<region>:<account>:<resource id>`` and ``time`` with a
  ``+08:00`` offset, and carry ``aliyunpublishaddr``, ``aliyunaccountid``,
  ``aliyunregionid`` ("Use EventBridge and Cloud Monitor to subscribe to Cloud Assistant
  events", https://www.alibabacloud.com/help/en/ecs/user-guide/subscribe-to-cloud-assistant-events);
  the ARN form (``acs:ecs:<region>:<account>:instance/<id>``) is read too.
- CloudMonitor event push, as documented in "Instance event notifications"
  (https://www.alibabacloud.com/help/en/ecs/user-guide/instance-event-notification) and
  the ECS event notification overview (https://help.aliyun.com/en/ecs/user-guide/overview-35):
  ``ver``, ``id``, ``product: ECS``, ``resourceId`` (an ARN), ``level``, ``name``
  (``Instance:InstanceFailure.Reboot:Executed``), ``userId``, ``eventTime``
  (``20190409T121826.922+0800``, UTC+8), ``regionId``, details in ``content``.

No published sample of the crash event's details exists, so every field is read
defensively: the instance id from ``instanceId``, else the subject or the ARN (it may be
only there); the region from the envelope, else the subject or ARN; the status from
``eventStatus`` (never the suffix of ``name``). A payload saved by a Windows editor (a
UTF-8 or UTF-16 byte-order mark, blank lines before the JSON) is read as JSON.
Each input event ends as exactly one ``Accepted``, ``Skipped`` (a valid event we do not
act on) or ``Rejected`` (malformed: recorded, never raised).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

MAX_PAYLOAD = 256 * 1024  # an EventBridge event is at most 256 KB
ACT_ON_CODES = ("InstanceFailure.Reboot", "SystemFailure.Reboot")
ACT_ON_STATUSES = ("Executing", "Executed")

INSTANCE_ID = re.compile(r"^i-[a-z0-9]{1,40}$")
REGION = re.compile(r"^[a-z]{2}-[a-z0-9-]{2,30}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_ARN = re.compile(r"^acs:ecs:(?P<region>[a-z0-9-]*):(?P<account>\d*):instance/(?P<instance>[^/\s]+)$")
# EventBridge's subject as Alibaba's samples write it: acs.ecs:<region>:<account>:<resource id>
_SUBJECT = re.compile(r"^acs\.ecs:(?P<region>[a-z0-9-]*):(?P<account>\d*):(?P<instance>[^:/\s]+)$")
# CloudMonitor's eventTime: 20190409T121826.922+0800
_CM_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?([+-]\d{4}|Z)$")


@dataclass(frozen=True)
class CrashEvent:
    """One crash event, normalised from either form."""

    incident_id: str  # the ECS eventId (same for Executing and Executed), else a hash of (source, id)
    instance_id: str
    region: str
    code: str  # InstanceFailure.Reboot or SystemFailure.Reboot
    status: str  # Executing or Executed
    form: str  # eventbridge or cloudmonitor
    source: str
    envelope_id: str | None
    publish_time: str | None
    execute_start_time: str | None
    execute_finish_time: str | None
    instance_name: str | None = None

    @property
    def host_failure(self) -> bool:
        """SystemFailure.Reboot: the host failed, the guest may be innocent."""
        return self.code == "SystemFailure.Reboot"

    @property
    def prefix(self) -> str:
        return f"incidents/{self.region}/{self.instance_id}/{self.incident_id}/"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["host_failure"] = self.host_failure
        return d


@dataclass(frozen=True)
class Accepted:
    event: CrashEvent


@dataclass(frozen=True)
class Skipped:
    reason: str
    code: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Rejected:
    reason: str
    excerpt: str  # the start of the input, for the failure record (bounded)


Outcome = Accepted | Skipped | Rejected


def _excerpt(raw: Any) -> str:
    try:
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(raw))
    return text[:2000]


def decode_payload(payload: bytes | str | dict | list) -> list[Any] | Rejected:
    """Turn what the trigger hands the function into a list of raw events."""
    if isinstance(payload, (dict, list)):
        data: Any = payload
    else:
        if isinstance(payload, bytes):
            if len(payload) > MAX_PAYLOAD:
                return Rejected(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}", _excerpt(payload[:2000].decode("utf-8", "replace")))
            try:
                payload = _text_of(payload)
            except UnicodeDecodeError:
                return Rejected("payload is not UTF-8 text", _excerpt(payload[:2000].decode("utf-8", "replace")))
        # A byte-order mark a Windows editor put in front of the JSON is not part of it.
        payload = payload.removeprefix("\ufeff")
        if len(payload) > MAX_PAYLOAD:
            return Rejected(f"payload of {len(payload)} characters is over {MAX_PAYLOAD}", _excerpt(payload))
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            return Rejected(f"payload is not JSON ({type(exc).__name__})", _excerpt(payload))
    if isinstance(data, dict) and isinstance(data.get("events"), list) and "source" not in data and "product" not in data:
        data = data["events"]  # a batch wrapped in an object
    return data if isinstance(data, list) else [data]


def _text_of(payload: bytes) -> str:
    """UTF-8 (with or without a BOM), or UTF-16 when it starts with its BOM (Notepad's
    "Unicode"). Raises UnicodeDecodeError for anything else."""
    if payload.startswith((b"\xff\xfe", b"\xfe\xff")):
        return payload.decode("utf-16")
    return payload.decode("utf-8-sig")


def parse_events(payload: bytes | str | dict | list) -> list[Outcome]:
    """Every event in the payload, each as Accepted, Skipped or Rejected."""
    raw = decode_payload(payload)
    if isinstance(raw, Rejected):
        return [raw]
    if not raw:
        return [Rejected("empty batch", "[]")]
    return [parse_event(item) for item in raw]


def _str(d: dict, *keys: str) -> str | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def parse_event(item: Any) -> Outcome:
    try:
        return _parse(item)
    except RecursionError:
        return Rejected("event nests too deeply", _excerpt("<deep>"))


def _parse(item: Any) -> Outcome:
    if not isinstance(item, dict):
        return Rejected(f"an event must be a JSON object, not {type(item).__name__}", _excerpt(item))
    if "specversion" in item or "data" in item and "source" in item:
        form = "eventbridge"
        source = item.get("source")
        if source != "acs.ecs":
            return Rejected(f"source is {str(source)[:60]!r}, not acs.ecs", _excerpt(item))
        details = item.get("data")
        arn = _str(item, "subject")
        region = _str(item, "aliyunregionid", "region")
        etype = _str(item, "type") or ""
        code = etype.split(":")[-1] if etype.startswith("ecs:") else None
        envelope_id = _str(item, "id")
        envelope_time = _iso_time(_str(item, "time"))
    elif "product" in item or "content" in item:
        form = "cloudmonitor"
        product = item.get("product")
        if not isinstance(product, str) or product.upper() != "ECS":
            return Rejected(f"product is {str(product)[:60]!r}, not ECS", _excerpt(item))
        source = "cloudmonitor:ECS"
        details = item.get("content")
        arn = _str(item, "resourceId")
        region = _str(item, "regionId")
        name = _str(item, "name") or ""
        parts = name.split(":")
        code = parts[1] if len(parts) >= 2 and parts[0] == "Instance" else None
        envelope_id = _str(item, "id")
        envelope_time = _cloudmonitor_time(_str(item, "eventTime"))
    else:
        return Rejected("neither an EventBridge (source acs.ecs) nor a CloudMonitor (product ECS) event", _excerpt(item))
    if not isinstance(details, dict):
        return Rejected("the event has no details object (data / content)", _excerpt(item))

    code = _str(details, "eventType") or code
    status = _str(details, "eventStatus")
    if code not in ACT_ON_CODES:
        return Skipped(f"event type {str(code)[:60]!r} is not a crash", code, status)
    if status not in ACT_ON_STATUSES:
        return Skipped(f"status {str(status)[:40]!r} of {code} needs no action", code, status)

    instance = _str(details, "instanceId", "resourceId")
    arn_m = (_ARN.match(arn) or _SUBJECT.match(arn)) if arn else None
    if instance is None and arn_m:
        instance = arn_m.group("instance")
    if instance is None:
        return Rejected("no instance id (instanceId, resourceId or an instance ARN)", _excerpt(item))
    if not INSTANCE_ID.match(instance):
        return Rejected(f"instance id {instance[:60]!r} is not i-[a-z0-9]+", _excerpt(item))
    if region is None and arn_m:
        region = arn_m.group("region") or None
    if region is None or not REGION.match(region):
        return Rejected(f"no valid region ({str(region)[:40]!r})", _excerpt(item))

    event_id = _str(details, "eventId")
    if event_id is not None and not EVENT_ID.match(event_id):
        return Rejected(f"eventId {event_id[:60]!r} has characters an event id never has", _excerpt(item))
    if event_id is None:
        if envelope_id is None:
            return Rejected("neither an eventId nor an envelope id to tell deliveries apart", _excerpt(item))
        digest = hashlib.sha256(f"{source}\n{envelope_id}".encode()).hexdigest()[:24]
        event_id = f"x-{digest}"

    return Accepted(
        CrashEvent(
            incident_id=event_id,
            instance_id=instance,
            region=region,
            code=code,
            status=status,
            form=form,
            source=str(source),
            envelope_id=envelope_id[:200] if envelope_id else None,
            publish_time=(_str(details, "publishTime") or envelope_time or "")[:40] or None,
            execute_start_time=(_str(details, "executeStartTime") or "")[:40] or None,
            execute_finish_time=(_str(details, "executeFinishTime") or "")[:40] or None,
            instance_name=(_str(item, "instanceName") or _str(details, "instanceName") or "")[:128] or None,
        )
    )


def _iso_time(value: str | None) -> str | None:
    """An ISO 8601 time as given (``2026-11-26T18:00:05+08:00``), or None when it is not one."""
    if not value or len(value) > 40:
        return None
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value


def _cloudmonitor_time(value: str | None) -> str | None:
    """CloudMonitor's ``20190409T121826.922+0800`` as ISO 8601 (``2019-04-09T12:18:26.922+08:00``)."""
    m = _CM_TIME.match(value or "")
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    tz = "+00:00" if tz == "Z" else f"{tz[:3]}:{tz[3:]}"
    text = f"{y}-{mo}-{d}T{h}:{mi}:{sec}" + (f".{frac}" if frac else "") + tz
    return _iso_time(text)


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    region: str | None


def keys_of_trigger(payload: bytes | str | dict) -> list[str]:
    """The object keys a diagnose or notify invocation is about: an OSS trigger's event, or
    the reconciler's own ``{"key": "<object key>"}`` when it restarts a stage."""
    try:
        data = json.loads(payload) if isinstance(payload, (bytes, str)) else payload
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("key"), str) and "events" not in data:
        return [data["key"]]
    return [c.key for c in parse_oss_events(payload)]


def parse_oss_events(payload: bytes | str | dict) -> list[ObjectCreated]:
    """The OSS trigger's event: {"events": [{"eventName": "ObjectCreated:...",
    "oss": {"bucket": {"name"}, "object": {"key"}}, "region"}]}. Raises ValueError."""
    data = decode_payload(payload)
    if isinstance(data, Rejected):
        raise ValueError(data.reason)
    out = []
    for ev in data:
        if not isinstance(ev, dict):
            raise ValueError("an OSS event must be an object")
        name = ev.get("eventName", "")
        oss = ev.get("oss") if isinstance(ev.get("oss"), dict) else {}
        key = (oss.get("object") or {}).get("key") if isinstance(oss.get("object"), dict) else None
        bucket = (oss.get("bucket") or {}).get("name") if isinstance(oss.get("bucket"), dict) else None
        if not isinstance(name, str) or not name.startswith("ObjectCreated"):
            continue
        if not isinstance(key, str) or not isinstance(bucket, str):
            raise ValueError("OSS event without bucket name or object key")
        out.append(ObjectCreated(bucket, key, ev.get("region") if isinstance(ev.get("region"), str) else None))
    return out
