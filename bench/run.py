"""Benchmarks: `make bench`. Prints one table, appends it, dated, to bench/results.md and
rewrites the table in README.md between its bench markers.

Each figure stands beside its reference measured in the same run:
  - classify a generated 50 MB kernel log (one crash at the end) vs `grep -E` over the
    same file for the same trigger words: the floor for any tool that reads the bytes;
  - peak RSS classifying a 200 MB log (target under 150 MB);
  - time per log on the 17 seed logs after start-up (target under 20 ms);
  - CLI start-up: `crashdiag classify` of one small log, beside `python -c pass`;
  - cold start of each Function Compute handler in a fresh interpreter (bench/coldstart.py),
    and for diagnose and fleet the time their first page adds;
  - one sample crash event replayed end to end;
  - a 500-event crash storm through the pipeline over the local stand-ins (events/s);
  - guilty-frame agreement with syzkaller's own titles on the peer cases (bench/frames.py);
  - hostile logs (bench/adversarial.py): the slowest catalogue trap lines, and 5 MB hostile
    inputs through classify and through diagnose + notify with redaction on;
  - each stage's peak RSS on a 200 MB log, each in a fresh interpreter (bench/stages_rss.py;
    CRASHDIAG_BENCH_OSS=1 adds the rows over the OSS stand-in).
`python bench/run.py big frames` runs only the named parts (big, rss, seed, cli, coldstart,
replay, storm, frames, hostile, stagesrss); with no names it runs them all.
Generated inputs go to bench/out/ (ignored by git) and are reused between runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

GREP_TRIGGERS = (
    "Call Trace|Call trace|Kernel panic|BUG|Oops|WARNING|Out of memory|oom-kill|general protection|"
    "divide error|invalid opcode|soft lockup|hard LOCKUP|blocked for more than|stall|list_del|list_add|"
    "Hardware Error|page allocation failure|double fault|Attempted to kill init|VFS: Unable"
)
WORDS = b"systemd audit eth0 link up scsi device attached usb ext4 mounted kworker session NIC rx tx".split()


def make_log(path: Path, size: int, crash: bytes) -> Path:
    if path.exists() and path.stat().st_size >= size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(42)
    t = 0.0
    with path.open("wb") as f:
        written = 0
        block: list[bytes] = []
        while written < size:
            t += rnd.random() / 10
            line = b"[%12.6f] " % t + b" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(4, 14))) + b"\n"
            block.append(line)
            written += len(line)
            if len(block) >= 10_000:
                f.write(b"".join(block))
                block.clear()
        f.write(b"".join(block))
        f.write(crash)
    return path


def template_memory_sizes() -> dict[str, int]:
    """MemorySize of each function in template.yml, to set the measured RSS beside it."""
    import yaml

    doc = yaml.safe_load((ROOT / "template.yml").read_text())
    out = {}
    for res in doc.get("Resources", {}).values():
        props = res.get("Properties", {}) if isinstance(res, dict) else {}
        if res.get("Type") == "ALIYUN::FC::Function" and isinstance(props.get("FunctionName"), str):
            out[props["FunctionName"]] = props.get("MemorySize")
    return out


def cpu_timed(cmd: list[str], repeat: int = 5) -> tuple[float, float]:
    """Best wall time and best CPU time (user + sys) of `repeat` runs. On a machine shared
    with other work the wall time swings with the load; the CPU time is what the run costs."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def timed(cmd: list[str], repeat: int = 3) -> tuple[float, int]:
    """Best wall time of `repeat` runs, and the peak RSS (KB) of the children."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - t)
    return best, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def peak_rss_of(cmd: list[str]) -> int:
    """Peak RSS (KB) of one child process, measured by a fresh helper interpreter."""
    probe = (
        "import resource,subprocess,sys;"
        "subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


PARTS = ("big", "rss", "seed", "cli", "coldstart", "replay", "storm", "frames", "hostile", "stagesrss")


def _merge_rows(old: list[str], rows: list[tuple[str, str, str, str]], header: tuple[str, ...]) -> list[str]:
    """README's table with the measured rows put in place of the rows of the same measure
    (matched on the measure's words before any parenthesis), new measures appended."""
    def key(cell: str) -> str:
        return cell.split(" (", 1)[0].strip()

    body = [ln for ln in old if ln.startswith("|") and not ln.startswith(("| measure", "|---"))]
    fresh = {key(r[0]): f"| {' | '.join(r)} |" for r in rows}
    out = []
    for ln in body:
        k = key(ln.strip("|").split("|", 1)[0])
        out.append(fresh.pop(k, ln))
    out.extend(fresh.values())
    return [f"| {' | '.join(header)} |", "|---|---|---|---|", *out]


def main(argv: list[str] | None = None) -> int:
    from corpus import load_case
    from crashdiag.classifier.classify import classify_bytes

    crashdiag = [sys.executable, "-m", "crashdiag.cli"]
    env_path = str(ROOT / "shared")
    os.environ["PYTHONPATH"] = env_path + os.pathsep + os.environ.get("PYTHONPATH", "")
    seed_cases = [load_case(p) for p in sorted((ROOT / "tests" / "cases" / "seed").glob("*.txt"))]
    crash = seed_cases[8].log  # the blk-mq NULL dereference, a full el7 oops

    rows: list[tuple[str, str, str, str]] = []
    only = set(argv if argv is not None else sys.argv[1:])
    unknown = only - set(PARTS)
    if unknown:
        print(f"unknown bench parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})", file=sys.stderr)
        return 2

    def want(part: str) -> bool:
        return not only or part in only

    if want('big'):
        big = make_log(OUT / "kernel-50MB.log", 50 * 1024 * 1024, crash)
        # Start-up included; best of five runs each, wall and CPU (CPU is steadier under load).
        grep_t, grep_cpu = cpu_timed(["grep", "-cE", GREP_TRIGGERS, str(big)])
        ours_t, ours_cpu = cpu_timed([*crashdiag, "classify", "--json", str(big)])
        rows.append(("classify 50 MB log, crash at the end (start-up included)",
                     f"{ours_t:.2f} s wall, {ours_cpu:.2f} s CPU",
                     f"grep -E same triggers {grep_t:.2f} s wall, {grep_cpu:.2f} s CPU",
                     f"{ours_t / grep_t:.1f}x grep wall, {ours_cpu / grep_cpu:.1f}x CPU (target <= 3x)"))

    if want('rss'):
        huge = make_log(OUT / "kernel-200MB.log", 200 * 1024 * 1024, crash)
        rss = peak_rss_of([*crashdiag, "classify", "--json", str(huge)])
        base_rss = peak_rss_of([sys.executable, "-c", "pass"])
        rows.append(("peak RSS, 200 MB log", f"{rss / 1024:.0f} MB", f"python -c pass {base_rss / 1024:.0f} MB", "target < 150 MB"))
        page = OUT / "kernel-200MB.html"
        html_rss = peak_rss_of([*crashdiag, "report", "--html", str(page), str(huge)])
        rows.append(("peak RSS, crashdiag report --html on the 200 MB log", f"{html_rss / 1024:.0f} MB",
                     f"python -c pass {base_rss / 1024:.0f} MB", "target < 200 MB (was 625 MB: the page decoded the whole log)"))

    if want('seed'):
        classify_bytes(seed_cases[0].log)  # warm: catalogue loaded, regexes compiled
        per_log = []
        for _ in range(5):
            t = time.perf_counter()
            for c in seed_cases:
                classify_bytes(c.log)
            per_log.append((time.perf_counter() - t) / len(seed_cases))
        ms = statistics.median(per_log) * 1000
        rows.append((f"classify one seed log ({len(seed_cases)} logs, after start-up)", f"{ms:.1f} ms", "-", "target < 20 ms"))

    small = ROOT / "tests" / "cases" / "seed" / "01-oom-panic-on-oom.txt"
    if want("cli") or want("coldstart") or want("replay"):
        cli_t = statistics.median(timed([*crashdiag, "classify", "--json", str(small)], 1)[0] for _ in range(5))
        py_t = statistics.median(timed([sys.executable, "-c", "pass"], 1)[0] for _ in range(5))
        base_rss = peak_rss_of([sys.executable, "-c", "pass"])
    if want("cli"):
        rows.append(("CLI start-up: classify one small log", f"{cli_t * 1000:.0f} ms", f"python -c pass {py_t * 1000:.0f} ms",
                     "target < 300 ms"))

    if want('coldstart'):
        memory_sizes = template_memory_sizes()
        # Cold start of each handler in a fresh interpreter (imports + first-use clients).
        for fn in ("on_ecs_event", "collect", "diagnose", "notify", "notify_flush", "fleet"):
            runs = []
            for _ in range(3):
                out = subprocess.run([sys.executable, str(ROOT / "bench" / "coldstart.py"), fn], capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout))
            best = min(runs, key=lambda r: r["ready_s"])
            mem = memory_sizes.get(fn)
            ours = f"{best['import_s'] * 1000:.0f} ms / {best['ready_s'] * 1000:.0f} ms, {best['rss_kb'] / 1024:.0f} MB"
            if "page_s" in best:  # diagnose and fleet: then their first page
                ours += f"; first page +{min(r['page_s'] for r in runs) * 1000:.0f} ms, {best['page_rss_kb'] / 1024:.0f} MB"
            rows.append((f"cold start: {fn} (import, then ready to serve)", ours,
                         f"python -c pass {py_t * 1000:.0f} ms, {base_rss / 1024:.0f} MB",
                         ("ECS SDK loaded" if best["ecs_sdk"] else "no ECS SDK") + (f"; MemorySize {mem} MB" if mem else "")))

    if want('replay'):
        # End to end: replay one sample crash event (ingest, the real guest script, diagnose).
        with tempfile.TemporaryDirectory() as store:
            replay_t = min(
                timed([*crashdiag, "replay", str(ROOT / "events" / "eventbridge-crash-kdump-executing.json"), "--store", f"{store}/{i}"], 1)[0]
                for i in range(3)
            )
        rows.append(("replay one crash event end to end (CLI, local store)", f"{replay_t * 1000:.0f} ms", f"CLI classify {cli_t * 1000:.0f} ms", "-"))

    if want('storm'):
        # A crash storm through the pipeline over the stand-ins (bench/storm.py, `make storm`).
        from storm import run_storm

        logging.getLogger("crashdiag").setLevel(logging.ERROR)
        storm = run_storm(500, 300, 8)
        rows.append(("storm: 500 events, 300 instances, 8 workers, over the stand-ins",
                     f"{storm.events_in / storm.wall_s:.1f} events/s", f"{storm.wall_s:.0f} s wall",
                     "PASS: every event accounted for once" if storm.ok else "FAIL: " + "; ".join(storm.problems)))

    if want("frames"):
        from frames import agreement

        agree, total = agreement()
        rows.append(("guilty frame agrees with syzkaller's title (peer cases)", f"{agree} of {total}",
                     "syzkaller's own titles (NOTE headers)", f"{100 * agree / max(total, 1):.0f}% (target >= 80%)"))

    if want("hostile"):
        # Hostile input (issue #11): the worst catalogue trap lines, 5 MB traps end to end.
        from adversarial import run as adversarial_rows

        rows += adversarial_rows()

    if want("stagesrss"):
        # Each stage's peak memory on a 200 MB log, in a fresh interpreter (bench/stages_rss.py).
        from stages_rss import run as stage_rows

        rows += stage_rows(oss=os.environ.get("CRASHDIAG_BENCH_OSS") == "1")

    header = ("measure", "ours", "reference (same run)", "note")
    table = [f"| {' | '.join(header)} |", "|---|---|---|---|"] + [f"| {' | '.join(r)} |" for r in rows]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"
    text = f"### {stamp} ({where})\n\n" + "\n".join(table) + "\n"
    print(text)
    readme = ROOT / "README.md"
    text_readme = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text_readme and end in text_readme:
        head, rest = text_readme.split(start, 1)
        old_table, tail = rest.split(end, 1)
        if only:  # a partial run replaces the rows it measured and keeps the others
            table = _merge_rows(old_table.strip().splitlines(), rows, header)
        readme.write_text(f"{head}{start}\n" + "\n".join(table) + f"\n{end}{tail}")
    results = ROOT / "bench" / "results.md"
    if not results.exists():
        results.write_text("# Benchmark history\n\nAppended by `make bench`, newest last.\n\n")
    with results.open("a") as f:
        f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
