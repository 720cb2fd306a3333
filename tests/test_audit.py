"""The readiness audit: the guest script run for real under sh/dash/busybox/bash against
fixture trees, its judgement, and ``crashdiag audit --instances``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crashdiag.pipeline.audit import AUDIT_SCRIPT_PATH, audit_command
from crashdiag.reports.readiness import AuditOutputError, exposure, judge, parse_audit_output

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "events/instances"
HEALTHY = "i-bp1rdyhealthy001"
KDUMP_OFF = "i-bp1rdykdumpoff02"
NO_CKMEM = "i-bp1rdynockmem003"
OOM_PANIC = "i-bp1rdyoompanic04"
OLD_KERNEL = "i-bp1rdyoldkern005"
AUDITED = [HEALTHY, KDUMP_OFF, NO_CKMEM, OOM_PANIC, OLD_KERNEL]

SHELLS = {"sh": ["sh"], "dash": ["dash"], "busybox-sh": ["busybox", "sh"], "bash-posix": ["bash", "--posix"]}


@pytest.fixture(params=list(SHELLS), ids=list(SHELLS))
def shell(request) -> list[str]:
    argv = SHELLS[request.param]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    return argv


def tree_listing(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted([root, *root.rglob("*")]):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def run_audit_script(root: Path, work: Path, shell: list[str] | None = None, script: str | None = None) -> bytes:
    for d in ("cwd", "home", "tmp"):
        (work / d).mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(work / "home"),
           "TMPDIR": str(work / "tmp"), "CRASHDIAG_ROOT": str(root)}
    text = script if script is not None else AUDIT_SCRIPT_PATH.read_text()
    p = subprocess.run([*(shell or ["sh"]), "-s"], input=text.encode(), capture_output=True, env=env, cwd=work / "cwd",
                       timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    assert list((work / "tmp").iterdir()) == [] and list((work / "cwd").iterdir()) == []  # wrote nothing
    return p.stdout


def copy_root(instance: str, dest: Path) -> Path:
    root = dest / "root"
    shutil.copytree(INSTANCES / instance / "root", root, symlinks=True)
    return root


# --- the script ---------------------------------------------------------------------------------


@pytest.mark.parametrize("instance", AUDITED)
def test_script_reports_the_facts_and_changes_nothing(instance, shell, tmp_path):
    root = copy_root(instance, tmp_path)
    before = tree_listing(root)
    out = run_audit_script(root, tmp_path, shell)
    assert tree_listing(root) == before
    facts = parse_audit_output(out)
    assert facts["kernel.release"] == (root / "proc/sys/kernel/osrelease").read_text().strip()
    assert facts["kdump.active"] == (root / "run/crashdiag-fixture/kdump-active").read_text().strip()
    assert facts["agent.versions"] == "2.2.3.857"
    assert int(facts["dump.avail_kb"]) > 0 and facts["dump.mount"] == "/"
    assert facts["tool.makedumpfile"] in ("/usr/sbin/makedumpfile", "/usr/bin/makedumpfile")
    assert len(out) < 4096  # far inside Cloud Assistant's 24 KB


def test_every_shell_prints_the_same(tmp_path):
    outs = set()
    for name, argv in SHELLS.items():
        if shutil.which(argv[0]):
            outs.add(run_audit_script(copy_root(OLD_KERNEL, tmp_path / name), tmp_path / name, argv))
    assert len(outs) == 1


def test_the_sent_command_is_the_script_without_comments_and_fits(tmp_path):
    sent = audit_command()
    assert len(base64.b64encode(sent.encode())) < 24 * 1024
    assert "{{" not in sent  # no Cloud Assistant parameters: nothing from the caller reaches the shell
    root = copy_root(HEALTHY, tmp_path)
    assert run_audit_script(root, tmp_path, script=sent) == run_audit_script(root, tmp_path)


# Each guest script is sent alone (one RunCommand, under its size limit) and is read whole by
# whoever audits what runs on their instances, so both stay self-contained; the small helpers
# they share must not drift apart.
SHARED_HELPERS = ("have", "run_t", "is_num", "clean", "kv", "unquote")


def shell_function(text: str, name: str) -> str:
    """The definition of ``name`` in a shell script: from ``name() {`` to its closing brace (a
    one-line definition, or up to the first line that is ``}``)."""
    lines = text.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{name}() {{"))
    if lines[start].rstrip().endswith("}") and "#" not in lines[start]:
        return lines[start]
    end = lines.index("}", start)
    return "\n".join(lines[start:end + 1])


@pytest.mark.parametrize("name", SHARED_HELPERS)
def test_helpers_shared_with_the_collection_script_are_the_same(name):
    collect = (AUDIT_SCRIPT_PATH.parent / "collect-crash-log.sh").read_text()
    audit = AUDIT_SCRIPT_PATH.read_text()
    assert shell_function(audit, name) == shell_function(collect, name)


def test_hostile_guest_files_stay_data_and_are_bounded(shell, tmp_path):
    root = copy_root(HEALTHY, tmp_path)
    canary = tmp_path / "pwned"
    (root / "etc/os-release").write_text(f'ID="$(touch {canary})"\nPRETTY_NAME="`touch {canary}`;x"\n')
    (root / "proc/cmdline").write_text("crashkernel=" + "A" * 2_000_000 + "\n")
    (root / "etc/kdump.conf").write_text(f"path /var/$(touch {canary})\n" + "x " * 100_000 + "\n")
    (root / "proc/sys/vm/panic_on_oom").write_bytes(b"1\r\nkernel.panic=0\n")
    out = run_audit_script(root, tmp_path, shell)
    assert not canary.exists()
    facts = parse_audit_output(out)
    assert facts["os.id"] == f"$(touch {canary})"
    assert len(facts["crashkernel"]) <= 1024  # read at most 4 KB, printed at most 1 KB
    assert facts["sysctl.vm.panic_on_oom"] == "1 "  # one line only: the CR became a space
    assert len(out) < 16 * 1024


def test_empty_root_still_gives_both_markers(tmp_path):
    (tmp_path / "empty").mkdir()
    facts = parse_audit_output(run_audit_script(tmp_path / "empty", tmp_path))
    assert facts["kdump.service"] == "" and facts["kdump.active"] == "not-found"
    r = judge(facts, instance_id="i-x")
    assert r["ready"] is False
    assert {c["id"]: c["status"] for c in r["checks"]}["kdump"] == "fail"


# --- the parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("hello", "no CRASHDIAG-AUDIT-BEGIN"),
    ("CRASHDIAG-AUDIT-BEGIN 2\nCRASHDIAG-AUDIT-END\n", "version"),
    ("CRASHDIAG-AUDIT-BEGIN 1\nkernel.release=5.10\n", "ends before"),
    ("CRASHDIAG-AUDIT-BEGIN 1\nNot A Key=1\nCRASHDIAG-AUDIT-END\n", "malformed"),
    ("CRASHDIAG-AUDIT-BEGIN 1\nno equals sign\nCRASHDIAG-AUDIT-END\n", "malformed"),
])
def test_parser_refuses_what_is_not_the_scripts_output(text, message):
    with pytest.raises(AuditOutputError, match=message):
        parse_audit_output(text)


def test_parser_bounds_values():
    facts = parse_audit_output("CRASHDIAG-AUDIT-BEGIN 1\nos.name=" + "x" * 5000 + "\nCRASHDIAG-AUDIT-END\n")
    assert len(facts["os.name"]) == 1024


# --- judging ------------------------------------------------------------------------------------


def statuses(result: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result["checks"]}


def facts_of(instance: str, tmp_path: Path, **changes: str) -> dict[str, str]:
    facts = parse_audit_output(run_audit_script(copy_root(instance, tmp_path), tmp_path))
    facts.update(changes)
    return facts


@pytest.mark.parametrize("avail_gb, mem_gb, want", [(60, 16, "ok"), (4, 16, "warn"), (1, 16, "fail")])
def test_dump_space_against_memory(avail_gb, mem_gb, want, tmp_path):
    f = facts_of(HEALTHY, tmp_path, **{"dump.avail_kb": str(avail_gb << 20), "mem.total_kb": str(mem_gb << 20)})
    r = judge(f, instance_id=HEALTHY)
    assert statuses(r)["dump-space"] == want
    assert r["ready"] is (want != "fail")


def test_a_remote_dump_target_is_not_measured_locally(tmp_path):
    f = facts_of(HEALTHY, tmp_path, **{"kdump.target": "nfs", "dump.avail_kb": "1"})
    assert statuses(judge(f, instance_id=HEALTHY))["dump-space"] == "ok"


@pytest.mark.parametrize("knob, value, want", [
    ("kernel.panic", "0", "warn"), ("kernel.panic", "10", "ok"), ("kernel.panic", "-1", "ok"),
    ("vm.panic_on_oom", "2", "fail"), ("kernel.softlockup_panic", "1", "warn"), ("kernel.hung_task_panic", "1", "warn"),
    ("kernel.unknown_nmi_panic", "1", "warn"), ("kernel.panic_on_warn", "1", "warn"), ("kernel.panic_on_oops", "0", "ok"),
    ("kernel.panic_on_warn", "", "ok"),
])
def test_panic_knobs(knob, value, want, tmp_path):
    r = judge(facts_of(HEALTHY, tmp_path, **{f"sysctl.{knob}": value}), instance_id=HEALTHY)
    check = next(c for c in r["checks"] if c["id"] == knob)
    assert check["status"] == want
    assert (check["fix"] != "") is (want != "ok")
    assert r["ready"] is True  # a knob never decides whether a crash log is left


def test_volatile_journal_is_worse_without_kdump(tmp_path):
    f = facts_of(HEALTHY, tmp_path, **{"journal.storage": "volatile"})
    assert statuses(judge(f, instance_id=HEALTHY))["journal"] == "warn"
    f["kdump.active"] = "inactive"
    assert statuses(judge(f, instance_id=HEALTHY))["journal"] == "fail"


@pytest.mark.parametrize("versions, want", [("2.2.3.857", "ok"), ("2.1.3.1 2.2.0.9", "warn"), ("", "warn"), ("2.2.3.857 ../x", "ok")])
def test_agent_version(versions, want, tmp_path):
    assert statuses(judge(facts_of(HEALTHY, tmp_path, **{"agent.versions": versions}), instance_id=HEALTHY))["agent"] == want


def test_fix_commands_follow_the_distribution_family(tmp_path):
    deb = judge(facts_of(NO_CKMEM, tmp_path), instance_id=NO_CKMEM)
    rhel = judge(facts_of(KDUMP_OFF, tmp_path / "r"), instance_id=KDUMP_OFF)
    assert "update-grub" in next(c["fix"] for c in deb["checks"] if c["id"] == "crashkernel")
    assert next(c["fix"] for c in rhel["checks"] if c["id"] == "kdump") == "systemctl enable --now kdump"
    f = facts_of(KDUMP_OFF, tmp_path / "r9", **{"kdump.service": "", "os.version_id": "9.2"})
    assert next(c["fix"] for c in judge(f, instance_id="i-x")["checks"] if c["id"] == "kdump").startswith("dnf install -y kexec-tools")


def test_exposure_names_the_rule_and_the_kernel_to_upgrade_to():
    exposed, target = exposure("3.10.0-1160.76.1.el7.x86_64")
    assert [e["rule"] for e in exposed] == ["blk-mq-timeout-null-deref"]
    assert exposed[0]["upgrade_to"] == target == "3.10.0-1160.88.1.el7"
    assert exposure("3.10.0-1160.88.1.el7.x86_64") == ([], None)
    # el8 4.18.0-305.3.1: two rules fixed in the same z-stream kernel
    exposed, target = exposure("4.18.0-305.3.1.el8.x86_64")
    assert {e["rule"] for e in exposed} == {"cgroup-css-release-list-del", "module-put-use-after-free"}
    assert target == "4.18.0-305.12.1.el8_4"
    # a fix recorded only upstream is not a package anyone can install on a distribution kernel
    assert exposure("3.10.0-514.el7.x86_64")[0] and "intel-pstate-divide-error" not in {
        e["rule"] for e in exposure("3.10.0-514.el7.x86_64")[0]}
    assert exposure("5.15.0-91-generic") == ([], None)  # the Ubuntu fix is for the 5.4 line
    assert exposure(None) == ([], None)


# --- crashdiag audit ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crashdiag.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False)


def test_cli_judges_every_simulated_instance():
    p = run_cli("audit", "--instances", "events/instances", "--json")
    assert p.returncode == 0, p.stderr
    results = {r["instance_id"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert set(AUDITED) <= set(results)
    for r in results.values():
        assert set(r) >= {"instance_id", "ready", "checks", "exposed"}
        for c in r["checks"]:
            assert set(c) == {"id", "status", "detail", "fix"} and c["status"] in ("ok", "warn", "fail")
        for e in r["exposed"]:
            assert set(e) >= {"rule", "fixed_in", "upgrade_to"}

    healthy = results[HEALTHY]
    assert healthy["ready"] is True and set(statuses(healthy).values()) == {"ok"} and healthy["exposed"] == []

    off = results[KDUMP_OFF]
    assert off["ready"] is False
    assert {k for k, v in statuses(off).items() if v == "fail"} == {"kdump"}
    assert "disabled" in next(c["detail"] for c in off["checks"] if c["id"] == "kdump")

    nomem = results[NO_CKMEM]
    assert nomem["ready"] is False and statuses(nomem)["crashkernel"] == "fail"
    assert "no crashkernel=" in next(c["detail"] for c in nomem["checks"] if c["id"] == "crashkernel")

    oom = results[OOM_PANIC]
    assert {k for k, v in statuses(oom).items() if v != "ok"} == {"vm.panic_on_oom"}
    assert statuses(oom)["vm.panic_on_oom"] == "fail" and oom["ready"] is True

    old = results[OLD_KERNEL]
    assert old["ready"] is True and set(statuses(old).values()) == {"ok"}
    assert [(e["rule"], e["upgrade_to"]) for e in old["exposed"]] == [("blk-mq-timeout-null-deref", "3.10.0-1160.88.1.el7")]
    assert old["upgrade_to"] == "3.10.0-1160.88.1.el7"

    boot = results["i-bp1bootloop00004"]  # agent offline: the audit could not run there
    assert boot["ready"] is False and boot["checks"][0]["id"] == "audit" and "ClientNotRunning" in boot["error"]


def test_cli_table_tag_filter_and_store(tmp_path):
    p = run_cli("audit", "--instances", "events/instances", "--tag", "crashdiag:audit=true", "--store", str(tmp_path / "store"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("3 of 5 instances")  # and the tagged Shanghai instance
    assert KDUMP_OFF not in p.stdout and HEALTHY in p.stdout
    assert "fix: sysctl -w vm.panic_on_oom=0" in p.stdout
    written = sorted(x.name for x in (tmp_path / "store").rglob("*.json") if "summary" not in x.parts)
    assert written == sorted(f"{i}.json" for i in (HEALTHY, NO_CKMEM, OOM_PANIC, OLD_KERNEL, "i-uf6shanghai00007"))
    assert run_cli("audit", "--instances", str(tmp_path / "nope")).returncode == 2
    assert run_cli("audit", "--instances", "events/instances", "--tag", "novalue").returncode == 2


def test_fixture_trees_are_what_the_generator_writes():
    p = subprocess.run([sys.executable, str(INSTANCES / "make_audit_instances.py"), "--check"], capture_output=True, check=False)
    assert p.returncode == 0, p.stderr


# --- what people see: the fleet's readiness, the incident's, the weekly digest -----------------


def audited_store(tmp_path: Path, *extra: str) -> Path:
    store = tmp_path / "store"
    p = run_cli("audit", "--instances", "events/instances", "--store", str(store), *extra)
    assert p.returncode == 0, p.stderr
    return store


def fleet_counts() -> tuple[int, int]:
    """(ready, audited) over every simulated Linux instance, from each one's own judgement."""
    p = run_cli("audit", "--instances", "events/instances", "--json")
    results = [json.loads(line) for line in p.stdout.splitlines()]
    ready = sum(1 for r in results if r["ready"])
    assert ready >= 3 and len(results) >= 12  # the five audit trees and the crash fixtures at least
    return ready, len(results)


