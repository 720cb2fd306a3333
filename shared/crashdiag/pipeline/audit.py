"""The fleet readiness audit: run the read-only guest audit script through Cloud
Assistant on many instances at once, judge each output, keep the results.

One ``RunCommand`` covers up to 100 instances (the API's limit on ``InstanceId.N``); the
results are polled with one paged ``DescribeInvocationResults`` per batch, under an
overall deadline. Each instance's result is stored at
``audit/<date>/<region>/<instance-id>.json`` (a rerun the same day overwrites it: the
newest audit is the one that counts, and a dead run leaves nothing half-written since
each object is written whole).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cloud.ecs import CloudError, InvocationResult
from ..reports.readiness import AuditOutputError, judge, parse_audit_output, unreachable

log = logging.getLogger(__name__)

AUDIT_SCRIPT_PATH = Path(__file__).with_name("guest") / "audit-readiness.sh"
AUDIT_PREFIX = "audit/"
BATCH = 100  # RunCommand's InstanceId.N: 1 to 100 (cloud/ecs_fleet.py)
COMMAND_TIMEOUT = 60  # the script reads a few files; a minute is generous
DEADLINE = 300  # seconds to wait for a batch's results


def audit_command() -> str:
    """The audit script as sent: comment-only and blank lines dropped (as for collection)."""
    lines = AUDIT_SCRIPT_PATH.read_text(encoding="utf-8").split("\n")
    kept = [ln for ln in lines if ln.strip() and not (ln.lstrip().startswith("#") and not ln.startswith("#!"))]
    return "\n".join(kept) + "\n"


def audit_key(day: str, region: str, instance_id: str) -> str:
    return f"{AUDIT_PREFIX}{day}/{region}/{instance_id}.json"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _judge_one(inv: InvocationResult | None, info: Any, account: str, at: str) -> dict[str, Any]:
    meta = {"region": info.region, "account": account, "name": info.name, "audited_at": at}
    if inv is None or not inv.finished:
        return unreachable(info.instance_id, "the audit did not finish in time", **meta)
    if inv.status != "Success":
        return unreachable(info.instance_id, f"Cloud Assistant could not run the audit ({inv.error_code or inv.status})", **meta)
    try:
        facts = parse_audit_output(inv.output)
    except AuditOutputError as exc:
        return unreachable(info.instance_id, f"the audit's output could not be read: {exc}", **meta)
    if info.memory_mb and not facts.get("mem.total_kb"):
        facts["mem.total_kb"] = str(info.memory_mb * 1024)  # DescribeInstances' Memory (MiB)
    return judge(facts, instance_id=info.instance_id, **meta)


def run_audit(api: Any, region: str, instances: list[Any], *, account: str = "", now: dt.datetime | None = None,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
              poll: float = 2.0, deadline: float = DEADLINE, timeout: int = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
    """Audit ``instances`` (``InstanceInfo`` of one region) in batches of 100; one result each."""
    at = _iso(now or dt.datetime.now(dt.timezone.utc))
    script = audit_command()
    results: list[dict[str, Any]] = []
    for start in range(0, len(instances), BATCH):
        batch = instances[start:start + BATCH]
        try:
            invoke_id = api.run_command_many(region, [i.instance_id for i in batch], script, timeout, "crashdiag-audit")
        except CloudError as exc:
            log.warning("audit RunCommand failed in %s: %s", region, exc.code)
            results += [unreachable(i.instance_id, f"RunCommand failed ({exc.code})", region=i.region, account=account,
                                    name=i.name, audited_at=at) for i in batch]
            continue
        end = clock() + deadline
        got: dict[str, InvocationResult] = {}
        wait = poll
        while True:
            try:
                got = api.invocation_results(region, invoke_id)
            except CloudError as exc:
                log.warning("audit DescribeInvocationResults failed in %s: %s", region, exc.code)
            if all(i.instance_id in got and got[i.instance_id].finished for i in batch) or clock() >= end:
                break
            sleep(wait)
            wait = min(wait * 2, 30.0)
        results += [_judge_one(got.get(i.instance_id), i, account, at) for i in batch]
    return results


def store_results(store: Any, results: list[dict[str, Any]], day: str, region: str | None = None,
                  account: str = "") -> list[str]:
    """Write each result to audit/<day>/<region>/<instance>.json, then one summary per
    region and account (audit/summary/<day>/<region>/<account>.json: what the fleet page
    reads, so it never reads every instance). Returns the instance keys. Each object is
    written whole; a run that dies is simply redone by the next timer."""
    from ..cloud.store import retry_transient
    from ..reports.readiness import region_summary, summary_key

    def put(key: str, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()
        retry_transient(lambda: store.put(key, data, content_type="application/json"))

    keys = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        key = audit_key(day, r.get("region") or "unknown", r["instance_id"])
        put(key, r)
        keys.append(key)
        groups.setdefault((r.get("region") or "unknown", r.get("account") or ""), []).append(r)
    if region and not groups:  # nothing to audit today: say so, or yesterday's rows would stand
        groups[(region, account)] = []
    for (region, account), rs in sorted(groups.items()):
        put(summary_key(day, region, account), region_summary(rs, day, region, account))
    return keys


def audit_region(api: Any, store: Any, region: str, *, tag: tuple[str, str] | None = None, account: str = "",
                 now: dt.datetime | None = None, **kw: Any) -> dict[str, Any]:
    """The audit function's work for one region: list, run, judge, store; a summary back."""
    now = now or dt.datetime.now(dt.timezone.utc)
    instances = api.list_instances(region, tag)
    results = run_audit(api, region, instances, account=account, now=now, **kw)
    keys = store_results(store, results, now.strftime("%Y-%m-%d"), region, account)
    return {"region": region, "instances": len(instances), "ready": sum(1 for r in results if r["ready"]),
            "exposed": sum(1 for r in results if r["exposed"]), "written": len(keys)}


