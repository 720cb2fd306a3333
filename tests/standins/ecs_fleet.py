"""The ECS stand-in plus what the fleet audit calls: ``DescribeInstances`` (running
instances, filtered by tag, paged by ``NextToken``) and ``RunCommand``'s limit on how many
instances one call may name. Answered by a ``SimulatedFleet`` (folder-tree instances
whose ``instance.json`` carries ``os_type``, ``tags`` and ``memory_mb``).

Kept apart from ``standins/ecs.py`` so the fleet's behaviours sit beside their sources:

- DescribeInstances' request and reply fields: alibabacloud_ecs20140526
  models/_describe_instances_request.py and _describe_instances_response_body.py
  (``Tag.N.Key``/``Tag.N.Value``, ``Status``, ``MaxResults`` "Maximum value: 100 ... a value
  less than 10 [means] 10", ``NextToken``; ``Instances.Instance[]`` with ``InstanceId``,
  ``InstanceName``, ``RegionId``, ``Status``, ``OSType``, ``Memory`` in MiB,
  ``Tags.Tag[]`` of ``TagKey``/``TagValue``), https://www.alibabacloud.com/help/en/ecs/api-describeinstances
- RunCommand's ``InstanceId.N``: "Array length: 1 to 100" (models/_run_command_request.py);
  more is refused with 403 ``InstanceIds.ExceedLimit`` "The number of instance IDs exceeds
  the upper limit." (error table of https://www.alibabacloud.com/help/en/ecs/api-invokecommand,
  the same code in the RunCommand table).
"""

from __future__ import annotations

import base64
from typing import Any

from crashdiag.cloud.ecs_fleet import SimulatedFleet
from standins.ecs import ApiError, EcsStandIn, _int, _repeat_list, _required

MAX_INSTANCE_IDS = 100
PAGE_MAX = 100
PAGE_MIN = 10


def _tags(params: dict[str, str]) -> list[tuple[str, str | None]]:
    """``Tag.1.Key=k&Tag.1.Value=v`` ... in index order (the SDK flattens ``Tag`` so)."""
    found: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "Tag" and parts[1].isdigit() and parts[2] in ("Key", "Value"):
            found.setdefault(int(parts[1]), {})[parts[2]] = value
    return [(t["Key"], t.get("Value")) for _, t in sorted(found.items()) if t.get("Key")]


class EcsFleetStandIn(EcsStandIn):
    def __init__(self, fleet: SimulatedFleet, **kw: Any) -> None:
        super().__init__(fleet.cloud, **kw)
        self.fleet = fleet

    def _do_DescribeInstances(self, p: dict[str, str]) -> dict[str, Any]:
        region = _required(p, "RegionId")
        size = _int(p, "MaxResults", PAGE_MIN)
        size = PAGE_MIN if size < PAGE_MIN else min(size, PAGE_MAX)
        token = p.get("NextToken") or ""
        try:
            start = int(base64.b64decode(token).decode()) if token else 0
        except ValueError:
            raise ApiError(400, "InvalidParameter.NextToken", "The specified parameter NextToken is not valid.") from None
        status = p.get("Status")
        tags = _tags(p)
        rows = []
        for info in self.fleet.all_instances():
            if info.region != region or (status and info.status != status):
                continue
            if any(info.tags.get(k) != v if v is not None else k not in info.tags for k, v in tags):
                continue
            rows.append({
                "InstanceId": info.instance_id, "InstanceName": info.name, "RegionId": info.region,
                "Status": info.status, "OSType": info.os_type, "Memory": info.memory_mb,
                "Tags": {"Tag": [{"TagKey": k, "TagValue": v} for k, v in sorted(info.tags.items())]},
            })
        page = rows[start:start + size]
        nxt = start + size
        return {"Instances": {"Instance": page}, "TotalCount": len(rows),
                "NextToken": base64.b64encode(str(nxt).encode()).decode() if nxt < len(rows) else ""}

    def _do_RunCommand(self, p: dict[str, str]) -> dict[str, Any]:
        if len(_repeat_list(p, "InstanceId")) > MAX_INSTANCE_IDS:
            raise ApiError(403, "InstanceIds.ExceedLimit", "The number of instance IDs exceeds the upper limit.")
        return super()._do_RunCommand(p)
