"""Fetch a crashed instance's kernel log: Cloud Assistant first, the serial console
when the guest cannot answer.

All waiting is bounded by ``Settings.collect_wait_seconds`` and done with tenacity
(backoff with jitter, an overall deadline, an injectable clock and sleep), so a test
runs the same code in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cloud.ecs import CloudError, EcsApi, InvocationResult
from ..settings import Settings

# The one script this tool ever runs on a guest (SECURITY.md).
SCRIPT_PATH = Path(__file__).with_name("guest") / "collect-crash-log.sh"

# Cloud Assistant error codes that mean the guest cannot run our script now.
GUEST_UNREACHABLE = frozenset(
    {"ClientNotRunning", "ClientNotResponse", "DeliveryTimeout", "InstanceNotRunning", "ClientNeedUpgrade",
     "ClientIsUpgrading", "ClientNetworkBlocked", "ClientNotOnline", "InvalidInstance.NotRunning"}
)
_URL_OK = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$")


class _NotYet(Exception):
    """A bounded wait is still waiting."""


# RunCommand takes at most 24 KB of base64 CommandContent.
COMMAND_LIMIT = 24 * 1024


def guest_command() -> str:
    """The collection script as sent: comment-only and blank lines dropped, so the
    readable file fits Cloud Assistant's 24 KB limit. (The script has no multi-line
    here-documents whose content this could change; test_guest_script runs both forms.)"""
    lines = SCRIPT_PATH.read_text(encoding="utf-8").split("\n")
    kept = [ln for ln in lines if ln.strip() and not (ln.lstrip().startswith("#") and not ln.startswith("#!"))]
    return "\n".join(kept) + "\n"


def _failure(reason: str, advice: str) -> dict[str, str]:
    return {"reason": reason, "advice": advice}


class Collector:
    def __init__(self, ecs: EcsApi | None, settings: Settings, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.ecs = ecs
        self.settings = settings
        self.clock = clock
        self.sleep = sleep

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

    def collect(self, region: str, instance_id: str, since: int, upload: Callable[[int], str | None]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "instance_id": instance_id, "region": region, "method": None, "complete": False,
            "log": {}, "context": {}, "notes": [], "failure": None, "attempts": [],
        }
        if self.ecs is None:
            result["failure"] = _failure("no ECS API is configured", "set credentials and region, or replay with --instances")
            return result
        deadline = self.clock() + self.settings.collect_wait_seconds
        guest_error = None
        try:
            status = self._wait_running(region, instance_id, deadline)
        except CloudError as exc:
            status = None
            guest_error = f"ECS API error {exc.code}"
        if status == "missing":
            result["failure"] = _failure(
                "the instance no longer exists (released after the crash)",
                "nothing can be collected; if the instance was kept, check its snapshot or system disk",
            )
            return result
        if status == "running":
            try:
                got = self._run_script(region, instance_id, since, deadline, upload, result)
                if got:
                    return result
            except CloudError as exc:
                guest_error = f"ECS API error {exc.code}"
                result["attempts"].append({"step": "cloud_assistant", "error": exc.code})
        else:
            guest_error = guest_error or "the instance did not return to Running in time"
            result["attempts"].append({"step": "wait_running", "error": guest_error})
        return self._console(region, instance_id, result, guest_error)

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

    def _run_script(self, region, instance_id, since, deadline, upload, result) -> bool:
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
            return False
        url = upload(self.settings.upload_url_ttl) or ""
        if url and not _URL_OK.match(url):
            url = ""  # never hand the guest anything shell-unsafe
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
            return False
        result["attempts"].append(
            {"step": "run_command", "invoke_id": invoke_id, "status": inv.status, "error": inv.error_code,
             "exit_code": inv.exit_code, "dropped": inv.dropped}
        )
        if inv.error_code in GUEST_UNREACHABLE:
            return False
        return self._take_guest_output(inv, result)

    def _take_guest_output(self, inv: InvocationResult, result: dict) -> bool:
        from .guest_output import parse_guest_output

        try:
            out = parse_guest_output(inv.output.decode("utf-8", "replace"))
        except ValueError as exc:
            result["notes"].append(f"the collection script's output could not be read: {exc}")
            return False
        result["context"] = out["context"]
        meta = dict(out["log"])
        result["log"] = meta
        if inv.dropped:
            meta["dropped"] = inv.dropped
        payload = out.get("payload") or b""
        source = meta.get("source", "none")
        if source == "none" or (not payload and meta.get("uploaded") != "yes"):
            result["notes"].append("the guest holds no crash log (no kdump, pstore, journal or syslog record)")
            return False
        result["method"] = source
        complete = meta.get("complete") == "yes" and not out.get("truncated")
        if meta.get("uploaded") == "yes":
            complete = True
        result["complete"] = complete
        if out.get("truncated"):
            result["notes"].append(f"Cloud Assistant cut the output ({inv.dropped} bytes dropped)")
        result["_log"] = payload
        return True

    def _console(self, region: str, instance_id: str, result: dict, why: str | None) -> dict:
        try:
            text = self.ecs.console_output(region, instance_id)
        except CloudError as exc:
            text = None
            result["attempts"].append({"step": "console_output", "error": exc.code})
        if text and text.strip():
            result["method"] = "console"
            result["complete"] = False
            result["log"] = {"source": "console", "via": "GetInstanceConsoleOutput", "size": len(text)}
            result["notes"].append(
                "read from the serial console (the output of the last start): "
                + (why or "the guest could not run the collection script")
            )
            result["_log"] = text
            return result
        result["failure"] = _failure(
            f"no crash log could be collected: {why or 'the guest had none'}, and the serial console was empty",
            "enable kdump (crashkernel= and the kdump service) and a persistent journal so the next crash leaves a log; "
            "check the instance in the ECS console (VNC) for a boot problem",
        )
        return result
