"""What the pipeline needs from ECS and Cloud Assistant, as one small interface.

``SdkEcsApi`` (in ``ecs_sdk.py``) implements it over ``alibabacloud-ecs20140526``;
``simulate.SimulatedCloud`` implements it over folder-tree instances for replay and
for the HTTP stand-in the tests drive the real SDK against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Cloud Assistant keeps this much of a command's output; the rest is counted in Dropped.
OUTPUT_LIMIT = 24 * 1024


class CloudError(Exception):
    """An ECS API call failed. ``retryable`` is true for throttling, 5xx and network faults."""

    def __init__(self, code: str, message: str = "", retryable: bool = False, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.request_id = request_id


@dataclass(frozen=True)
class InvocationResult:
    status: str  # InvocationStatus: Pending, Running, Success, Failed, Timeout, Stopped, ...
    exit_code: int | None
    error_code: str | None  # ClientNotRunning, ClientNotResponse, DeliveryTimeout, ExecutionTimeout, ...
    output: bytes  # decoded from base64, at most OUTPUT_LIMIT bytes
    dropped: int  # bytes Cloud Assistant cut off

    @property
    def finished(self) -> bool:
        return self.status not in ("Pending", "Running", "Scheduled", "Stopping")


class EcsApi(Protocol):
    def instance_status(self, region: str, instance_id: str) -> str | None:
        """Running, Starting, Stopping, Stopped, ...; None when the instance does not exist."""

    def cloud_assistant_online(self, region: str, instance_id: str) -> bool: ...

    def run_command(self, region: str, instance_id: str, script: str, parameters: dict[str, str], timeout: int) -> str:
        """Run a shell script through Cloud Assistant; returns the InvokeId."""

    def invocation_result(self, region: str, invoke_id: str, instance_id: str) -> InvocationResult: ...

    def console_output(self, region: str, instance_id: str) -> bytes | None:
        """The serial console of the last start (GetInstanceConsoleOutput), decoded."""
