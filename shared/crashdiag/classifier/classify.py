"""Classify a kernel log: the public entry points of the classifier.

``classify_path`` / ``classify_bytes`` / ``classify_text`` return a plain dict that
follows the contract in DESIGN.md (``kind``, ``title``, ``fingerprint``, ``rule``,
``fix_status``, ``kernel``, ``crash``, ``modules``, ``reports``) plus the extra
fields documented in README.md.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

from . import formats as F
from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text
from .catalogue import Facts, Rule, best_match, load_catalogue
from .kernels import fix_status, parse_release
from .logtext import normalise, open_bytes, open_log, scan_windows
from .parse import Report, ReportBuilder

SCHEMA_VERSION = 1

# kernel/panic.c taint_flags[]: the letter printed when the flag is set.
TAINT_FLAGS = {
    "G": "no proprietary module loaded (the flag P is not set)",
    "P": "proprietary module loaded",
    "F": "module force-loaded",
    "S": "SMP with CPUs not designed for it / out of spec system",
    "R": "module force-unloaded",
    "M": "machine check exception occurred",
    "B": "bad page referenced or unexpected page flags",
    "U": "taint requested by user space (el6: unsupported module)",
    "D": "kernel died recently (an earlier oops or BUG)",
    "A": "ACPI table overridden by user",
    "W": "an earlier kernel WARNING",
    "C": "staging driver loaded",
    "I": "firmware workaround for a platform bug",
    "O": "out-of-tree module loaded",
    "E": "unsigned module loaded",
    "L": "soft lockup occurred earlier",
    "K": "kernel live-patched",
    "X": "auxiliary taint (distribution-defined)",
    "T": "struct randomisation plugin (RHEL: technology preview driver)",
    "N": "in-kernel test (kunit) run",
    "J": "userspace used a mutating debug operation in fwctl",
}
# Module flags in "Modules linked in: name(OE)" that say the module did not ship
# with the distribution kernel: O out-of-tree, E unsigned, P proprietary, U (el6) unsupported.
THIRD_PARTY_FLAGS = frozenset("OEPU")


def classify_path(path: str, lang: str = "en", rules: tuple[Rule, ...] | None = None,
                  budget_s: float | None = None) -> dict[str, Any]:
    """Classify the log at ``path`` ('-' is not handled here; see the CLI)."""
    with open_log(path) as fh:
        result = _classify_stream(fh, lang, rules, budget_s=budget_s)
    result["source"] = path
    return result


def classify_bytes(
    data: bytes,
    lang: str = "en",
    rules: tuple[Rule, ...] | None = None,
    source: str = "<bytes>",
    scan_options: dict[str, int] | None = None,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Classify a log held in memory (raises LogInputError for empty or binary data).

    ``scan_options`` passes chunk and window sizes to ``logtext.scan_windows``. With
    ``budget_s``, classification stops after that many seconds and reports what it found
    so far, with confidence low and a "time budget" reason.
    """
    result = _classify_stream(open_bytes(data, source), lang, rules, scan_options, budget_s)
    result["source"] = source
    return result


def classify_text(text: str, lang: str = "en", rules: tuple[Rule, ...] | None = None) -> dict[str, Any]:
    return classify_bytes(text.encode("utf-8", "surrogatepass"), lang, rules, source="<text>")


BUDGET_CHECK_LINES = 256  # lines fed between two looks at the clock