def audit_local(instances_dir: str, *, tag: tuple[str, str] | None = None, account: str = "",
                now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """``crashdiag audit --instances DIR``: the same script over simulated instances,
    every region they live in; results in instance-id order."""
    from ..cloud.ecs_fleet import SimulatedFleet

    fleet = SimulatedFleet.from_dir(instances_dir)
    results = []
    for region in fleet.regions():
        results += run_audit(fleet, region, fleet.list_instances(region, tag), account=account, now=now,
                             sleep=lambda _s: None, poll=0.0, deadline=600)
    return sorted(results, key=lambda r: r["instance_id"])


def tag_of(settings: Any) -> tuple[str, str] | None:
    """``CRASHDIAG_AUDIT_TAG`` as (key, value), or None for every instance."""
    if not settings.audit_tag:
        return None
    key, _, value = settings.audit_tag.partition("=")
    return key, value


def build_fleet_api(settings: Any, credentials: Any = None) -> Any:
    """Simulated instances when ``CRASHDIAG_INSTANCES_DIR`` is set, else the ECS SDK
    (signing with ``credentials``, a ``CredentialSource`` read on every request, when given)."""
    if settings.instances_dir:
        from ..cloud.ecs_fleet import SimulatedFleet

        return SimulatedFleet.from_dir(settings.instances_dir)
    from ..cloud.ecs_fleet import SdkFleetApi

    return SdkFleetApi.from_settings(settings, credentials=credentials)


def audit_from_settings(settings: Any, api: Any = None, store: Any = None, now: dt.datetime | None = None,
                        **kw: Any) -> dict[str, Any]:
    """What the audit function does on its timer: the function's own region, the
    configured tag, results into the (possibly central) bucket."""
    from .runtime import build_store

    if not settings.region:
        raise ValueError("CRASHDIAG_REGION is not set: the audit needs the region it runs in")
    api = api if api is not None else build_fleet_api(settings)
    store = store if store is not None else build_store(settings)
    return audit_region(api, store, settings.region, tag=tag_of(settings), account=settings.account_id, now=now, **kw)
