"""A simulated ECS region: instances are folder trees, Cloud Assistant runs the real
collection script against them.

An instance lives in ``<dir>/<instance-id>/``:

    instance.json   {"region": "cn-hangzhou", "name": "web-01",
                     "os_type": "linux",                   # DescribeInstances OSType: linux | windows
                     "status": ["Starting", "Running"],   # one per DescribeInstanceStatus call, last one sticks
                     "agent_online": true,                 # false: ClientNotRunning
                     "invocation": {"running_polls": 1,    # polls that still say Running
                                    "error_code": null,    # every run fails so: ClientNotResponse, ...
                                    "runs": ["pre-reboot", "InstanceRestarted", "ok"],
                                                           # one per RunCommand, last one sticks
                                    "agent_head": 0},      # bytes the agent streamed before the end
                     "memory_gib": 16,                     # DescribeInstances Memory (reported in MiB)
                     "capture": {"seconds": 5400,          # a kdump capture runs this long after the crash
                                 "outcome": "complete"}}   # complete | incomplete | hung
    root/           the guest's filesystem as the script sees it (var/crash, etc/kdump.conf, proc/...)
    console.log     what GetInstanceConsoleOutput returns (optional)

With ``capture``, the instance spends its first ``seconds`` after the crash (the first
time anything asks about it) in the kdump capture kernel: ECS says Running, the agent is
offline, and the console shows the panic (console.log), the capture kernel's boot and
makedumpfile's progress. Then it boots normally and answers as configured. ``incomplete``
ends the capture with "saving vmcore failed" (vmcore-dmesg.txt was saved before it, as
kexec-tools does); ``hung`` never gets past 37%: the instance never comes back.

A run is ``ok`` (the script runs against root/), ``pre-reboot`` (the command landed on the
boot before the crash: the script runs against root/ with an older ``btime`` in
proc/stat, as it would while ECS still reports Running during the reboot), or one of
Cloud Assistant's documented ErrorCodes, which ends the invocation with its status.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .ecs import (
    COMMAND_LIMIT,
    OUTPUT_LIMIT,
    CloudError,
    InstanceInfo,
    InvocationResult,
    command_size,
)

SCRIPT_TIMEOUT = 120

# How the Cloud Assistant agent cuts a command's output (aliyun/aliyun_assist_client,
# agent/taskengine/basetask.go at 028f1de, v578): while the command runs, a ticker (at least
# every 1,000 ms) reads at most 2,048 bytes per tick from the output buffer and sends them
# as running output, until more than defaultQuotoPre = 6,000 bytes have gone that way; the
# rest stays in the buffer. At the end getReportString keeps the LAST
# max(LogQuota, defaultQuoto = 12,000) - sent bytes of what is left and sets
# droped = the bytes before them. So the kept output is a head (what was streamed: 0 bytes
# for a command that ends within the first tick, about 6,144 for one that ran three ticks
# or more) plus a tail, 12,000 bytes in all, and the middle is what Dropped counts.
AGENT_QUOTA = 12000  # defaultQuoto; the server may send a larger LogQuota, never a smaller one
AGENT_STREAM_QUOTA = 6000  # defaultQuotoPre
AGENT_READ = 2048  # tryRead's buffer


def agent_output_cut(out: bytes, head: int = 0, quota: int = AGENT_QUOTA) -> tuple[bytes, int]:
    """What DescribeInvocationResults returns of ``out``: (Output, Dropped). ``head`` is
    how much the agent streamed as running output before the command ended (0 for a
    quick command; at most the first read past 6,000 bytes)."""
    head = max(0, min(head, len(out), AGENT_STREAM_QUOTA + AGENT_READ))
    rest = out[head:]
    room = quota - head
    if len(rest) <= room:
        kept, dropped = out, 0
    else:
        dropped = len(rest) - room
        kept = out[:head] + rest[dropped:]
    # the server's own cap ("Dropped: ... because the Output value exceeded 24 KB")
    if len(kept) > OUTPUT_LIMIT:
        dropped += len(kept) - OUTPUT_LIMIT
        kept = kept[:OUTPUT_LIMIT]
    return kept, dropped


# InvocationStatus for each documented ErrorCode. The codes and the statuses are documented
# (DescribeInvocationResults' InvocationStatus and ErrorCode fields in the ECS SDKs'
# response models, and "Check execution results and troubleshoot common issues",
# https://www.alibabacloud.com/help/doc-detail/87029.html); which status goes with which
# code is our reading of the two: Aborted "failed to be sent", Terminated "terminated
# before completion", Timeout, Failed "exit code was not 0", Error "cannot proceed due to
# an exception", Invalid "command type or parameter is invalid".
ERROR_STATUS = {
    "InstanceNotExists": "Aborted", "InstanceNotRunning": "Aborted", "InstanceDeregistered": "Aborted",
    "ClientNotRunning": "Aborted", "ClientNotResponse": "Aborted", "ClientNotOnline": "Aborted",
    "ClientNetworkBlocked": "Aborted", "ClientIsUpgrading": "Aborted", "ClientNeedUpgrade": "Aborted",
    "DeliveryTimeout": "Aborted", "SecurityGroupRuleDenied": "Aborted", "TaskConcurrencyLimit": "Aborted",
    "InstanceReleased": "Terminated", "InstanceRestarted": "Terminated", "ClientRestarted": "Terminated",
    "ExecutionInterrupted": "Terminated",
    "ExecutionTimeout": "Timeout",
    "ExitCodeNonzero": "Failed",
    "ExecutionException": "Error",
    "CommandNotApplicable": "Invalid", "AccountNotExists": "Invalid", "DirectoryNotExists": "Invalid",
    "DefaultWorkingDirectoryNotAvailable": "Invalid", "InvalidCommandText": "Invalid",
    "CommandContentDecodeError": "Invalid", "InvalidSystemBuiltInParameter": "Invalid",
}
# A command that landed on the boot before the crash: its boot started this long earlier.
PRE_REBOOT_AGE = 86400
# Where a hung capture stops.
HUNG_AT = 0.37


@dataclass
class Capture:
    """A kdump capture after the crash: how long it runs and how it ends."""

    seconds: float
    outcome: str = "complete"  # complete | incomplete | hung

    def progress(self, elapsed: float) -> tuple[bool, float]:
        """(still capturing, fraction copied) at ``elapsed`` seconds after the crash."""
        frac = max(0.0, elapsed) / self.seconds if self.seconds > 0 else 1.0
        if self.outcome == "hung":
            return True, min(frac, HUNG_AT)
        if self.outcome == "incomplete":
            return frac < 1.0, min(frac, 0.61)
        return frac < 1.0, min(frac, 1.0)


# The capture kernel's console, in the words kexec-tools' dracut module and makedumpfile
# print (see crashdiag.pipeline.capture for where each comes from).
_CAPTURE_BOOT = (
    "[    0.000000] Linux version {release} (mockbuild@sim) #1 SMP\n"
    "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz-{release} ro console=ttyS0,115200n8 irqpoll nr_cpus=1 "
    "reset_devices elfcorehdr=524868K\n"
    "[    3.120744] systemd[1]: Starting Kdump Vmcore Save Service...\n"
    "[    3.470012] kdump[530]: saving to /sysroot/var/crash/127.0.0.1-sim/\n"
    "[    3.476611] kdump[535]: saving vmcore-dmesg.txt to /sysroot/var/crash/127.0.0.1-sim/\n"
    "[    3.520118] kdump[541]: saving vmcore-dmesg.txt complete\n"
    "[    3.522034] kdump[543]: saving vmcore\n"
)
_NORMAL_BOOT = (
    "[    0.000000] Linux version {release} (mockbuild@sim) #1 SMP\n"
    "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz-{release} ro console=ttyS0,115200n8 crashkernel=auto\n"
    "[    2.410021] systemd[1]: Started Journal Service.\n"
)


def capture_console(panic: bytes | None, release: str, capture: Capture, elapsed: float) -> bytes:
    """What GetInstanceConsoleOutput shows ``elapsed`` seconds after the crash."""
    capturing, frac = capture.progress(elapsed)
    parts = [panic or b"", _CAPTURE_BOOT.format(release=release).encode()]
    parts.append(f"Copying data                                      : [{frac * 100:5.1f} %] /           eta: "
                 f"{max(0, int(capture.seconds - elapsed))}s\n".encode())
    if capturing:
        return b"".join(parts)
    if capture.outcome == "incomplete":
        parts.append(f"[{capture.seconds:12.6f}] kdump[543]: saving vmcore failed, _exitcode:1\n".encode())
        parts.append(f"[{capture.seconds:12.6f}] kdump[601]: Executing failure action systemctl reboot -f\n".encode())
    else:
        parts.append(f"[{capture.seconds:12.6f}] kdump[560]: saving vmcore complete\n".encode())
        parts.append(f"[{capture.seconds:12.6f}] kdump[590]: Executing final action systemctl reboot -f\n".encode())
    # GetInstanceConsoleOutput returns the output of the last start: the normal boot only.
    return _NORMAL_BOOT.format(release=release).encode()


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
    os_type: str = "linux"
    runs: list[str] = field(default_factory=lambda: ["ok"])
    agent_head: int = 0
    memory_gib: int = 0
    capture: Capture | None = None
    crashed_at: float | None = None  # when the simulation first saw it (the crash)

    def release(self) -> str:
        p = self.root / "proc" / "sys" / "kernel" / "osrelease"
        return p.read_text().strip() if p.exists() else "4.18.0-513.5.1.el8_9.x86_64"

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
            os_type=str(meta.get("os_type", "linux")),
            runs=[str(r) for r in inv.get("runs", ["ok"])] or ["ok"],
            agent_head=int(inv.get("agent_head", 0)),
            memory_gib=int(meta.get("memory_gib", 0)),
            capture=Capture(float(meta["capture"].get("seconds", 600)), str(meta["capture"].get("outcome", "complete")))
            if isinstance(meta.get("capture"), dict) else None,
        )

    def next_run(self) -> str:
        return self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]


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
    """Run a shell script as Cloud Assistant would, against a fixture root: the agent saves
    the content to a file, makes it executable and runs ``sh -c <file>``, stdout and stderr
    into one buffer (aliyun/aliyun_assist_client, agent/taskengine/host/processor.go and
    basetask.go: SyncRun(&stdouterrWrite, &stdouterrWrite, nil)).

    Returns (output, exit code, timed out)."""
    import tempfile

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CRASHDIAG_ROOT": str(root), "LC_ALL": "C"}
    with tempfile.TemporaryDirectory(prefix="crashdiag-sim-") as d:
        path = Path(d) / "script.sh"
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
        try:
            p = subprocess.run(["sh", "-c", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return exc.stdout or b"", None, True
    return p.stdout, p.returncode, False


def _pre_reboot_root(root: Path, dest: Path) -> Path:
    """A copy of ``root`` whose proc/stat says the boot began a day earlier: the boot the
    command lands on while ECS still says Running during the crash reboot."""
    import shutil

    copy = dest / "root"
    shutil.copytree(root, copy, symlinks=True)
    stat = copy / "proc" / "stat"
    btime = None
    if stat.exists():
        for line in stat.read_text(errors="replace").splitlines():
            if line.startswith("btime "):
                btime = int(line.split()[1])
    old = (btime or 1795700000) - PRE_REBOOT_AGE
    stat.parent.mkdir(parents=True, exist_ok=True)
    stat.write_text(f"cpu  1 0 1 100 0 0 0 0 0 0\nbtime {old}\nprocesses 1\n")
    return copy


def _failed(code: str) -> InvocationResult:
    return InvocationResult(ERROR_STATUS.get(code, "Failed"), None, code, b"", 0)


class SimulatedCloud:
    """The EcsApi over simulated instances. Thread-safe: the storm test calls it concurrently."""

    def __init__(self, instances: dict[str, SimInstance], clock: Callable[[], float] = time.time) -> None:
        self.instances = instances
        self.clock = clock  # wall seconds: how far a kdump capture has got
        self._invocations: dict[str, _Invocation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (action, instance id), for tests and replay output

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> SimulatedCloud:
        d = Path(directory)
        found = {p.name: SimInstance.from_dir(p) for p in sorted(d.iterdir()) if p.is_dir() and p.name.startswith("i-")} if d.is_dir() else {}
        return cls(found, clock)

    def _capturing(self, inst: SimInstance) -> float | None:
        """Seconds since the crash while the instance is in its capture kernel, else None.
        The crash is when the simulation first hears of the instance. Call with the lock."""
        if inst.capture is None:
            return None
        now = self.clock()
        if inst.crashed_at is None:
            inst.crashed_at = now
        elapsed = now - inst.crashed_at
        return elapsed if inst.capture.progress(elapsed)[0] else None

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
            if self._capturing(inst) is not None:
                return "Running"  # the capture kernel runs inside the same instance
            return inst.statuses.pop(0) if len(inst.statuses) > 1 else inst.statuses[0]

    def instance_info(self, region: str, instance_id: str) -> InstanceInfo | None:
        with self._lock:
            self.calls.append(("DescribeInstances", instance_id))
            inst = self.instances.get(instance_id)
            if inst is None or inst.region != region:
                return None
            return InstanceInfo(instance_id, inst.region, inst.os_type, inst.name,
                                "Windows Server 2022" if inst.os_type.lower() == "windows" else "",
                                inst.statuses[0], inst.memory_gib * 1024)

    def cloud_assistant_online(self, region: str, instance_id: str) -> bool:
        with self._lock:
            self.calls.append(("DescribeCloudAssistantStatus", instance_id))
            inst = self._get(region, instance_id)
            # the capture kernel starts no Cloud Assistant agent
            return inst.agent_online and self._capturing(inst) is None

    def run_command(self, region: str, instance_id: str, script: str, parameters: dict[str, str], timeout: int) -> str:
        import base64

        size = command_size(base64.b64encode(script.encode()).decode(), parameters)
        if size > COMMAND_LIMIT:
            raise CloudError("InvalidParameter.CommandContent",
                             f"CommandContent and Parameters are {size} bytes in base64, over 24 KB")
        with self._lock:
            self.calls.append(("RunCommand", instance_id))
            inst = self._get(region, instance_id)
            invoke_id = f"t-sim{next(self._ids):08d}"
            capturing = self._capturing(inst) is not None
            run = inst.next_run() if not capturing else "ClientNotRunning"
        if not inst.agent_online or capturing:
            result = _failed("ClientNotRunning")
        elif inst.error_code:
            result = _failed(inst.error_code)
        elif inst.os_type.lower() == "windows":
            # RunShellScript is for Linux instances (RunCommand's Type; doc-detail/87029)
            result = _failed("CommandNotApplicable")
        elif run in ERROR_STATUS:
            result = _failed(run)
        else:
            import tempfile

            text = substitute_parameters(script, parameters)
            with tempfile.TemporaryDirectory(prefix="crashdiag-boot-") as d:
                root = _pre_reboot_root(inst.root, Path(d)) if run == "pre-reboot" else inst.root
                out, code, timed_out = run_guest_script(text, root, min(timeout, SCRIPT_TIMEOUT))
            kept, dropped = agent_output_cut(out, inst.agent_head)
            if timed_out:
                result = InvocationResult("Timeout", None, "ExecutionTimeout", kept, dropped)
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
            inst = self._get(region, instance_id)
            if inst.capture is None:
                return inst.console
            self._capturing(inst)
            return capture_console(inst.console, inst.release(), inst.capture, self.clock() - (inst.crashed_at or 0.0))