def test_fleet_readiness_is_merged_from_region_summaries(tmp_path):
    import datetime as dt

    from crashdiag.cloud.store import LocalStore
    from crashdiag.reports.readiness import load_readiness

    store = LocalStore(audited_store(tmp_path, "--account", "1111222233334444"))
    summaries = store.list("audit/summary/")
    assert [k.rsplit("/", 2)[1:] for k in summaries] == [["cn-hangzhou", "1111222233334444.json"],
                                                          ["cn-shanghai", "1111222233334444.json"]]
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    view = load_readiness(store, today)
    ready, audited = fleet_counts()
    assert (view["audited"], view["ready"]) == (audited, ready)  # the summaries agree with each instance's result
    assert view["accounts"] == ["1111222233334444"] and view["regions"] == ["cn-hangzhou", "cn-shanghai"]
    top = {p["id"]: p for p in view["problems"]}
    assert top["kdump"]["status"] == "fail" and top["kdump"]["fix"]
    assert top["vm.panic_on_oom"]["count"] == 2  # the seed's oom instance and the new one
    issues = {g["rule"]: g for g in view["exposed"]}
    blk = issues["blk-mq-timeout-null-deref"]
    assert blk["upgrade_to"] == ["3.10.0-1160.88.1.el7"]
    assert {i["instance_id"] for i in blk["instances"]} >= {OLD_KERNEL, "i-bp1kdumpel7demo01", "i-uf6shanghai00007"}
    assert HEALTHY not in {i["instance_id"] for g in view["exposed"] for i in g["instances"]}
    assert load_readiness(store, "2031-01-01") is None  # nothing within the window


