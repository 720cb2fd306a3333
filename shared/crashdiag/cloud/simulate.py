"""A simulated ECS region: instances are folder trees, Cloud Assistant runs the real
collection script against them.

An instance lives in ``<dir>/<instance-id>/``:

    instance.json   {"region": "cn-hangzhou", "name": "web-01",
                     "status": ["Starting", "Running"],   # one per DescribeInstanceStatus call, last one sticks
                     "agent_online": true,                 # false: ClientNotRunning
                     "invocation": {"running_polls": 1,    # polls that still say Running
                                    "error_code": null}}   # force ClientNotResponse, DeliveryTimeout, ...
    root/           the guest's filesystem as the script sees it (var/crash, etc/kdump.conf, proc/...)
    console.log     what GetInstanceConsoleOutput returns (optional)

``make replay`` uses it in-process; the tests put it behind an HTTP stand-in that
speaks the ECS OpenAPI, so the real SDK client talks to the same model.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .ecs import OUTPUT_LIMIT, CloudError, InvocationResult

COMMAND_LIMIT = 24 * 1024  # RunCommand's CommandContent, base64

SCRIPT_TIMEOUT = 120


@dataclass
class SimInstance:
    instance_id: str
    region: str
    root: Path
    name: str = ""
    statuses: list[str] = field(default_factory=lambda: ["Running"])
    agent_online: bool = True
    running_polls: int = 0
    error_code: str | None = None
    console: bytes | None = None

    @classmethod
    def from_dir(cls, path: Path) -> SimInstance:
        meta = json.loads((path / "instance.json").read_text()) if (path / "instance.json").exists() else {}
        console = path / "console.log"
        inv = meta.get("invocation", {})
        status = meta.get("status", ["Running"])
        return cls(
            instance_id=path.name,
            region=meta.get("region", "cn-hangzhou"),
            root=path / "root",
            name=meta.get("name", ""),
            statuses=[status] if isinstance(status, str) else list(status),
            agent_online=bool(meta.get("agent_online", True)),
            running_polls=int(inv.get("running_polls", 0)),
            error_code=inv.get("error_code"),
            console=console.read_bytes() if console.exists() else None,
        )


@dataclass
class _Invocation:
    instance_id: str
    polls_left: int
    result: InvocationResult


def substitute_parameters(script: str, parameters: dict[str, str]) -> str:
    """Cloud Assistant's parameter mechanism: ``{{name}}`` in the command is replaced by
    the parameter's value (values are validated by the caller before they get here)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in parameters:
            raise CloudError("InvalidParameter.CommandContent", f"parameter {name} has no value")
        return parameters[name]

    return re.sub(r"\{\{(\w+)\}\}", repl, script)


def run_guest_script(script: str, root: Path, timeout: int = SCRIPT_TIMEOUT) -> tuple[bytes, int | None, bool]:
    """Run a shell script as Cloud Assistant would, against a fixture root.

    Returns (stdout, exit code, timed out)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CRASHDIAG_ROOT": str(root), "LC_ALL": "C"}
    try:
        p = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return exc.stdout or b"", None, True
    return p.stdout, p.returncode, False


class SimulatedCloud:
    """The EcsApi over simulated instances. Thread-safe: the storm test calls it concurrently."""

    def __init__(self, instances: dict[str, SimInstance]) -> None:
        self.instances = instances
        self._invocations: dict[str, _Invocation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (action, instance id), for tests and replay output

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> SimulatedCloud:
        d = Path(directory)
        found = {p.name: SimInstance.from_dir(p) for p in sorted(d.iterdir()) if p.is_dir() and p.name.startswith("i-")} if d.is_dir() else {}
        return cls(found)

    def _get(self, region: str, instance_id: str) -> SimInstance:
        inst = self.instances.get(instance_id)
        if inst is None or inst.region != region:
            raise CloudError("InvalidInstanceId.NotFound", f"The specified instance {instance_id} does not exist.")
        return inst

    def instance_status(self, region: str, instance_id: str) -> str | None:
        with self._lock:
            self.calls.append(("DescribeInstanceStatus", instance_id))
            inst = self.instances.get(instance_id)
            if inst is None or inst.region != region:
                return None
            return inst.statuses.pop(0) if len(inst.statuses) > 1 else inst.statuses[0]

    def cloud_assistant_online(self, region: str, instance_id: str) -> bool:
        with self._lock:
            self.calls.append(("DescribeCloudAssistantStatus", instance_id))
            return self._get(region, instance_id).agent_online

    def run_command(self, region: str, instance_id: str, script: str, parameters: dict[str, str], timeout: int) -> str:
        import base64

        if len(base64.b64encode(script.encode())) > COMMAND_LIMIT:
            raise CloudError("InvalidParameter.CommandContent", "CommandContent is over 24 KB in base64")
        with self._lock:
            self.calls.append(("RunCommand", instance_id))
            inst = self._get(region, instance_id)
            invoke_id = f"t-sim{next(self._ids):08d}"
        if not inst.agent_online:
            result = InvocationResult("Failed", None, "ClientNotRunning", b"", 0)
        elif inst.error_code:
            result = InvocationResult("Failed", None, inst.error_code, b"", 0)
        else:
            text = substitute_parameters(script, parameters)
            out, code, timed_out = run_guest_script(text, inst.root, min(timeout, SCRIPT_TIMEOUT))
            kept, dropped = out[:OUTPUT_LIMIT], max(0, len(out) - OUTPUT_LIMIT)
            if timed_out:
                result = InvocationResult("Failed", None, "ExecutionTimeout", kept, dropped)
            elif code != 0:
                result = InvocationResult("Failed", code, "ExitCodeNonzero", kept, dropped)
            else:
                result = InvocationResult("Success", 0, None, kept, dropped)
        with self._lock:
            self._invocations[invoke_id] = _Invocation(instance_id, inst.running_polls, result)
        return invoke_id

    def invocation_result(self, region: str, invoke_id: str, instance_id: str) -> InvocationResult:
        with self._lock:
            self.calls.append(("DescribeInvocationResults", instance_id))
            inv = self._invocations.get(invoke_id)
            if inv is None or inv.instance_id != instance_id:
                raise CloudError("InvalidInvokeId.NotFound", f"The specified invoke id {invoke_id} does not exist.")
            if inv.polls_left > 0:
                inv.polls_left -= 1
                return InvocationResult("Running", None, None, b"", 0)
            return inv.result

    def console_output(self, region: str, instance_id: str) -> bytes | None:
        with self._lock:
            self.calls.append(("GetInstanceConsoleOutput", instance_id))
            return self._get(region, instance_id).console
