"""What the fleet audit needs from ECS: list running Linux instances (by tag or all), run
one script on up to 100 of them per ``RunCommand``, read every instance's result.

``SdkFleetApi`` does it over the ECS SDK, with ``SdkEcsApi``'s retry loop and error
mapping; ``SimulatedFleet`` over the folder-tree instances of ``simulate.py`` (each
``instance.json`` may add ``"os_type"``, ``"tags"`` and ``"memory_mb"``), for
``crashdiag audit --instances`` and for the HTTP stand-in the tests drive the SDK against.
The SDK is imported only inside the calls, as in ``ecs_sdk.py``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from .ecs import CloudError, InvocationResult
from .ecs_sdk import COMMAND_CONTENT_LIMIT, SdkEcsApi, _invocation_result
from .simulate import SimulatedCloud

# RunCommand's InstanceId.N takes 1 to 100 ids (alibabacloud_ecs20140526
# models/_run_command_request.py: "The array of ECS instance IDs. Array length: 1 to 100.").
RUN_COMMAND_MAX_INSTANCES = 100
# DescribeInstances returns at most 100 per page (MaxResults, same SDK: "Maximum value: 100").
DESCRIBE_INSTANCES_PAGE = 100
# DescribeInvocationResults pages hold at most 50 rows (MaxResults: "Maximum value: 50").
INVOCATION_RESULTS_PAGE = 50


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    region: str
    name: str = ""
    os_type: str = "linux"  # DescribeInstances' OSType: linux or windows
    status: str = "Running"
    memory_mb: int = 0
    tags: dict[str, str] = field(default_factory=dict)


class FleetApi(Protocol):
    def list_instances(self, region: str, tag: tuple[str, str] | None = None) -> list[InstanceInfo]:
        """Running Linux instances of the region; with ``tag``, only those carrying it."""

    def run_command_many(self, region: str, instance_ids: list[str], script: str, timeout: int, name: str) -> str:
        """One RunCommand over up to 100 instances; returns the InvokeId."""

    def invocation_results(self, region: str, invoke_id: str) -> dict[str, InvocationResult]:
        """Every instance's result of one invocation (instances not yet listed are absent)."""


def _wanted(info: InstanceInfo, tag: tuple[str, str] | None) -> bool:
    if info.status != "Running" or info.os_type.lower() != "linux":
        return False
    return tag is None or info.tags.get(tag[0]) == tag[1]