def test_an_incident_report_carries_its_instances_last_audit(tmp_path):
    from fixtures_world import replay_events

    audited_store(tmp_path)
    store = replay_events(tmp_path / "store", "eventbridge-crash-kdump-executing.json")
    key = next(k for k in store.list("incidents/") if k.endswith("/report.json"))
    report = json.loads(store.get(key))
    ra = report["readiness"]
    assert ra["ready"] is False and ra["audited_at"]
    assert {p["id"] for p in ra["problems"] if p["status"] == "fail"} == {"dump-tools"}
    assert [e["rule"] for e in ra["exposed"]] == ["blk-mq-timeout-null-deref"]
    md_text = store.get(key.replace("report.json", "report.md")).decode()
    assert "## Readiness at the last audit" in md_text and "blk-mq-timeout-null-deref" in md_text
    page = store.get(key.replace("report.json", "report.html")).decode()
    section = page[page.index('<section id="readiness">'):]
    section = section[:section.index("</section>")]
    assert "At its last readiness audit" in section and "not ready: a crash may leave no kdump evidence" in section
    assert "dump-tools" in section and "3.10.0-1160.88.1.el7" in section


def test_a_never_audited_instance_says_so(tmp_path):
    from fixtures_world import replay_events

    store = replay_events(tmp_path / "store", "eventbridge-crash-kdump-executing.json")
    key = next(k for k in store.list("incidents/") if k.endswith("/report.json"))
    assert json.loads(store.get(key))["readiness"] is None


