"""The fleet view: every report in the store, summarised for people who run many instances.

``fleet/index.json`` holds one small row per report.json key. A report.json is written
once and never changes (``if_absent``), so its key is its identity: an update lists the
report keys, reads only those not yet in the index, drops rows whose object is gone, and
writes the index back. A timer run over 10,000 reports therefore reads a handful of
objects, not 10,000. ``fleet/index.html`` is rendered from the index alone, and
``daily_digest`` gives the notify stage the text of a day's digest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from ..cloud.store import NotFound, ObjectStore, StoreUnavailable
from .escape import md, plain
from .html_report import CATEGORY_LABELS, CSP, KIND_LABELS

FLEET_INDEX_VERSION = 1
INDEX_KEY = "fleet/index.json"
HTML_KEY = "fleet/index.html"
# Where report.json objects live (docs/PIPELINE.md): incidents and hand-dropped logs.
REPORT_PREFIXES = ("incidents/", "reports/inbox/")
CHART_DAYS = 30
TOP_FINGERPRINTS = 25
INSTANCES_SHOWN = 200
HISTORY_SHOWN = 20
EXPOSED_ROWS = 50  # instances listed per known issue in the readiness section

Link = Callable[[str], str]

# --- the index -----------------------------------------------------------------------------


def is_report_key(key: str) -> bool:
    """incidents/<region>/<instance>/<incident>/report.json or reports/inbox/<name>/report.json."""
    if not key.endswith("/report.json"):
        return False
    parts = key.split("/")
    if key.startswith("incidents/"):
        return len(parts) == 5
    return key.startswith("reports/inbox/") and len(parts) >= 4


def _iso(t: dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _upgrade_to(d: dict[str, Any]) -> str | None:
    """The kernel to move to: the target named in fix_detail ("... (el7 3.10.0-1160.88.1.el7)"),
    else the rule's fixed versions for the running kernel's stream."""
    m = re.search(r"\((\S+) (\S+)\)$", str(d.get("fix_detail") or ""))
    if m:
        return m.group(2)
    stream = (d.get("kernel") or {}).get("stream")
    fixed = ((d.get("rule") or {}).get("fixed_in") or {}).get(stream or "")
    return ", ".join(str(v) for v in fixed) if fixed else None


def index_row(report: dict[str, Any], indexed_at: dt.datetime) -> dict[str, Any]:
    """The few fields of a report the fleet page and the digest need (empty ones left
    out: at 10,000 reports every byte of a row counts ten thousand times)."""
    inc = report.get("incident") or {}
    d = report.get("diagnosis") or {}
    rule = d.get("rule") or {}
    col = report.get("collection") or {}
    when, source = inc.get("event_time"), "event"
    if not when:
        mtime = str((col.get("log") or {}).get("mtime") or "")
        if mtime.isdigit():
            when, source = _iso(dt.datetime.fromtimestamp(int(mtime), dt.timezone.utc)), "log"
        else:
            when, source = _iso(indexed_at), "indexed"
    try:  # one clock for every row: UTC, as ECS sends it
        when = _iso(dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")))
    except ValueError:
        when = str(when)
    row = {
        "time": when,
        "time_source": None if source == "event" else source,
        "instance": inc.get("instance_id"),
        "name": inc.get("instance_name"),
        "region": inc.get("region"),
        "account": inc.get("account"),
        "host_failure": bool(inc.get("host_failure")),
        "kind": d.get("kind") or "none",
        "title": plain(d.get("title") or "", 160),
        "fingerprint": d.get("fingerprint"),
        "confidence": d.get("confidence"),
        "rule": rule.get("id"),
        "rule_title": plain(rule["title"], 120) if rule.get("title") else None,
        "category": rule.get("category"),
        "fix_status": d.get("fix_status"),
        "upgrade_to": _upgrade_to(d) if d.get("fix_status") else None,
        "kernel": (d.get("kernel") or {}).get("release"),
        "suspect": (d.get("modules") or {}).get("suspect"),
        "method": col.get("method"),
        "complete": bool(col.get("complete")),
    }
    return {k: v for k, v in row.items() if v not in (None, False, "")}


def empty_index() -> dict[str, Any]:
    return {"version": FLEET_INDEX_VERSION, "updated": None, "reports": {}, "stats": {}}


def load_fleet_index(store: ObjectStore) -> dict[str, Any]:
    """The stored index, or an empty one (missing, unreadable or of another version)."""
    try:
        index = json.loads(store.get(INDEX_KEY))
    except NotFound:
        return empty_index()
    except ValueError:
        return empty_index()
    if not isinstance(index, dict) or index.get("version") != FLEET_INDEX_VERSION or not isinstance(index.get("reports"), dict):
        return empty_index()
    return index


def update_fleet_index(store: ObjectStore, now: dt.datetime | None = None) -> dict[str, Any]:
    """Bring fleet/index.json up to date, reading only report.json objects it lacks.

    A report that cannot be read for a transient reason is left for the next run; one
    that is not valid JSON gets a row with ``error`` so it is not read again. Rows of
    objects that no longer exist (lifecycle expiry) are dropped.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    index = load_fleet_index(store)
    rows: dict[str, Any] = index["reports"]
    listed: set[str] = set()
    for prefix in REPORT_PREFIXES:
        listed.update(k for k in store.list(prefix) if is_report_key(k))
    stats = {"listed": len(listed), "read": 0, "dropped": 0, "deferred": 0, "errors": 0}
    for key in [k for k in rows if k not in listed]:
        del rows[key]
        stats["dropped"] += 1
    for key in sorted(listed - rows.keys()):
        try:
            data = store.get(key)
        except NotFound:
            continue  # deleted between the listing and now
        except StoreUnavailable:
            stats["deferred"] += 1
            continue
        stats["read"] += 1
        try:
            report = json.loads(data)
            if not isinstance(report, dict):
                raise ValueError("not an object")
            rows[key] = index_row(report, now)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            rows[key] = {"error": plain(f"unreadable report.json: {exc}", 200), "time": _iso(now)}
            stats["errors"] += 1
    index["stats"] = stats
    if stats["read"] or stats["dropped"] or index.get("updated") is None:
        index["updated"] = _iso(now)
        store.put(INDEX_KEY, json.dumps(index, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                  content_type="application/json")
    return index


# The pipeline's index of unfinished incidents (crashdiag.pipeline.stages.OPEN): one small
# marker each, so listing it costs what is open, never what the bucket holds.
OPEN_PREFIX = "open/"


def waiting_incidents(store: ObjectStore) -> list[dict[str, Any]]:
    """Incidents whose collect waits for the guest (a kdump capture under way), newest
    first: what their last check saw, from each one's waiting.json."""
    out = []
    for key in store.list(OPEN_PREFIX):
        try:
            marker = json.loads(store.get(key))
            if not str(marker.get("why", "")).startswith("waiting for the guest"):
                continue
            prefix = str(marker.get("prefix") or "")
            w = json.loads(store.get(f"{prefix}waiting.json"))
        except (NotFound, StoreUnavailable, ValueError, AttributeError):
            continue
        if not isinstance(w, dict):
            continue
        out.append({"instance": w.get("instance_id"), "region": w.get("region"), "reason": w.get("reason"),
                    "memory_gib": w.get("memory_gib"), "checks": w.get("checks"),
                    "since": _iso_epoch(w.get("first_seen")), "until": _iso_epoch(w.get("deadline")),
                    "checked": _iso_epoch(w.get("checked_at"))})
    return sorted(out, key=lambda r: str(r["since"]), reverse=True)


def _iso_epoch(t: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def rebuild_fleet(store: ObjectStore, lang: str = "en", link: Link | None = None,
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """The timer's job: update the index, render fleet/index.html, return a summary."""
    from .readiness import load_readiness

    index = update_fleet_index(store, now)
    index["waiting"] = waiting_incidents(store)  # live, not kept in the index: it changes every check
    readiness = load_readiness(store, (now or dt.datetime.now(dt.timezone.utc)).date().isoformat())
    page = render_fleet_html(index, lang, link=link, readiness=readiness)
    store.put(HTML_KEY, page.encode("utf-8"), content_type="text/html; charset=utf-8")
    return {"index": INDEX_KEY, "page": HTML_KEY, "reports": len(index["reports"]), **index["stats"]}


def report_page_key(report_key: str) -> str:
    """The incident page beside a report.json."""
    return report_key[: -len("report.json")] + "report.html"


def relative_link(page_key: str) -> str:
    """A link from fleet/index.html to another object of the same store."""
    return "../" + page_key


# --- aggregation ---------------------------------------------------------------------------


def fleet_rows(index: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(report key, row) for every readable report, each row with its UTC ``day``."""
    return [(k, r | {"day": str(r["time"])[:10]}) for k, r in (index.get("reports") or {}).items()
            if isinstance(r, dict) and not r.get("error") and r.get("time")]


def fingerprint_groups(rows: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Crashes grouped by fingerprint: counts, instances, kernels, first and last seen.

    What a group says about the fix (``fix_status``, ``upgrade_to``) is aggregated over its
    instances, each judged by its own newest crash in the group (its own kernel): a log is
    written by the guest, so one forged report speaks for its own instance and cannot
    rewrite what the group says about the others."""
    groups: dict[str, dict[str, Any]] = {}
    own: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # group -> instance (or key) -> its newest row
    for key, r in rows:
        fp = r.get("fingerprint") or f"{r.get('kind')}:{r.get('title')}"
        g = groups.get(fp)
        if g is None:
            g = groups[fp] = {"fingerprint": r.get("fingerprint"), "kind": r.get("kind"), "title": r.get("title"),
                              "rule": r.get("rule"), "count": 0, "instances": set(), "kernels": Counter(),
                              "first": r["time"], "last": r["time"], "latest_key": key, "upgrade_to": None,
                              "fix_status": None}
        g["count"] += 1
        if r.get("instance"):
            g["instances"].add(r["instance"])
        if r.get("kernel"):
            g["kernels"][r["kernel"]] += 1
        g["first"] = min(g["first"], r["time"])
        if r["time"] >= g["last"]:
            g["last"], g["latest_key"] = r["time"], key
        who = r.get("instance") or key
        if who not in own[fp] or r["time"] >= own[fp][who]["time"]:
            own[fp][who] = r
    for fp, g in groups.items():
        g["fix_status"], g["upgrade_to"], g["fix_by_status"] = _group_fix(list(own[fp].values()))
    out = sorted(groups.values(), key=lambda g: g["last"], reverse=True)
    out.sort(key=lambda g: g["count"], reverse=True)  # stable: equal counts stay newest first
    return out


def _group_fix(latest: list[dict[str, Any]]) -> tuple[str | None, str | None, dict[str, int]]:
    """(fix status, upgrade targets, instances per status) from each instance's own newest
    row. Affected when any instance is; the targets are those of the affected instances,
    each with its count when they differ or when not every judged instance is affected."""
    by_status = Counter(r["fix_status"] for r in latest if r.get("fix_status"))
    if not by_status:
        return None, None, {}
    if not by_status.get("affected"):
        return by_status.most_common(1)[0][0], None, dict(by_status)
    targets = Counter(r["upgrade_to"] for r in latest if r.get("fix_status") == "affected" and r.get("upgrade_to"))
    if not targets:
        return "affected", None, dict(by_status)
    if len(targets) == 1 and sum(by_status.values()) == by_status["affected"]:
        return "affected", next(iter(targets)), dict(by_status)
    judged = sum(by_status.values())
    return "affected", ", ".join(f"{t} ({n}/{judged})" for t, n in sorted(targets.items(), key=lambda tn: (-tn[1], tn[0]))), dict(by_status)


def affected_issues(rows: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per known issue with a fixed kernel: the instances still running a kernel the
    catalogue says is affected. An instance counts when its crash with that issue was
    on an affected kernel and its latest report (any issue) shows the same kernel, i.e.
    it has not been seen on another kernel since."""
    latest: dict[str, dict[str, Any]] = {}
    for _, r in rows:
        inst = r.get("instance")
        if inst and (inst not in latest or r["time"] >= latest[inst]["time"]):
            latest[inst] = r
    issues: dict[str, dict[str, Any]] = {}
    for _, r in rows:
        if r.get("fix_status") != "affected" or not r.get("rule"):
            continue
        inst = r.get("instance")
        if not inst or latest[inst].get("kernel") != r.get("kernel"):
            continue
        g = issues.setdefault(r["rule"], {"rule": r["rule"], "title": r.get("rule_title"), "category": r.get("category"),
                                          "instances": set(), "kernels": Counter(), "upgrade_to": Counter(), "crashes": 0})
        g["crashes"] += 1
        g["instances"].add(inst)
        if r.get("kernel"):
            g["kernels"][r["kernel"]] += 1
        if r.get("upgrade_to"):
            g["upgrade_to"][r["upgrade_to"]] += 1
    return sorted(issues.values(), key=lambda g: (-len(g["instances"]), g["rule"]))


def instance_histories(rows: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per instance, its reports newest first; instances by their latest crash."""
    by: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, r in rows:
        by[r.get("instance") or "-"].append((key, r))
    out = []
    for inst, items in by.items():
        items.sort(key=lambda kr: kr[1]["time"], reverse=True)
        last = items[0][1]
        out.append({"instance": inst, "region": last.get("region"), "account": last.get("account"), "name": last.get("name"), "count": len(items),
                    "last": last["time"], "first": items[-1][1]["time"], "kernel": last.get("kernel"), "items": items})
    out.sort(key=lambda g: g["last"], reverse=True)
    return out


def per_day(rows: list[tuple[str, dict[str, Any]]], days: list[str]) -> dict[str, Counter]:
    wanted = set(days)
    counts: dict[str, Counter] = {d: Counter() for d in days}
    for _, r in rows:
        if r.get("day") in wanted:
            counts[r["day"]][r.get("kind") or "none"] += 1
    return counts


# --- the page ------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "page": "Crash overview", "eyebrow": "ecs-crashdiag fleet", "updated": "updated", "reports": "Reports",
        "instances": "Instances", "fingerprints": "Distinct crashes", "affected_n": "Instances on an affected kernel",
        "per_day": "Crashes per day by kind", "last_days": "last {n} days to {day}", "no_reports": "No report in the store yet.",
        "waiting": "Waiting for the guest: kdump is saving a dump", "waiting_since": "Crashed", "waiting_status": "Console",
        "waiting_until": "Waits until", "memory": "Memory",
        "issues": "Known issues with a fix: instances still on an affected kernel", "issue": "Known issue",
        "category": "Category", "n_inst": "Instances", "crashes": "Crashes", "kernels": "Kernels", "upgrade": "Upgrade to",
        "no_issues": "No instance is known to run a kernel that a catalogued fix postdates.",
        "top": "Top crashes by fingerprint", "fingerprint": "Fingerprint", "kind": "Kind", "title": "Title",
        "first": "First seen", "last": "Last seen", "history": "Instances and their crash history",
        "instance": "Instance", "region": "Region", "kernel": "Kernel", "latest": "Latest crash", "time": "Time",
        "report": "report", "more_instances": "{n} more instances not shown.", "more_history": "{n} older reports not shown.",
        "other_kinds": "other kinds", "crash_word": "crashes", "rule": "Known issue", "fix": "Fix",
        "host": "host failure", "errors": "{n} report objects could not be read.", "by_hand": "logs uploaded to inbox/",
        "account": "Account", "filter_region": "Region", "filter_account": "Account", "filter_all": "all",
        "readiness": "Ready for the next crash", "audited_on": "audit of {day}",
        "ready_of": "{ready} of {audited} audited instances would leave a usable crash log (kdump armed, memory reserved, room for the dump)",
        "problems": "Most common problems", "check": "Check", "status": "Status", "what": "What it means", "fix_cmd": "Fix",
        "other_fixes": "+{n} other fixes by distribution", "exposed": "Exposed to known issues: instances on a kernel a fix postdates",
        "not_ready": "Instances not ready", "failing": "Failing checks", "no_problems": "Every audited instance passed every check.",
        "no_exposed": "No audited instance runs a kernel that a catalogued fix postdates.",
        "more_exposed": "{n} more instances not shown.", "all_ready": "Every audited instance is ready.",
    },
    "zh": {
        "page": "宕机总览", "eyebrow": "ecs-crashdiag 实例群", "updated": "更新于", "reports": "报告数",
        "instances": "实例数", "fingerprints": "不同宕机", "affected_n": "运行受影响内核的实例",
        "per_day": "每日宕机（按类型）", "last_days": "截至 {day} 的最近 {n} 天", "no_reports": "存储中还没有报告。",
        "waiting": "等待实例恢复：kdump 正在保存内存转储", "waiting_since": "宕机时间", "waiting_status": "串口输出",
        "waiting_until": "最长等待至", "memory": "内存",
        "issues": "已有修复的已知问题：仍运行受影响内核的实例", "issue": "已知问题",
        "category": "类别", "n_inst": "实例数", "crashes": "宕机次数", "kernels": "内核", "upgrade": "升级到",
        "no_issues": "没有实例运行在已知修复版本之前的内核上。",
        "top": "按指纹统计的主要宕机", "fingerprint": "指纹", "kind": "类型", "title": "标题",
        "first": "首次出现", "last": "最近出现", "history": "各实例的宕机历史",
        "instance": "实例", "region": "地域", "kernel": "内核", "latest": "最近一次宕机", "time": "时间",
        "report": "报告", "more_instances": "另有 {n} 个实例未显示。", "more_history": "另有 {n} 份较早的报告未显示。",
        "other_kinds": "其他类型", "crash_word": "次宕机", "rule": "已知问题", "fix": "修复",
        "host": "物理机故障", "errors": "{n} 个报告对象无法读取。", "by_hand": "上传到 inbox/ 的日志",
        "account": "账号", "filter_region": "地域", "filter_account": "账号", "filter_all": "全部",
        "readiness": "为下次宕机做好准备", "audited_on": "{day} 的巡检",
        "ready_of": "{audited} 台巡检过的实例中有 {ready} 台宕机时能留下可用的日志（kdump 已就绪、预留了内存、有空间保存转储）",
        "problems": "最常见的问题", "check": "检查项", "status": "状态", "what": "含义", "fix_cmd": "修复命令",
        "other_fixes": "另有 {n} 种按发行版不同的修复命令", "exposed": "受已知问题影响：内核早于修复版本的实例",
        "not_ready": "未就绪的实例", "failing": "未通过的检查", "no_problems": "所有巡检过的实例都通过了全部检查。",
        "no_exposed": "没有巡检过的实例运行在已知修复版本之前的内核上。",
        "more_exposed": "另有 {n} 个实例未显示。", "all_ready": "所有巡检过的实例都已就绪。",
    },
}

PALETTE = 8  # kinds with their own colour; the rest share one


def _days(last_day: str, n: int) -> list[str]:
    end = dt.date.fromisoformat(last_day)
    return [(end - dt.timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


def _nice_max(v: int) -> int:
    """The top of the y axis: four whole-numbered ticks (1, 2, 5 x 10^n each) covering v."""
    tick = 1
    while tick * 4 < v:
        for m in (2, 2.5, 2):  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
            tick = int(tick * m)
            if tick * 4 >= v:
                break
    return tick * 4


def chart_layout(counts: dict[str, Counter]) -> dict[str, Any]:
    """Stacked bars per day, one colour per kind (the most frequent kinds in the window),
    laid out for the <svg> of fleet.html.j2: coordinates as the page writes them."""
    days = list(counts)
    totals: Counter = Counter()
    for c in counts.values():
        totals.update(c)
    kinds = [k for k, _ in totals.most_common(PALETTE)]
    cls = {k: f"k{i}" for i, k in enumerate(kinds)}
    width, height, left, right, top, bottom = 1120, 260, 40, 10, 10, 36
    pw, ph = width - left - right, height - top - bottom
    peak = _nice_max(max((sum(c.values()) for c in counts.values()), default=0))
    slot = pw / max(len(days), 1)
    bar = max(2.0, slot * 0.72)
    ticks = [{"y": f"{top + ph - ph * i / 4:.1f}", "label_y": f"{top + ph - ph * i / 4 + 4:.1f}", "value": f"{peak * i / 4:.0f}"}
             for i in range(5)]
    every = max(1, round(len(days) / 10))
    laid_out = []
    for i, day in enumerate(days):
        x = left + slot * i + (slot - bar) / 2
        y = top + ph
        bars = []
        for k in [k for k in kinds if counts[day].get(k)] + sorted(k for k in counts[day] if k not in cls):
            n = counts[day][k]
            hgt = ph * n / peak
            y -= hgt
            bars.append({"kind": k, "n": n, "cls": cls.get(k, "kx"), "x": f"{x:.1f}", "y": f"{y:.1f}", "width": f"{bar:.1f}",
                         "height": f"{hgt:.1f}"})
        label_x = f"{x + bar / 2:.1f}" if i % every == 0 or i == len(days) - 1 else None
        laid_out.append({"day": day, "bars": bars, "label_x": label_x})
    return {"width": width, "height": height, "left": left, "x2": width - right, "bottom": bottom, "axis_y": top + ph,
            "ticks": ticks, "days": laid_out, "last_day": days[-1] if days else "",
            "legend": [(k, cls[k], totals[k]) for k in kinds], "others": sum(n for k, n in totals.items() if k not in cls)}


def _filters(rows: list[tuple[str, dict[str, Any]]], readiness: dict[str, Any] | None) -> dict[str, Any]:
    """Regions and accounts on the page, each with a class the rows carry (r0, a1, ...):
    the page filters by them with CSS :target rules, no script, and no value from a
    report ever reaches the stylesheet (only these indices do)."""
    regions = {r.get("region") for _, r in rows} | set((readiness or {}).get("regions") or [])
    accounts = {r.get("account") for _, r in rows} | set((readiness or {}).get("accounts") or [])
    regions.discard(None), regions.discard("")
    accounts.discard(None), accounts.discard("")
    rid = {v: f"r{i}" for i, v in enumerate(sorted(regions))}
    aid = {v: f"a{i}" for i, v in enumerate(sorted(accounts))}
    return {"regions": [{"id": i, "label": v} for v, i in rid.items()], "accounts": [{"id": i, "label": v} for v, i in aid.items()],
            "cls": lambda region, account: " ".join(["fr", rid.get(region or "", "r-"), aid.get(account or "", "a-")])}


def render_fleet_html(index: dict[str, Any], lang: str = "en", link: Link | None = None,
                      days: int = CHART_DAYS, readiness: dict[str, Any] | None = None) -> str:
    """fleet/index.html from the index (and ``readiness``, the merged audit view of
    ``readiness.load_readiness``) alone: no report object is read.

    ``link`` maps an object key (an incident's report.html) to the URL to put in the
    page; by default a path relative to fleet/index.html in the same store. The page is
    the template ``templates/fleet.html.j2``."""
    from .pages import facts, render

    lang = lang if lang in LABELS else "en"
    link = link or relative_link
    rows = fleet_rows(index)
    errors = sum(1 for r in (index.get("reports") or {}).values() if isinstance(r, dict) and r.get("error"))
    groups = fingerprint_groups(rows)
    issues = affected_issues(rows)
    histories = instance_histories(rows)
    affected_instances = set().union(*(g["instances"] for g in issues)) if issues else set()
    chart = None
    if rows:
        last_day = max(r["day"] for _, r in rows)
        chart = chart_layout(per_day(rows, _days(last_day, days)))
    return render(
        "fleet.html.j2", lang=lang, csp=CSP, L=LABELS[lang],
        KINDS=KIND_LABELS.get(lang, KIND_LABELS["en"]), CATEGORIES=CATEGORY_LABELS.get(lang, CATEGORY_LABELS["en"]),
        report_url=lambda key: link(report_page_key(key)),
        updated=index.get("updated") or "", errors=errors, chart=chart,
        waiting=[facts(w) for w in index.get("waiting") or []],
        counts={"reports": len(rows), "instances": len({r.get("instance") for _, r in rows if r.get("instance")}),
                "fingerprints": len(groups), "affected": len(affected_instances)},
        issues=[facts({"rule": g["rule"], "title": g.get("title"), "category": g.get("category"), "instances": len(g["instances"]),
                       "kernels": _top3(g["kernels"]), "upgrade_to": ", ".join(k for k, _ in g["upgrade_to"].most_common())})
                for g in issues],
        groups=[facts({"count": g["count"], "kind": g.get("kind"), "title": g.get("title"), "latest_key": g["latest_key"],
                       "fingerprint": g.get("fingerprint"), "rule": g.get("rule"), "instances": len(g["instances"]),
                       "kernels": _top3(g["kernels"]), "first": g["first"], "last": g["last"],
                       "upgrade": g["upgrade_to"] if g.get("fix_status") == "affected" and g.get("upgrade_to") else None})
                for g in groups[:TOP_FINGERPRINTS]],
        groups_total=len(groups),
        histories=[facts({"instance": g["instance"], "name": g.get("name"), "region": g.get("region"), "account": g.get("account"),
                          "count": g["count"],
                          "kernel": g.get("kernel"), "last": g["last"], "latest_key": g["items"][0][0],
                          "latest_title": g["items"][0][1].get("title"), "shown": g["items"][:HISTORY_SHOWN],
                          "older": len(g["items"]) - HISTORY_SHOWN})
                   for g in histories[:INSTANCES_SHOWN]],
        histories_total=len(histories), histories_more=len(histories) - INSTANCES_SHOWN,
        filters=_filters(rows, readiness), readiness=_readiness_facts(readiness, facts),
    )


def _readiness_facts(view: dict[str, Any] | None, facts: Callable[[Any], Any]) -> Any:
    """The readiness section's rows: bounded, as the page shows them."""
    if not view:
        return None
    not_ready = [r for r in view["instances"] if not r.get("ready")]
    return facts({
        "day": view["day"], "audited": view["audited"], "ready": view["ready"], "exposed_instances": view["exposed_instances"],
        "problems": view["problems"][:20],
        "exposed": [g | {"more": g["count"] - len(g["instances"][:EXPOSED_ROWS]), "instances": g["instances"][:EXPOSED_ROWS]}
                    for g in view["exposed"][:20]],
        "not_ready": not_ready[:INSTANCES_SHOWN], "not_ready_total": len(not_ready),
    })


def _top3(c: Counter) -> str:
    return ", ".join(k for k, _ in c.most_common(3)) + (f" (+{len(c) - 3})" if len(c) > 3 else "")


# --- the daily digest ----------------------------------------------------------------------

DIGEST_LABELS = {
    "en": {"title": "ECS crash digest for {day}", "summary": "{crashes} {crashes_w} on {instances} {instances_w}, {new} new crash {new_w}.",
           "none": "No instance crashed on {day}.", "new": "New", "seen": "Seen before", "on": "{n} {n_w} on {m} {m_w}",
           "rule": "known issue", "upgrade": "affected kernel: upgrade to", "report": "latest report", "first": "first seen"},
    "zh": {"title": "{day} ECS 宕机日报", "summary": "{instances} 个实例共宕机 {crashes} 次，其中 {new} 种为新出现的宕机。",
           "none": "{day} 没有实例宕机。", "new": "新出现", "seen": "此前出现过", "on": "{m} 个实例共 {n} 次",
           "rule": "已知问题", "upgrade": "内核受影响，请升级到", "report": "最近的报告", "first": "首次出现"},
}


def _words(lang: str, **counts: int) -> dict[str, object]:
    """Counts for a digest sentence, each with its English noun in the right number."""
    nouns = {"crashes": ("crash", "crashes"), "instances": ("instance", "instances"), "new": ("signature", "signatures"),
             "n": ("crash", "crashes"), "m": ("instance", "instances")}
    out: dict[str, object] = dict(counts)
    for k, n in counts.items():
        out[f"{k}_w"] = "" if lang == "zh" else nouns[k][n != 1]
    return out


def _md_url(url: str) -> str | None:
    """A URL safe inside Markdown link parentheses, or None for anything but http(s)/file."""
    if not re.match(r"^(https?|file)://", url):
        return None
    return re.sub(r"[\s()<>\[\]`\\]", lambda m: f"%{ord(m.group(0)):02X}", url)


def daily_digest(index: dict[str, Any], day: str | dt.date, lang: str = "en", link: Link | None = None) -> dict[str, Any]:
    """The digest of one day's crashes (UTC), grouped by fingerprint, new fingerprints
    (never seen before that day) first, then by count. ``markdown`` is escaped with
    escape.md and ready to send; ``link`` (key -> URL) adds each group's latest report."""
    day = day.isoformat() if isinstance(day, dt.date) else str(day)
    lang = lang if lang in DIGEST_LABELS else "en"
    D = DIGEST_LABELS[lang]
    rows = fleet_rows(index)
    first_seen: dict[str, str] = {}
    for _, r in rows:
        fp = r.get("fingerprint") or f"{r.get('kind')}:{r.get('title')}"
        first_seen[fp] = min(first_seen.get(fp, r["day"]), r["day"])
    today = [(k, r) for k, r in rows if r.get("day") == day]
    groups = fingerprint_groups(today)
    for g in groups:
        fp = g["fingerprint"] or f"{g['kind']}:{g['title']}"
        g["new"] = first_seen.get(fp) == day
        g["first_seen"] = first_seen.get(fp)
    groups.sort(key=lambda g: (not g["new"], -g["count"], g["title"] or ""))
    instances = {r.get("instance") for _, r in today if r.get("instance")}
    new = sum(1 for g in groups if g["new"])
    title = D["title"].format(day=day)
    out = [f"## {md(title)}", ""]
    if not groups:
        out.append(md(D["none"].format(day=day)))
    else:
        out += [md(D["summary"].format(**_words(lang, crashes=len(today), instances=len(instances), new=new))), ""]
        for heading, part in ((D["new"], [g for g in groups if g["new"]]), (D["seen"], [g for g in groups if not g["new"]])):
            if not part:
                continue
            out += [f"### {md(heading)}", ""]
            for g in part:
                insts = sorted(g["instances"])
                line = f"- **{md(g['title'], 200)}** ({md(g['kind'])}): {md(D['on'].format(**_words(lang, n=g['count'], m=len(insts))))}"
                if insts:
                    line += ": " + ", ".join(md(i, 60) for i in insts[:5]) + (f" \\+{len(insts) - 5}" if len(insts) > 5 else "")
                if g.get("rule"):
                    line += f" · {md(D['rule'])} {md(g['rule'])}"
                if g.get("fix_status") == "affected" and g.get("upgrade_to"):
                    line += f" · **{md(D['upgrade'])} {md(g['upgrade_to'])}**"
                if not g["new"] and g.get("first_seen"):
                    line += f" · {md(D['first'])} {md(g['first_seen'])}"
                url = _md_url(link(report_page_key(g["latest_key"]))) if link else None
                if url:
                    line += f" · [{md(D['report'])}]({url})"
                out.append(line)
            out.append("")
    digest_groups = [{"fingerprint": g["fingerprint"], "kind": g["kind"], "title": g["title"], "count": g["count"],
                      "instances": sorted(g["instances"]), "new": g["new"], "first_seen": g["first_seen"], "rule": g["rule"],
                      "fix_status": g["fix_status"], "upgrade_to": g["upgrade_to"], "latest_key": g["latest_key"]}
                     for g in groups]
    return {"day": day, "lang": lang, "title": plain(title, 200), "crashes": len(today), "instances": len(instances),
            "new_fingerprints": new, "groups": digest_groups, "markdown": "\n".join(out).rstrip("\n") + "\n"}
