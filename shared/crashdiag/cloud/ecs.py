"""What the pipeline needs from ECS and Cloud Assistant, as one small interface.

``SdkEcsApi`` (in ``ecs_sdk.py``) implements it over ``alibabacloud-ecs20140526``;
``simulate.SimulatedCloud`` implements it over folder-tree instances for replay and
for the HTTP stand-in the tests drive the real SDK against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# DescribeInvocationResults: "Dropped: the size of the Output text that was truncated and
# discarded because the Output value exceeded 24 KB" (the ECS SDKs' DescribeInvocationResults
# response model). The agent cuts first, to 12,000 bytes: see simulate.agent_output_cut.
OUTPUT_LIMIT = 24 * 1024
# RunCommand: "After the custom parameters and the original command content are
# Base64-encoded, the size of the Base64-encoded command content cannot exceed 24 KB"
# (RunCommandRequest.parameters in alibabacloud_ecs20140526/models/_run_command_request.py).
COMMAND_LIMIT = 24 * 1024


class CloudError(Exception):
    """An ECS API call failed. ``retryable`` is true for throttling, 5xx and network faults."""

    def __init__(self, code: str, message: str = "", retryable: bool = False, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.request_id = request_id


def command_size(content_b64: str, parameters: dict[str, str]) -> int:
    """What RunCommand's 24 KB limit counts: the base64 command content plus the custom
    parameters base64-encoded. The parameters are measured as the SDK sends them (one JSON
    object, ``alibabacloud_tea_util``'s ``to_jsonstring``: no spaces) and, to be safe, with
    every non-ASCII character escaped."""
    import base64
    import json

    if not parameters:
        return len(content_b64)
    encoded = json.dumps(parameters, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return len(content_b64) + len(base64.b64encode(encoded))


@dataclass(frozen=True)
class InvocationResult:
    status: str  # InvocationStatus: Pending, Running, Success, Failed, Timeout, Error, Aborted, Terminated, ...
    exit_code: int | None
    error_code: str | None  # ClientNotRunning, ClientRestarted, InstanceRestarted, ExecutionTimeout, ...
    output: bytes  # decoded from base64, at most OUTPUT_LIMIT bytes
    dropped: int  # bytes Cloud Assistant cut off
    error_info: str = ""  # ErrorInfo: the reason in words (a denied security group's id, ...)

    @property
    def finished(self) -> bool:
        return self.status not in ("Pending", "Running", "Scheduled", "Stopping")


@dataclass(frozen=True)
class InstanceInfo:
    """What DescribeInstances says about one instance."""

    instance_id: str
    region: str
    os_type: str  # OSType: "linux" or "windows" (compare case-insensitively)
    name: str = ""
    os_name: str = ""
    status: str = ""
    memory_mib: int = 0  # Memory: the instance type's memory, in MiB (0: not said)

    @property
    def windows(self) -> bool:
        return self.os_type.lower() == "windows"


class EcsApi(Protocol):
    def instance_info(self, region: str, instance_id: str) -> InstanceInfo | None:
        """DescribeInstances for one instance; None when it does not exist."""

    def instance_status(self, region: str, instance_id: str) -> str | None:
        """Running, Starting, Stopping, Stopped, ...; None when the instance does not exist."""

    def cloud_assistant_online(self, region: str, instance_id: str) -> bool: ...

    def run_command(self, region: str, instance_id: str, script: str, parameters: dict[str, str], timeout: int) -> str:
        """Run a shell script through Cloud Assistant; returns the InvokeId."""

    def invocation_result(self, region: str, invoke_id: str, instance_id: str) -> InvocationResult: ...

    def console_output(self, region: str, instance_id: str) -> bytes | None:
        """The serial console of the last start (GetInstanceConsoleOutput), decoded."""