class SimulatedFleet:
    """``FleetApi`` over a ``SimulatedCloud``: Cloud Assistant runs the script on each tree."""

    def __init__(self, cloud: SimulatedCloud) -> None:
        self.cloud = cloud
        self._batches: dict[str, tuple[str, dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: str) -> SimulatedFleet:
        return cls(SimulatedCloud.from_dir(directory))

    def info(self, instance_id: str) -> InstanceInfo:
        inst = self.cloud.instances[instance_id]
        path = inst.root.parent / "instance.json"
        meta = json.loads(path.read_text()) if path.exists() else {}
        statuses = inst.statuses
        return InstanceInfo(
            instance_id=instance_id, region=inst.region, name=inst.name,
            os_type=str(meta.get("os_type", "linux")).lower(),
            status=statuses[-1] if statuses else "Running",  # the status it settles in
            memory_mb=int(meta.get("memory_mb", 0) or 0),
            tags={str(k): str(v) for k, v in (meta.get("tags") or {}).items()},
        )

    def all_instances(self) -> list[InstanceInfo]:
        return [self.info(i) for i in sorted(self.cloud.instances)]

    def regions(self) -> list[str]:
        return sorted({i.region for i in self.cloud.instances.values()})

    def list_instances(self, region: str, tag: tuple[str, str] | None = None) -> list[InstanceInfo]:
        return [i for i in self.all_instances() if i.region == region and _wanted(i, tag)]

    def run_command_many(self, region: str, instance_ids: list[str], script: str, timeout: int, name: str = "crashdiag-audit") -> str:
        if not 1 <= len(instance_ids) <= RUN_COMMAND_MAX_INSTANCES:
            raise CloudError("InvalidParameter.InstanceId", f"RunCommand takes 1 to {RUN_COMMAND_MAX_INSTANCES} instances")
        targets = {iid: self.cloud.run_command(region, iid, script, {}, timeout) for iid in instance_ids}
        with self._lock:
            invoke_id = f"t-simfleet{next(self._ids):06d}"
            self._batches[invoke_id] = (region, targets)
        return invoke_id

    def invocation_results(self, region: str, invoke_id: str) -> dict[str, InvocationResult]:
        with self._lock:
            batch = self._batches.get(invoke_id)
        if batch is None or batch[0] != region:
            raise CloudError("InvalidInvokeId.NotFound", f"The specified invoke id {invoke_id} does not exist.")
        return {iid: self.cloud.invocation_result(region, sim_id, iid) for iid, sim_id in batch[1].items()}


class SdkFleetApi(SdkEcsApi):
    """``FleetApi`` over ``alibabacloud_ecs20140526`` (the same clients, retries and
    credential handling as the collect function's ``SdkEcsApi``)."""

    def list_instances(self, region: str, tag: tuple[str, str] | None = None) -> list[InstanceInfo]:
        found: list[InstanceInfo] = []
        token: str | None = None
        for _page in range(10_000):  # 1,000,000 instances: a bound, not a limit anyone meets
            def call(client: Any, token: str | None = token) -> tuple[list[InstanceInfo], str | None]:
                from alibabacloud_ecs20140526 import models

                request = models.DescribeInstancesRequest(region_id=region, status="Running",
                                                          max_results=DESCRIBE_INSTANCES_PAGE, next_token=token)
                if tag is not None:
                    request.tag = [models.DescribeInstancesRequestTag(key=tag[0], value=tag[1])]
                body = client.describe_instances(request).body
                items = getattr(getattr(body, "instances", None), "instance", None) or []
                page = []
                for it in items:
                    tags = {t.tag_key: t.tag_value for t in (getattr(getattr(it, "tags", None), "tag", None) or [])}
                    page.append(InstanceInfo(
                        instance_id=it.instance_id, region=it.region_id or region, name=it.instance_name or "",
                        os_type=(it.ostype or "linux").lower(), status=it.status or "", memory_mb=int(it.memory or 0),
                        tags=tags,
                    ))
                return page, (body.next_token or None)

            page, token = self._call("DescribeInstances", call, region)
            found += [i for i in page if _wanted(i, tag)]
            if not token:
                break
        return found

    def run_command_many(self, region: str, instance_ids: list[str], script: str, timeout: int, name: str = "crashdiag-audit") -> str:
        if not 1 <= len(instance_ids) <= RUN_COMMAND_MAX_INSTANCES:
            raise CloudError("InvalidParameter.InstanceId", f"RunCommand takes 1 to {RUN_COMMAND_MAX_INSTANCES} instances", False)
        content = base64.b64encode(script.encode("utf-8")).decode("ascii")
        if len(content) > COMMAND_CONTENT_LIMIT:
            raise CloudError("InvalidParameter.CommandContent",
                             f"RunCommand: the script is {len(content)} bytes in base64, over {COMMAND_CONTENT_LIMIT}", False)
        client_token = uuid.uuid4().hex  # one per call: a retry after a lost reply runs nothing twice

        def call(client: Any) -> str:
            from alibabacloud_ecs20140526 import models

            resp = client.run_command(models.RunCommandRequest(
                region_id=region, type="RunShellScript", command_content=content, content_encoding="Base64",
                timeout=int(timeout), instance_id=list(instance_ids), name=name, keep_command=False,
                client_token=client_token,
            ))
            if not resp.body.invoke_id:
                raise CloudError("InvalidResponse", "RunCommand: no InvokeId in the reply", False)
            return resp.body.invoke_id

        return self._call("RunCommand", call, region)

    def invocation_results(self, region: str, invoke_id: str) -> dict[str, InvocationResult]:
        out: dict[str, InvocationResult] = {}
        for page_number in range(1, 10_000):
            def call(client: Any, page_number: int = page_number) -> tuple[list[Any], int]:
                from alibabacloud_ecs20140526 import models

                resp = client.describe_invocation_results(models.DescribeInvocationResultsRequest(
                    region_id=region, invoke_id=invoke_id, content_encoding="Base64",
                    page_number=page_number, page_size=INVOCATION_RESULTS_PAGE,
                ))
                inv = resp.body.invocation
                rows = getattr(getattr(inv, "invocation_results", None), "invocation_result", None) or []
                return rows, int(getattr(inv, "total_count", 0) or 0)

            rows, total = self._call("DescribeInvocationResults", call, region)
            for item in rows:
                if item.instance_id and item.invoke_id in (None, invoke_id):
                    out[item.instance_id] = _invocation_result(item)
            if not rows or page_number * INVOCATION_RESULTS_PAGE >= total:
                break
        return out
