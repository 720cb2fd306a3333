"""``crashdiag``: classify kernel crash logs and browse the known-issue catalogue.

    crashdiag classify PATH... [--json] [--lang zh|en]     ('-' reads stdin)
    crashdiag rules [show ID] [--check] [--cases DIR]
    crashdiag replay EVENT [--json] [--store DIR] [--instances DIR]
    crashdiag report PATH [--html OUT] [--json] [--lang zh|en]  (the incident page for any log)
    crashdiag fleet --store DIR --out DIR [--lang zh|en]        (the fleet page of a local store)
    crashdiag audit --instances DIR [--json] [--tag KEY=VALUE] [--store DIR]  (fleet readiness)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_INPUT = 2  # unreadable, empty, binary input
EXIT_RULES = 3  # the catalogue is broken or a rule check failed
EXIT_REFUSED = 4  # the object store (OSS) refused a request: credentials, signature or permissions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crashdiag", description="Diagnose Linux kernel crash logs.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="classify one or more kernel logs")
    c.add_argument("paths", nargs="+", metavar="PATH", help="log file (plain or gzip); '-' reads stdin")
    c.add_argument("--json", action="store_true", help="print JSON (one object per line for several paths)")
    c.add_argument("--lang", choices=("en", "zh"), default=None, help="language of cause and remedy")
    c.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="stop classifying a log after this long and report what was found (confidence low)")
    r = sub.add_parser("rules", help="list, show or check the known-issue rules")
    r.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    r.add_argument("rule_id", nargs="?")
    r.add_argument("--check", action="store_true", help="validate every rule against its fixtures")
    r.add_argument("--cases", default="tests/cases", help="fixture directory for --check")
    r.add_argument("--rules", default=None, metavar="DIR", help="rule directory (default: the packaged catalogue)")
    r.add_argument("--lang", choices=("en", "zh"), default=None)
    r.add_argument("--json", action="store_true")
    rp = sub.add_parser("replay", help="run the pipeline in-process on a sample event")
    rp.add_argument("event", metavar="EVENT", help="event JSON file (ECS event, batch, or OSS object-created)")
    rp.add_argument("--json", action="store_true", help="print a JSON summary")
    rp.add_argument("--store", default=None, help="local object store directory (default out/store)")
    rp.add_argument("--instances", default=None, help="simulated instances directory (default events/instances)")
    rp.add_argument("--lang", choices=("en", "zh"), default=None)
    rep = sub.add_parser("report", help="diagnose one log into a report: Markdown, JSON or a self-contained HTML page")
    rep.add_argument("path", metavar="PATH", help="log file (plain or gzip); '-' reads stdin")
    rep.add_argument("--html", metavar="OUT", default=None, help="write the HTML page to OUT ('-' for stdout)")
    rep.add_argument("--json", action="store_true", help="print report.json instead of Markdown")
    rep.add_argument("--lang", choices=("en", "zh"), default=None)
    fl = sub.add_parser("fleet", help="update the fleet index of a local store and write its HTML page")
    fl.add_argument("--store", required=True, help="local object store directory (as written by replay)")
    fl.add_argument("--out", required=True, help="directory for index.html")
    fl.add_argument("--lang", choices=("en", "zh"), default=None)
    au = sub.add_parser("audit", help="audit simulated instances for crash readiness (kdump, crashkernel, panic knobs, exposure)")
    au.add_argument("--instances", required=True, help="simulated instances directory (as events/instances)")
    au.add_argument("--json", action="store_true", help="one JSON object per instance")
    au.add_argument("--tag", default=None, metavar="KEY=VALUE", help="only instances carrying this tag")
    au.add_argument("--account", default="", help="account id to record with each result")
    au.add_argument("--store", default=None, help="also write audit/<date>/<region>/<id>.json into this local store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "classify":
        return _classify(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "report":
        return _report(args)
    if args.command == "fleet":
        return _fleet(args)
    if args.command == "audit":
        return _audit(args)
    return _rules(args)


def _report(args: argparse.Namespace) -> int:
    from .classifier.logtext import LogInputError, open_bytes, open_log
    from .reports.report import build_report, render_markdown

    lang = _lang(args)
    data: bytes | None = None
    try:
        # A file is classified and paged as a stream (bounded memory on a 200 MB log);
        # stdin is read whole.
        fh = open_bytes(sys.stdin.buffer.read(), "-") if args.path == "-" else open_log(args.path)
        with fh:
            if args.path == "-":
                data = fh.read()
    except (LogInputError, OSError, EOFError) as exc:
        print(f"crashdiag: {exc}", file=sys.stderr)
        return EXIT_INPUT
    collect = {"method": "local", "complete": True, "log": {"path": args.path}}
    report = build_report(data if data is not None else b"", collect, lang, source=args.path,
                          path=None if data is not None else args.path)
    if args.html:
        from .reports.html_report import render_html

        page = render_html(report, lang, data if data is not None else args.path)
        if args.html == "-":
            sys.stdout.write(page)
        else:
            try:
                with open(args.html, "w", encoding="utf-8") as f:
                    f.write(page)
            except OSError as exc:
                print(f"crashdiag: {args.html}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_INPUT
            print(args.html)
    elif args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        sys.stdout.write(render_markdown(report, lang))
    return EXIT_OK


def _fleet(args: argparse.Namespace) -> int:
    import os

    from .cloud.store import LocalStore
    from .reports.fleet import render_fleet_html, update_fleet_index

    lang = _lang(args)
    if not os.path.isdir(args.store):
        print(f"crashdiag: {args.store}: no such store directory", file=sys.stderr)
        return EXIT_INPUT
    store = LocalStore(args.store)
    from .reports.readiness import load_readiness

    index = update_fleet_index(store)
    page = render_fleet_html(index, lang, link=lambda key: store.url(key, 0), readiness=load_readiness(store))
    try:
        os.makedirs(args.out, exist_ok=True)
        out = os.path.join(args.out, "index.html")
        with open(out, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as exc:
        print(f"crashdiag: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT
    stats = index.get("stats") or {}
    print(f"{out}: {len(index['reports'])} reports ({stats.get('read', 0)} new)")
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    import datetime as dt
    import os

    from .pipeline.audit import audit_local, store_results
    from .reports.readiness import render_table

    if not os.path.isdir(args.instances):
        print(f"crashdiag: {args.instances}: no such instances directory", file=sys.stderr)
        return EXIT_INPUT
    tag = None
    if args.tag is not None:
        key, sep, value = args.tag.partition("=")
        if not sep or not key:
            print("crashdiag: --tag takes KEY=VALUE", file=sys.stderr)
            return EXIT_INPUT
        tag = (key, value)
    now = dt.datetime.now(dt.timezone.utc)
    results = audit_local(args.instances, tag=tag, account=args.account, now=now)
    if args.store:
        from .cloud.store import LocalStore

        store_results(LocalStore(args.store), results, now.strftime("%Y-%m-%d"))
    if args.json:
        for r in results:
            sys.stdout.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        print(render_table(results))
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    import logging

    from .replay import default_settings, render_replay, replay

    # The summary printed below already says what was skipped or rejected.
    logging.getLogger("crashdiag").setLevel(logging.ERROR)

    try:
        settings = default_settings(args.store, args.instances, args.lang)
        with open(args.event, "rb") as f:
            payload = f.read()
    except (OSError, ValueError) as exc:
        print(f"crashdiag: {exc}", file=sys.stderr)
        return EXIT_INPUT
    from .cloud.store import StoreRefused

    try:
        result = replay(payload, settings)
    except StoreRefused as exc:  # OSS said no (403 AccessDenied, SignatureDoesNotMatch ...): say what to fix
        print(f"crashdiag: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ValueError as exc:  # e.g. OSS_BUCKET without CRASHDIAG_REGION
        print(f"crashdiag: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        brief = {
            "ingest": result["ingest"],
            "incidents": [
                {k: inc.get(k) for k in ("incident_id", "duplicate", "states", "report", "report_url", "notifications", "failure")}
                | {"kind": (inc.get("diagnosis") or {}).get("diagnosis", {}).get("kind")}
                for inc in result["incidents"]
            ],
            "objects": [{"key": o["key"], "report": o["report"], "kind": o["diagnosis"]["diagnosis"]["kind"]} for o in result.get("objects", [])],
        }
        print(json.dumps(brief, ensure_ascii=False))
    else:
        print(render_replay(result, settings.lang))
    return EXIT_OK


def _lang(args: argparse.Namespace) -> str:
    from .settings import Settings

    return args.lang or Settings.from_env().lang


def _classify(args: argparse.Namespace) -> int:
    from .classifier.classify import classify_bytes, classify_path
    from .classifier.logtext import LogInputError

    lang = _lang(args)
    status = EXIT_OK
    for path in args.paths:
        try:
            if path == "-":
                result = classify_bytes(sys.stdin.buffer.read(), lang=lang, source="-", budget_s=args.budget)
            else:
                result = classify_path(path, lang=lang, budget_s=args.budget)
        except LogInputError as exc:
            print(f"crashdiag: {exc}", file=sys.stderr)
            status = EXIT_INPUT
            continue
        if args.json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            from .reports.render import render_terminal

            if len(args.paths) > 1:
                print(f"== {path}")
            print(render_terminal(result, lang))
    return status


def _rules(args: argparse.Namespace) -> int:
    from .classifier.catalogue import RuleError, load_catalogue

    lang = _lang(args)
    try:
        rules = load_catalogue(args.rules)
    except RuleError as exc:
        print(f"crashdiag: rule catalogue is broken: {exc}", file=sys.stderr)
        return EXIT_RULES
    if args.check:
        from .classifier.rulecheck import check_rules

        problems, summary = check_rules(rules, args.cases)
        for p in problems:
            print(f"FAIL {p}")
        print(summary)
        return EXIT_RULES if problems else EXIT_OK
    if args.action == "show":
        match = [r for r in rules if r.id == args.rule_id]
        if not match:
            print(f"crashdiag: no rule {args.rule_id!r}", file=sys.stderr)
            return EXIT_INPUT
        rule = match[0]
        if args.json:
            print(json.dumps(rule.data, ensure_ascii=False, indent=2))
        else:
            print(_show(rule.data, lang))
        return EXIT_OK
    if args.json:
        for r in rules:
            print(json.dumps({"id": r.id, "category": r.category, "kinds": r.kinds, "title": r.data["title"][lang]}, ensure_ascii=False))
        return EXIT_OK
    width = max(len(r.id) for r in rules)
    for r in rules:
        print(f"{r.id:<{width}}  {r.category:<18} {r.data['title'][lang]}")
    print(f"{len(rules)} rules")
    return EXIT_OK


def _show(d: dict[str, Any], lang: str) -> str:
    out = [f"{d['id']}  [{d['category']}]  {d['title'][lang]}", f"kinds: {', '.join(d['kinds'])}"]
    out.append("match: " + json.dumps(d["match"], ensure_ascii=False))
    out.append("")
    out.append(d["cause"][lang])
    out.append("")
    out.extend(f"{i}. {s}" for i, s in enumerate(d["remedy"][lang], 1))
    for key in ("check_commands", "fix_commands"):
        if d.get(key):
            out.append("")
            out.append(key.replace("_", " ") + ":")
            out.extend(f"  $ {c}" for c in d[key])
    if d.get("fixed_in"):
        out.append("")
        out.append("fixed in: " + "; ".join(f"{k} {', '.join(v)}" for k, v in d["fixed_in"].items()))
    for ref in d.get("references", []):
        out.append(f"ref: {ref}")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
