"""Fetch a crashed instance's kernel log: Cloud Assistant first, the serial console
when the guest cannot answer.

All waiting is bounded by ``Settings.collect_wait_seconds`` and done with tenacity
(backoff with jitter, an overall deadline, an injectable clock and sleep), so a test
runs the same code in milliseconds.

What the real service does, and what this module does about it:

- DescribeInstances says whether the instance runs Windows (``OSType``): a Windows
  instance raises ``InstanceFailure.Reboot`` too, but a shell script cannot run there, so
  its incident ends with a recorded failure and notice instead of a failed command.
- RunCommand's 24 KB limit counts the command content and the custom parameters, both
  base64 (``cloud.ecs.command_size``): the script is sent gzip-compressed behind a small
  unpacking prologue (``guest_command``), and the budget is checked for the longest upload
  URL the guest accepts (``worst_case_command_size``).
- Cloud Assistant ends an invocation with a documented ErrorCode; each one maps to a next
  step (``NEXT_STEP``): run again once the guest is back, read the serial console, or stop
  with the reason.
- After a panic with kdump, the instance runs the capture kernel (ECS: Running, agent
  offline) until the dump is saved, which can outlast many function timeouts. When the
  console shows a capture under way (``capture.read_capture``) and a ``GuestWait`` is
  given, collect does not sleep through it: it returns ``waiting`` with what it saw, and
  the pipeline checks again later, until the capture ends, stalls or the deadline passes.
- While the crash reboot is under way, ECS can still say Running and the agent can look
  online, so a command can land on the boot before the crash: the script reports its boot
  time and a log from an earlier boot than the event's ``executeStartTime`` is run again.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cloud.ecs import COMMAND_LIMIT, CloudError, EcsApi, InvocationResult, command_size
from ..settings import Settings
from .wording import join_advice, say, step_words

# The one script this tool ever runs on a guest (SECURITY.md).
SCRIPT_PATH = Path(__file__).with_name("guest") / "collect-crash-log.sh"
_PARAMS_END = "# --- end of parameters"
_URL_OK = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$")

# The guest script drops an upload URL longer than this (its UPLOAD_URL check).
MAX_UPLOAD_URL = 4096
# What RunCommand must leave unused at the worst case: room for the script to grow.
COMMAND_MARGIN = 2048
# A guest boot that began this much before the crash reboot is still "after" it: clocks.
BOOT_SLACK = 120
# RunCommand at most this many times per incident (a pre-reboot landing, a restart, ...).
MAX_RUNS = 4

# Next step for each ErrorCode DescribeInvocationResults documents (the ECS SDKs'
# DescribeInvocationResults response model, ErrorCode; "Check execution results and
# troubleshoot common issues", https://www.alibabacloud.com/help/doc-detail/87029.html):
#   rerun    the guest is (or will be) back: wait and run the script again, within budget
#   console  the guest cannot run our script: read the serial console, and say why
#   gone     nothing is left to read: stop with the reason
NEXT_STEP: dict[str, tuple[str, str, str]] = {
    # code: (step, why, what to do)
    "InstanceRestarted": ("rerun", "the instance restarted while the script ran", ""),
    "ClientRestarted": ("rerun", "the Cloud Assistant agent restarted while the script ran", ""),
    "ClientIsUpgrading": ("rerun", "the Cloud Assistant agent was upgrading", ""),
    "ClientNotRunning": ("rerun", "the Cloud Assistant agent was not running",
                         "start the agent: systemctl start aliyun.service (or /etc/init.d/aliyun-service start)"),
    "ClientNotResponse": ("rerun", "the Cloud Assistant agent did not respond",
                          "restart the agent: systemctl restart aliyun.service"),
    "ClientNotOnline": ("rerun", "the Cloud Assistant agent was not connected to its server",
                        "restart the agent: systemctl restart aliyun.service"),
    "DeliveryTimeout": ("rerun", "the command could not be delivered to the agent in time", ""),
    "InstanceNotRunning": ("rerun", "the instance was not running when the command was sent", ""),
    "ExecutionInterrupted": ("rerun", "the command was interrupted", ""),
    "TaskConcurrencyLimit": ("rerun", "too many Cloud Assistant tasks ran at once", ""),
    "ClientNetworkBlocked": ("console", "the instance cannot reach Cloud Assistant's servers",
                             "allow outbound TCP 443 and 80 and UDP 53 to Cloud Assistant "
                             "(https://<region>.axt.aliyun.com, 100.100.100.200)"),
    "SecurityGroupRuleDenied": ("console", "a security group rule denies access to Cloud Assistant",
                                "allow Cloud Assistant's addresses in the security group the error names"),
    "ClientNeedUpgrade": ("console", "the Cloud Assistant agent is too old", "upgrade the Cloud Assistant agent"),
    "ExecutionTimeout": ("console", "the collection script ran past its timeout",
                         "raise COLLECT_COMMAND_TIMEOUT if the guest is slow to read its logs"),
    "ExecutionException": ("console", "the collection script could not be run", "see ErrorInfo in the attempts"),
    "ExitCodeNonzero": ("console", "the collection script failed", "see the attempts for its exit code"),
    "CommandNotApplicable": ("console", "a shell script cannot run on this instance's OS", ""),
    "AccountNotExists": ("console", "the instance has no root account for Cloud Assistant", ""),
    "DirectoryNotExists": ("console", "the working directory is missing on the instance", ""),
    "DefaultWorkingDirectoryNotAvailable": ("console", "root's home directory is not available on the instance", ""),
    "InvalidCommandText": ("console", "Cloud Assistant refused the command text", ""),
    "CommandContentDecodeError": ("console", "Cloud Assistant could not decode the command", ""),
    "InvalidSystemBuiltInParameter": ("console", "Cloud Assistant refused a built-in parameter", ""),
    "InstanceReleased": ("gone", "the instance was released while the script ran", ""),
    "InstanceNotExists": ("gone", "the instance no longer exists", ""),
    "InstanceDeregistered": ("gone", "the managed instance was deregistered", ""),
}
# Kept for callers that ask "can the guest run our script now?"
GUEST_UNREACHABLE = frozenset(code for code, (step, _, _) in NEXT_STEP.items() if step == "rerun")

WINDOWS_NOTICE = "Windows instance: not diagnosed by this tool"


@dataclass(frozen=True)
class GuestWait:
    """How long an incident may wait for a guest that is saving a kdump capture: wall
    clock ``now`` and ``deadline`` (epoch seconds), the previous check's record (for
    telling a slow capture from a hung one) and how long without progress is hung."""

    now: float
    deadline: float
    stall_seconds: float
    previous: dict | None = None


class _NotYet(Exception):
    """A bounded wait is still waiting."""


class _Rerun(Exception):
    """The guest answered, but not with what we need yet: run the script again."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _minified() -> str:
    """The script after its parameter block, comment-only and blank lines dropped (the
    script has no multi-line here-documents whose content this could change;
    test_guest_script runs the sent form under every shell)."""
    text = SCRIPT_PATH.read_text(encoding="utf-8")
    _, body = _split(text)
    kept = [ln for ln in body.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(kept) + "\n"


def _split(text: str) -> tuple[str, str]:
    """(shebang, comments and the parameter block; the rest)."""
    at = text.index(_PARAMS_END)
    cut = text.index("\n", at) + 1
    return text[:cut], text[cut:]


def guest_command() -> str:
    """The collection script as sent to RunCommand: the parameter block as written
    (Cloud Assistant substitutes ``{{since}}`` etc. there), then the rest of the script
    gzip-compressed and base64-encoded, unpacked and run with ``eval`` in the same shell.
    A guest without ``base64`` (or ``openssl``) and ``gzip`` prints CRASHDIAG-UNPACK-FAILED."""
    head, _ = _split(SCRIPT_PATH.read_text(encoding="utf-8"))
    params = [ln for ln in head.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    blob = base64.b64encode(gzip.compress(_minified().encode("utf-8"), 9, mtime=0)).decode("ascii")
    return "\n".join([
        "#!/bin/sh",
        *params,
        "exec 2>/dev/null",
        f"Z='{blob}'",
        'S=$(printf %s "$Z" | base64 -d | gzip -dc) || S=',
        '[ -n "$S" ] || S=$(printf %s "$Z" | openssl base64 -d -A | gzip -dc) || S=',
        'case $S in *CRASHDIAG-BEGIN*) ;; *) echo CRASHDIAG-UNPACK-FAILED; exit 3 ;; esac',
        'unset Z',
        'eval "$S"',
    ]) + "\n"


def worst_case_parameters(max_bytes: int = 20000) -> dict[str, str]:
    """The longest parameters the guest accepts: a 12-digit SINCE, a 6-digit MAX_BYTES and a
    MAX_UPLOAD_URL-long URL (a V4 presigned URL with an STS token runs to 2-3 KB)."""
    return {"since": "9" * 12, "max_bytes": str(max_bytes).rjust(6, "9")[:6], "upload_url": "https://" + "x" * (MAX_UPLOAD_URL - 8)}


def worst_case_command_size() -> int:
    """What RunCommand's 24 KB limit would count for the script with the longest parameters."""
    content = base64.b64encode(guest_command().encode("utf-8")).decode("ascii")
    return command_size(content, worst_case_parameters())


def _failure(reason: str, advice: str) -> dict[str, str]:
    return {"reason": reason, "advice": advice}


class Collector:
    def __init__(self, ecs: EcsApi | None, settings: Settings, clock: Callable[[], float], sleep: Callable[[float], None],
                 wait: GuestWait | None = None) -> None:
        self.ecs = ecs
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.wait = wait
        self.lang = settings.lang
        self._wait_over = False  # the deadline or a stall ended the wait: say so once, look no more

    def _wait(self, deadline: float, check: Callable[[], Any], first: float | None = None) -> Any:
        """Call ``check`` until it returns without raising _NotYet or the deadline passes.

        The deadline is on our own clock (tenacity's stop_after_delay reads
        time.monotonic, which an injected test clock would not move)."""
        from tenacity import RetryError, Retrying, retry_if_exception_type, wait_random_exponential

        first = first if first is not None else float(self.settings.collect_poll_seconds)
        retrying = Retrying(
            retry=retry_if_exception_type(_NotYet),
            wait=wait_random_exponential(multiplier=max(first, 0.001), max=max(first * 10, 0.001)),
            stop=lambda _state: self.clock() >= deadline,
            sleep=self.sleep,
        )
        try:
            return retrying(check)
        except RetryError:
            raise _NotYet() from None

    def collect(self, region: str, instance_id: str, since: int, upload: Callable[..., str | None],
                boot_after: int | None = None) -> dict[str, Any]:
        """``upload(ttl, public)`` presigns the guest's upload (``public``: for an endpoint
        reachable from another region); ``boot_after`` (epoch seconds, the event's
        executeStartTime) is the earliest boot a log may come from."""
        result: dict[str, Any] = {
            "instance_id": instance_id, "region": region, "method": None, "complete": False,
            "log": {}, "context": {}, "notes": [], "failure": None, "attempts": [],
        }
        if self.ecs is None:
            result["failure"] = _failure(say(self.lang, "no_api"), say(self.lang, "no_api_advice"))
            return result
        deadline = self.clock() + self.settings.collect_wait_seconds
        try:
            info = self.ecs.instance_info(region, instance_id)
        except CloudError as exc:
            info = False
            result["attempts"].append({"step": "describe_instance", "error": exc.code})
            result["notes"].append(say(self.lang, "describe_failed", code=exc.code))
        if info is None:
            return self._gone(result, say(self.lang, "released"))
        if info:
            result["instance"] = {"name": info.name, "os_type": info.os_type, "os_name": info.os_name}
            if info.windows:
                os_desc = f"{info.os_type}{', ' + info.os_name if info.os_name else ''}"
                result["failure"] = _failure(say(self.lang, "windows", notice=WINDOWS_NOTICE, os=os_desc),
                                             say(self.lang, "windows_advice"))
                result["notice"] = WINDOWS_NOTICE
                return result
            if info.memory_mib:
                result["instance"]["memory_gib"] = round(info.memory_mib / 1024)
        if self.wait is not None and self._capture_first(region, instance_id, result):
            return result
        guest_error = None
        runs = 0
        while True:
            try:
                status = self._wait_running(region, instance_id, deadline)
            except CloudError as exc:
                status, guest_error = None, say(self.lang, "ecs_error", code=exc.code)
            if status == "missing":
                return self._gone(result, say(self.lang, "released"))
            if status != "running":
                guest_error = guest_error or say(self.lang, "not_running")
                result["attempts"].append({"step": "wait_running", "error": guest_error})
                return self._console(region, instance_id, result, guest_error)
            runs += 1
            try:
                step, why = self._run_script(region, instance_id, since, deadline, upload, result, boot_after)
            except CloudError as exc:
                result["attempts"].append({"step": "cloud_assistant", "error": exc.code})
                return self._console(region, instance_id, result, say(self.lang, "ecs_error", code=exc.code))
            if step == "ok":
                return result
            if step == "gone":
                return self._gone(result, why)
            guest_error = why
            if step == "console":
                return self._console(region, instance_id, result, why)
            # rerun: give the guest time to come back, within the budget
            delay = max(1.0, 10 * float(self.settings.collect_poll_seconds))
            if runs >= MAX_RUNS or self.clock() + delay >= deadline:
                result["notes"].append(say(self.lang, "gave_up", runs=runs, why=why))
                return self._console(region, instance_id, result, why)
            result["notes"].append(say(self.lang, "again", why=why))
            self.sleep(delay)

    # -- waiting for a kdump capture -----------------------------------------------------

    def _capture_first(self, region: str, instance_id: str, result: dict) -> bool:
        """Before any sleeping: an agent that is offline while the console shows a capture
        means "come back later", not "wait here"."""
        try:
            if self.ecs.cloud_assistant_online(region, instance_id):
                return False
            text = self.ecs.console_output(region, instance_id)
        except CloudError:
            return False  # the usual path below handles (and records) API trouble
        return self._capture_wait(text, result)

    def _capture_wait(self, text: bytes | str | None, result: dict) -> bool:
        """True when the incident should wait for the capture (``result["waiting"]`` says
        what was seen); False to go on now, with a note when the wait is over."""
        from .capture import read_capture

        w = self.wait
        if w is None or self._wait_over:
            return False
        view = read_capture(text)
        result["capture"] = view.to_json()
        if not view.in_progress:
            return False
        prev = w.previous or {}
        token = view.token()
        since = float(prev.get("token_since", w.now)) if prev.get("token") == token else w.now
        started = float(prev.get("first_seen", w.now))
        if w.now >= w.deadline:
            self._wait_over = True
            result["notes"].append(say(self.lang, "capture_deadline", minutes=int((w.now - started) // 60),
                                       seen=view.describe(self.lang)))
            return False
        if w.now - since >= w.stall_seconds:
            self._wait_over = True
            result["notes"].append(say(self.lang, "capture_hung", minutes=int((w.now - since) // 60),
                                       seen=view.describe(self.lang)))
            return False
        result["waiting"] = {
            "reason": view.describe(self.lang), "lang": self.lang, "capture": view.to_json(), "token": token, "token_since": since,
            "first_seen": started, "checked_at": w.now, "checks": int(prev.get("checks", 0)) + 1,
            "deadline": w.deadline, "instance_status": "Running", "agent_online": False,
            "memory_gib": (result.get("instance") or {}).get("memory_gib"),
        }
        return True

    # -- steps ---------------------------------------------------------------------------

    def _wait_running(self, region: str, instance_id: str, deadline: float) -> str:
        def check() -> str:
            status = self.ecs.instance_status(region, instance_id)
            if status is None:
                return "missing"
            if status != "Running":
                raise _NotYet()
            return "running"

        try:
            return self._wait(deadline, check)
        except _NotYet:
            return "timeout"

    def _upload_url(self, region: str, upload: Callable[..., str | None], result: dict) -> str:
        """A presigned PUT URL the guest can reach, or "" with a note saying why not."""
        here = self.settings.region or region
        public = region != here
        url = upload(self.settings.upload_url_ttl, public) if public else upload(self.settings.upload_url_ttl)
        if public and not url:
            result["notes"].append(say(self.lang, "xregion_none", region=region, here=here))
            return ""
        if public:
            result["notes"].append(say(self.lang, "xregion_public", region=region, here=here))
        url = url or ""
        if url and not _URL_OK.match(url):
            result["notes"].append(say(self.lang, "url_refused"))
            return ""  # never hand the guest anything shell-unsafe
        if len(url) > MAX_UPLOAD_URL:
            result["notes"].append(say(self.lang, "url_too_long", size=len(url), limit=MAX_UPLOAD_URL))
            return ""
        return url

    def _run_script(self, region, instance_id, since, deadline, upload, result, boot_after) -> tuple[str, str]:
        """One RunCommand: ("ok", ""), or the next step and why."""
        def online() -> bool:
            if not self.ecs.cloud_assistant_online(region, instance_id):
                raise _NotYet()
            return True

        try:
            # Give the agent a quarter of the budget after boot, not all of it: the console
            # fallback needs time too.
            self._wait(min(deadline, self.clock() + max(1, self.settings.collect_wait_seconds // 4)), online)
        except _NotYet:
            result["attempts"].append({"step": "cloud_assistant", "error": "agent offline"})
            return "console", say(self.lang, "agent_offline")
        url = self._upload_url(region, upload, result)
        params = {"since": str(int(since)), "max_bytes": str(int(self.settings.collect_max_bytes)), "upload_url": url}
        invoke_id = self.ecs.run_command(region, instance_id, guest_command(), params, self.settings.collect_command_timeout)

        def finished() -> InvocationResult:
            r = self.ecs.invocation_result(region, invoke_id, instance_id)
            if not r.finished:
                raise _NotYet()
            return r

        hard_deadline = max(deadline, self.clock() + self.settings.collect_command_timeout + 30)
        try:
            inv = self._wait(hard_deadline, finished)
        except _NotYet:
            result["attempts"].append({"step": "run_command", "invoke_id": invoke_id, "error": "invocation never finished"})
            return "console", say(self.lang, "never_finished")
        attempt = {"step": "run_command", "invoke_id": invoke_id, "status": inv.status, "error": inv.error_code,
                   "exit_code": inv.exit_code, "dropped": inv.dropped}
        if inv.error_info:
            attempt["error_info"] = inv.error_info
        result["attempts"].append(attempt)
        if inv.error_code and inv.status != "Success" and not (inv.error_code == "ExitCodeNonzero" and inv.output):
            step, why, advice = NEXT_STEP.get(
                inv.error_code, ("console", say(self.lang, "ca_ended", status=inv.status, code=inv.error_code), ""))
            why, advice = step_words(self.lang, inv.error_code, why, advice)
            why = f"{why} ({inv.status} {inv.error_code})"
            if advice:
                result.setdefault("advice", []).append(advice)
            return step, why
        if inv.status == "Timeout":
            return "console", say(self.lang, "timed_out")
        try:
            return self._take_guest_output(inv, result, boot_after)
        except _Rerun as exc:
            return "rerun", exc.why

    def _take_guest_output(self, inv: InvocationResult, result: dict, boot_after: int | None) -> tuple[str, str]:
        from .guest_output import parse_guest_output

        try:
            out = parse_guest_output(inv.output, inv.dropped)
        except ValueError as exc:
            result["notes"].append(say(self.lang, "unreadable_note", error=exc))
            return "console", say(self.lang, "unreadable", error=exc)
        boot = out["context"].get("boot_time", "")
        if boot_after and boot.isdigit() and int(boot) < boot_after - BOOT_SLACK:
            raise _Rerun(say(self.lang, "boot_before", boot=boot, reboot=boot_after))
        result["context"] = out["context"]
        meta = dict(out["log"])
        result["log"] = meta
        if boot_after and not boot.isdigit():
            result["notes"].append(say(self.lang, "no_boot_time"))
        if inv.dropped:
            meta["dropped"] = inv.dropped
        payload = out.get("payload") or b""
        source = meta.get("source", "none")
        if source == "none" or (not payload and meta.get("uploaded") != "yes"):
            result["notes"].append(say(self.lang, "no_log_note"))
            return "console", say(self.lang, "no_log")
        if meta.get("uploaded") == "failed":
            result["notes"].append(say(self.lang, "upload_failed"))
        result["method"] = source
        complete = meta.get("complete") == "yes" and not out.get("truncated")
        if meta.get("uploaded") == "yes":
            complete = True
        result["complete"] = complete
        if out.get("truncated"):
            result["notes"].append(say(self.lang, "output_cut", dropped=inv.dropped))
        result["_log"] = payload
        return "ok", ""

    def _gone(self, result: dict, why: str) -> dict:
        result["failure"] = _failure(why, say(self.lang, "gone_advice"))
        return result

    def _console(self, region: str, instance_id: str, result: dict, why: str | None) -> dict:
        try:
            text = self.ecs.console_output(region, instance_id)
        except CloudError as exc:
            text = None
            result["attempts"].append({"step": "console_output", "error": exc.code})
        if self._capture_wait(text, result):
            return result
        if text and text.strip():
            result["method"] = "console"
            result["complete"] = False
            result["log"] = {"source": "console", "via": "GetInstanceConsoleOutput", "size": len(text)}
            result["notes"].append(say(self.lang, "from_console", why=why or say(self.lang, "script_not_run")))
            result["_log"] = text
            return result
        advice = join_advice(self.lang, [*result.get("advice", []), say(self.lang, "enable_kdump")])
        result["failure"] = _failure(say(self.lang, "console_empty", why=why or say(self.lang, "none_left")), advice)
        return result


__all__ = ["Collector", "SCRIPT_PATH", "guest_command", "worst_case_command_size", "NEXT_STEP", "COMMAND_LIMIT",
           "COMMAND_MARGIN", "MAX_UPLOAD_URL", "WINDOWS_NOTICE"]