def _classify_stream(
    fh: io.BufferedIOBase, lang: str, rules: tuple[Rule, ...] | None, scan_options: dict[str, int] | None = None,
    budget_s: float | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget_s if budget_s else None
    builder = ReportBuilder()
    windows = 0
    stopped = False
    for w in scan_windows(fh, **(scan_options or {})):
        windows += 1
        for n, line in enumerate(normalise(w.text, w.first_line or 1)):
            if deadline is not None and n % BUDGET_CHECK_LINES == 0 and time.monotonic() > deadline:
                stopped = True
                break
            builder.feed(line)
        builder.end_window()
        if stopped:
            break
    reports = builder.finish()
    if rules is None:
        rules = load_catalogue()
    result = build_result(reports, builder, rules, lang, windows, deadline)
    if stopped or (deadline is not None and time.monotonic() > deadline):
        result["confidence"] = "low"
        result["confidence_reasons"] = [*result.get("confidence_reasons", []),
                                        f"time budget: classification stopped after {budget_s:g} s with what it had read"]
        result["input"]["time_budget_exceeded"] = True
    return result


# --- assembling the result -------------------------------------------------------------


def primary_report(reports: list[Report]) -> Report | None:
    """The first fatal report; with none fatal, the first report. A bare head line (crash's
    'PANIC: "..."' banner) gives way to the full report of the same kind printed after it."""
    for i, r in enumerate(reports):
        if r.fatal:
            if not r.trace and r.rip is None:
                for later in reports[i + 1 :]:
                    if later.fatal and later.kind == r.kind and later.trace:
                        return later
            return r
    return reports[0] if reports else None


def _guilty_frame(r: Report, event_frame: str | None) -> str | None:
    """The frame a title names, chosen the way syzkaller chooses it so titles group alike:
    stalls by the code that dispatched the looping work, hung tasks by what they wait for,
    anything else by the first frame that is not plumbing; syscall wrappers read as the syscall."""
    fn = _guilty_frame_raw(r, event_frame)
    return F.canonical_function(fn) if fn else fn


_TIMER_IRQ = re.compile(r"^(?:asm_)?(?:smp_|sysvec_)?apic_timer_interrupt$|^el1h?_64_irq\w*$|^el1_irq$")


def _frames_for_title(r: Report) -> tuple[str | None, list[str]]:
    rip_fn = (r.rip or {}).get("function")
    names = [fr.function for fr in r.trace if fr.reliable and fr.function]
    if r.kind == "rcu_stall":
        # The stall is reported from the timer interrupt; the stuck code is what it interrupted.
        cut = max((i for i, n in enumerate(names) if _TIMER_IRQ.match(n)), default=-1)
        if cut >= 0:
            names = names[cut + 1 :]
        elif any(fr.context == "IRQ" for fr in r.trace):
            names = [fr.function for fr in r.trace if fr.context != "IRQ" and fr.reliable and fr.function] or names
    return rip_fn, names


def _stall_frame(names: list[str]) -> str | None:
    names = [n for n in names if not F.TITLE_SKIP.search(n) and not n.startswith("rcu")]
    if not names:
        return None
    prev = names[0]
    for n in names:
        if F.STALL_ANCHORS.search(n):
            return "smp_call_function" if "smp_call_function" in n else prev
        prev = n
    return None


def _hang_frame(names: list[str]) -> str | None:
    for n in names:
        for anchor, title in F.HANG_ANCHORS:
            if anchor in n:
                return title if title != anchor else n
    for n in names:
        if not F.HANG_SKIP.search(n) and not _skipped(n):
            return n
    return None


def _is_stall(r: Report, event_frame: str | None) -> bool:
    if r.kind in ("soft_lockup", "rcu_stall"):
        return True
    return r.main_event().fmt.title.startswith("BUG: stack guard page")


def _skipped(fn: str) -> bool:
    return bool(F.SKIP_FRAMES.match(fn) or F.TITLE_SKIP.search(fn))


_HEX = re.compile(r"^(?:0x)?[0-9a-f]{8,16}$")


def _guilty_frame_raw(r: Report, event_frame: str | None) -> str | None:
    rip_fn, names = _frames_for_title(r)
    if event_frame and _HEX.match(event_frame):
        event_frame = None  # "stack is corrupted in: ffffffff8343632e": not symbolised
    title = r.main_event().fmt.title
    if title.startswith("Kernel panic - corrupted stack end"):
        # The panic comes from inside the scheduler: the looping code is the task's own.
        found = _stall_frame([n for n in names if "schedule" not in n and "retint_kernel" not in n])
        if found:
            return found
    if title.startswith("Kernel panic - stack-protector") and not event_frame:
        names = [n for n in names if "stack_chk" not in n]
    if _is_stall(r, event_frame):
        found = _stall_frame(([rip_fn] if rip_fn and r.kind != "rcu_stall" else []) + names)
        if found is None and r.kind == "rcu_stall" and rip_fn:
            found = _stall_frame([rip_fn, *names])
        if found:
            return found
    if r.kind == "hung_task":
        found = _hang_frame(names)
        if found:
            return found
    if event_frame:
        fn = F.clean_function(event_frame.split("+", 1)[0])
        if not _skipped(fn):
            return fn
    if r.kind == "rcu_stall":
        rip_fn = None
    candidates = ([rip_fn] if rip_fn else []) + names
    for fn in candidates:
        if not _skipped(fn):
            return fn
    # Only plumbing in view (a trace cut off, or none at all): the crashing function itself
    # still says more than no frame.
    return rip_fn or (F.clean_function(event_frame.split("+", 1)[0]) if event_frame else None)


_NUMBERS = re.compile(r"\b(?:0x)?[0-9a-fA-F]{8,}\b|\b0x[0-9a-fA-F]+\b")


_DIGITS = re.compile(r"\d+")


def _number(m: re.Match[str]) -> str:
    """NUM for a number standing alone: not inside a word, not a "(2)" count."""
    s, e = m.span()
    before, after = m.string[s - 1 : s], m.string[e : e + 1]
    if before and (before == "(" or before.isalnum() or before == "_"):
        return m.group(0)
    if after and (after == ")" or after.isalnum() or after == "_"):
        return m.group(0)
    return "NUM"


def _normalise_message(msg: str) -> str:
    msg = msg.strip().rstrip(".!").strip()
    msg = _NUMBERS.sub("ADDR", msg)
    msg = _DIGITS.sub(_number, msg)
    return re.sub(r"\s+", " ", msg)


# Titles for a report whose kind was refined past its main event's format: a lone
# "Oops" line with CR2 saying where it faulted, or list_debug.c's BUG without its message.
_REFINED_TITLES = {
    "null_deref": "BUG: unable to handle kernel NULL pointer dereference in {frame}",
    "paging_request": "BUG: unable to handle kernel paging request in {frame}",
    "list_corruption": "{op} corruption in {frame}",
    "gpf": "general protection fault in {frame}",
    "divide_error": "divide error in {frame}",
    "double_fault": "double fault in {frame}",
    "invalid_opcode": "invalid opcode in {frame}",
    "kernel_bug": "kernel BUG in {frame}",
}


def _list_op(r: Report) -> str:
    for e in r.events:
        if "op" in e.groups:
            return e.groups["op"]
    rip_fn = (r.rip or {}).get("function") or ""
    return "list_add" if "add" in rip_fn else "list_del" if "del" in rip_fn else "list"


_XFS_FLAGS = {0x1: "metadata I/O error", 0x2: "log I/O error", 0x4: "forced unmount", 0x8: "in-memory corruption",
              0x10: "on-disk corruption"}
_XFS_WORDS = (("log error", "log I/O error"), ("log I/O", "log I/O error"), ("in-memory", "in-memory corruption"),
              ("CRC error", "metadata corruption"), ("Metadata corruption", "metadata corruption"),
              ("metadata I/O error", "metadata I/O error"))


def _xfs_reason(r: Report) -> str:
    """Why XFS shut the filesystem down: the xfs_do_force_shutdown() flag, else the wording."""
    for e in r.events:
        flag = e.groups.get("flag")
        if flag:
            value = int(flag, 16)
            for bit, reason in sorted(_XFS_FLAGS.items()):
                if value & bit:
                    return reason
    for e in r.events:
        for words, reason in _XFS_WORDS:
            if words in e.line.text:
                return reason
    return "error"


def _title(r: Report) -> str:
    ev = r.main_event()
    if r.kind == "sysrq_crash":
        return "sysrq triggered crash"
    groups = dict(ev.groups)
    template = ev.fmt.title
    if r.kind != ev.fmt.kind:
        template = _REFINED_TITLES.get(r.kind, template)
    if r.kind == "list_corruption":
        groups["op"] = _list_op(r)
    if r.kind == "oom_kill":
        victim = next((e.groups.get("victim") for e in r.events if e.groups.get("victim")), None)
        memcg = any("cgroup" in e.groups.get("scope", "") or e.line.text.startswith("Task in") for e in r.events)
        base = "Memory cgroup out of memory" if memcg else "Out of memory"
        return f"{base}: killed process {victim}" if victim else f"{base}: OOM killer invoked"
    if "msg" in groups:
        msg = groups["msg"]
        if ev.fmt.kind in ("other", "other_panic"):
            # "scheduling while atomic: swapper/0/0/0x00010000" -> "scheduling while atomic"
            msg = re.split(r": | at | in process | for address | on CPU", msg, maxsplit=1)[0]
        groups["msg"] = _normalise_message(msg)
    if "{xfs_reason}" in template:
        groups["xfs_reason"] = _xfs_reason(r)
    groups.setdefault("dev", "unknown-block")
    groups.setdefault("exitcode", "unknown")
    frame = _guilty_frame(r, groups.get("frame"))
    groups["frame"] = frame or "\x00"
    try:
        title = template.format_map(_Fill(groups))
    except (ValueError, IndexError):
        title = template
    # With no frame to name, drop " in <frame>" rather than leave it dangling.
    title = title.replace(" in \x00", "").replace("\x00", "")
    return re.sub(r"\s+", " ", title).strip()


def _meaningful_frames(r: Report, n: int = 4) -> list[str]:
    out: list[str] = []
    for fr in r.trace:
        if fr.reliable and fr.function and not F.SKIP_FRAMES.match(fr.function):
            out.append(fr.function)
            if len(out) == n:
                break
    return out


def _fingerprint(kind: str, title: str, frames: list[str]) -> str:
    h = hashlib.sha256("\n".join([kind, title, *frames]).encode("utf-8", "replace"))
    return h.hexdigest()[:16]


def _modules_in_trace(r: Report) -> list[str]:
    seen: list[str] = []
    mod = (r.rip or {}).get("module")
    if mod:
        seen.append(mod)
    for fr in r.trace:
        if fr.module and fr.module not in seen:
            seen.append(fr.module)
    return seen


def _suspect(r: Report, in_trace: list[str]) -> tuple[str | None, str | None]:
    """A third-party module the crash runs through, and why we think so."""
    flags = dict(r.modules)
    for m in in_trace:
        f = flags.get(m, "")
        if set(f) & THIRD_PARTY_FLAGS:
            return m, f"the call trace runs through {m}, a module flagged ({f}) in 'Modules linked in'"
    third_party = set(r.taint or "") & THIRD_PARTY_FLAGS
    for m in in_trace:
        if m in r.tainting:
            return m, (f"the call trace runs through {m}, which the log shows tainting the kernel when it loaded "
                       f"({r.tainting[m]}: {TAINT_FLAGS.get(r.tainting[m], '')})")
    rip_mod = (r.rip or {}).get("module")
    if rip_mod and third_party and rip_mod not in flags:
        return rip_mod, (f"the crash is inside {rip_mod} (its RIP is in that module) and the kernel is tainted "
                         f"{''.join(sorted(third_party))} (a module that did not ship with it is loaded); "
                         "'Modules linked in' does not say which")
    if r.bad_rip and r.last_unloaded and (r.rip or {}).get("address", "").lower().lstrip("0x").startswith("ffffffffc"):
        return r.last_unloaded, (
            f"the kernel jumped to module address space that holds no code (Bad RIP) right after "
            f"{r.last_unloaded} was unloaded"
        )
    return None, None


def _evidence(r: Report) -> list[str]:
    out: list[str] = []
    for e in r.events:
        if e.line.raw not in out:
            out.append(e.line.raw)
    for ln in r.lines:
        t = ln.text
        if t.startswith(("RIP", "IP:", "pc :", "CPU: ", "Pid: ", "Workqueue:")) and ln.raw not in out:
            out.append(ln.raw)
    if r.panic_line is not None and r.panic_line.raw not in out:
        out.append(r.panic_line.raw)
    return out[:12]


def _config_knob(r: Report) -> str | None:
    panic = r.panic or ""
    for rx, knob in F.CONFIG_PANICS:
        if rx.search(panic):
            return knob
    return None


def _confidence(r: Report, rule: Rule | None) -> tuple[str, list[str]]:
    reasons: list[str] = []
    score = 2
    if r.headless:
        score -= 1
        reasons.append("the oops header line was lost: the report starts at its RIP line")
    if r.kind == "other_panic" and r.panic and F.CONSEQUENCE_PANICS.match(r.panic) and len(r.events) == 1:
        score -= 2
        reasons.append("only the final panic line is in the log, not the report that caused it")
    if r.trace_cut or (r.cut_marker and not r.trace):
        score -= 1
        reasons.append("the call trace is cut short")
    elif not r.trace and r.kind not in ("vfs_no_root", "init_killed", "mce", "oom_kill", "sysrq_crash", "rcu_stall"):
        score -= 1
        reasons.append("no call trace in the report")
    if r.kind == "other":
        score -= 1
        reasons.append("the report is of no specific kind")
    if r.main_event().fmt.note == "crash-bt":
        score -= 1
        reasons.append("only the crash utility's backtrace is in the input, not the kernel log: the kind comes "
                       "from the exception frame the task died in")
    shape = r.main_event().line.shape
    if shape is not None:
        read = sum(1 for ln in r.lines if ln.shape == shape)
        reasons.append(f"the log's line prefix ({shape.strip()!r}) is not a shape we know; it was learned from "
                       "the lines that carry kernel message heads")
        if read <= 1:
            score = 0 if not r.trace else min(score, 1)
            reasons.append("only the message head's own line could be read through that prefix")
    if rule is None:
        reasons.append("no catalogue rule matched")
    elif rule.priority <= 10 and score == 2:
        score -= 1
        reasons.append("only a generic rule matched")
    level = "high" if score >= 2 else "medium" if score == 1 else "low"
    return level, reasons


def _text(d: dict[str, Any] | None, lang: str) -> Any:
    if not d:
        return None
    return d.get(lang) or d.get("en")


class _Fill(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _render(s: str, values: dict[str, str]) -> str:
    try:
        return s.format_map(_Fill(values))
    except (ValueError, IndexError):
        return s


def report_summary(r: Report) -> dict[str, Any]:
    title = _title(r)
    frames = _meaningful_frames(r)
    ts = r.first_line.timestamp
    return {
        "kind": r.kind,
        "title": title,
        "fingerprint": _fingerprint(r.kind, title, frames),
        "fatal": r.fatal,
        "consequence": _consequence(r),
        "line": r.first_line.number,
        "timestamp": ts,
        "panic_reason": r.panic,
    }


def _consequence(r: Report) -> dict[str, str] | None:
    """What the report led to when that is a different kind from its cause (an oops in init
    that then killed init), else None. Additive to the DESIGN contract."""
    e = r.consequence_event()
    if e is None:
        return None
    return {"kind": e.fmt.kind, "text": e.line.text.partition("Kernel panic - not syncing:")[2].strip() or e.line.text}


def build_result(reports: list[Report], builder: ReportBuilder, rules: tuple[Rule, ...], lang: str, windows: int,
                 deadline: float | None = None) -> dict[str, Any]:
    summaries = [report_summary(r) for r in reports]
    p = primary_report(reports)
    result: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "source": None, "lang": lang}
    if p is None:
        kr = parse_release(builder.boot_release)
        result.update(
            kind="none",
            title="no crash found",
            fingerprint=None,
            confidence="high",
            confidence_reasons=[],
            rule=None,
            fix_status=None,
            fix_detail=None,
            config_knob=None,
            consequence=None,
            kernel=kr.to_json() if kr else {"release": None, "stream": None, "version": None, "base": None},
            crash=None,
            modules={"in_trace": [], "out_of_tree": [], "linked_in": [], "last_unloaded": None, "suspect": None, "suspect_reason": None},
            taint=None,
            call_trace=[],
            evidence=[],
            reports=[],
            boot={"cmdline": builder.boot_cmdline, "crashkernel": _crashkernel(builder.boot_cmdline)},
            input={"lines": builder.lines_seen, "windows": windows, "reports_dropped": builder.dropped_reports},
        )
        return result
    idx = reports.index(p)
    summary = summaries[idx]
    build = None
    for ln in p.lines[:40]:
        if ln.text.startswith(("CPU: ", "Pid: ")):
            m = re.search(r"#\S+(?: SMP)?(?:.*Ubuntu)?", ln.text)
            build = m.group(0) if m else None
            break
    kr = parse_release(p.release, build)
    in_trace = _modules_in_trace(p)
    suspect, suspect_reason = _suspect(p, in_trace)
    rip = p.rip or {}
    functions = {fr.function for fr in p.trace if fr.function}
    if rip.get("function"):
        functions.add(rip["function"])
    facts = Facts(
        kind=p.kind,
        lines=tuple(ln.text for ln in p.lines),
        prelude=tuple(ln.text for ln in p.prelude),
        panic=p.panic or "",
        rip_function=rip.get("function"),
        functions=frozenset(functions),
        modules_in_trace=frozenset(in_trace),
        suspect_module=suspect,
        bad_rip=p.bad_rip,
        stream=kr.stream if kr else None,
    )
    rule = best_match(rules, facts, deadline)
    implied = rule.data.get("implies_kind") if rule else None
    if implied and p.kind == "other" and p.main_event().fmt.title.startswith("Oops"):
        # The log lost its fault line; the known issue it matches says which fault it is.
        p.kind = implied
        summaries[idx] = summary = report_summary(p)
    knob = _config_knob(p) or (rule.data.get("config_knob") if rule else None)
    confidence, reasons = _confidence(p, rule)
    if implied and p.kind == implied and p.main_event().fmt.kind == "other":
        reasons.append(f"the fault line is missing: the kind ({implied}) comes from the known issue {rule.id}")
    fs = fix_status(kr, rule.data.get("fixed_in") if rule else None) if rule else None
    values = {
        "module": suspect or "",
        "knob": knob or "",
        "release": p.release or "",
        "fixed": fs.fixed_version if fs and fs.fixed_version else "",
        "function": rip.get("function") or "",
        "comm": p.comm or "",
    }
    rule_json = None
    if rule:
        remedy_steps = [_render(s, values) for s in _text(rule.data["remedy"], lang)]
        rule_json = {
            "id": rule.id,
            "category": rule.category,
            "title": _render(_text(rule.data["title"], lang), values),
            "cause": _render(_text(rule.data["cause"], lang), values),
            "remedy": "\n".join(remedy_steps),
            "remedy_steps": remedy_steps,
            "fixed_in": rule.data.get("fixed_in"),
            "config_knob": rule.data.get("config_knob"),
            "check_commands": [_render(c, values) for c in rule.data.get("check_commands", [])],
            "fix_commands": [_render(c, values) for c in rule.data.get("fix_commands", [])],
            "references": rule.data.get("references", []),
        }
    if fs is not None and fs.status == "fixed":
        reasons.append("the running kernel already carries this rule's fix, so this rule is a less likely cause")
    result.update(
        kind=p.kind,
        title=summary["title"],
        fingerprint=summary["fingerprint"],
        confidence=confidence,
        confidence_reasons=reasons,
        rule=rule_json,
        fix_status=fs.status if fs else None,
        fix_detail=fs.detail if fs else None,
        config_knob=knob,
        consequence=summary["consequence"],
        kernel=kr.to_json() if kr else {"release": None, "stream": None, "version": None, "base": None},
        crash={
            "rip_function": rip.get("function"),
            "rip_symbol": rip.get("symbol"),
            "rip_module": rip.get("module"),
            "rip_address": rip.get("address"),
            "bad_rip": p.bad_rip,
            "comm": p.comm,
            "pid": p.pid,
            "cpu": p.cpu,
            "panic_reason": p.panic,
            "fatal": p.fatal,
            "kdump_loaded": p.kdump_loaded,
            "hardware": p.hardware,
            "timestamp": summary["timestamp"],
            "line": summary["line"],
        },
        modules={
            "in_trace": in_trace,
            "out_of_tree": [n for n, f in p.modules if set(f) & THIRD_PARTY_FLAGS]
            + [n for n in p.tainting if n not in dict(p.modules)],
            "linked_in": [{"name": n, "flags": f} for n, f in p.modules],
            "last_unloaded": p.last_unloaded,
            "suspect": suspect,
            "suspect_reason": suspect_reason,
        },
        taint=None if p.taint is None else {"flags": p.taint, "decoded": {c: TAINT_FLAGS.get(c, "unknown flag") for c in p.taint}},
        call_trace=[fr.to_json() for fr in p.trace[:64]],
        evidence=_evidence(p),
        reports=summaries,
        boot={"cmdline": p.boot_cmdline, "crashkernel": _crashkernel(p.boot_cmdline)},
        input={"lines": builder.lines_seen, "windows": windows, "reports_dropped": builder.dropped_reports},
    )
    return result


def _crashkernel(cmdline: str | None) -> str | None:
    if not cmdline:
        return None
    m = re.search(r"\bcrashkernel=(\S+)", cmdline)
    return m.group(1) if m else None