def test_weekly_readiness_digest_goes_once_through_the_channels(tmp_path):
    import datetime as dt

    from crashdiag.cloud.store import LocalStore
    from crashdiag.notify.readiness_digest import send_readiness_digest
    from crashdiag.settings import Settings

    store = LocalStore(audited_store(tmp_path))
    outbox = tmp_path / "outbox"
    settings = Settings.from_env({}, outbox_dir=str(outbox), lang="en")
    today = dt.datetime.now(dt.timezone.utc).date()
    r = send_readiness_digest(store, settings, today, page_url="https://example.invalid/fleet/index.html")
    ready, audited = fleet_counts()
    assert r["status"] == "sent" and (r["ready"], r["audited"]) == (ready, audited)
    assert set(r["outcomes"]) == {"dingtalk", "email"}
    card = json.loads(next(outbox.glob("readiness-*.dingtalk.json")).read_text())
    text = card["markdown"]["text"]
    assert f"{ready} of {audited} instances" in text and "blk-mq-timeout-null-deref" in text and "3.10.0-1160.88.1.el7" in text
    assert "sysctl -w vm.panic\\_on\\_oom=0" in text  # the most common fix, escaped for Markdown
    mail = next(outbox.glob("readiness-*.eml")).read_text()
    assert f"Subject: [readiness] {ready} of {audited} instances ready for the next crash" in mail
    assert send_readiness_digest(store, settings, today)["status"] == "already sent"
    assert send_readiness_digest(LocalStore(tmp_path / "empty"), settings, today)["status"] == "skipped"
