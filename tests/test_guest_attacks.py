"""A local unprivileged user attacks the guest collection script (issue #11).

Each test builds a guest tree whose folders have the owners and modes of a real guest
(``/var/crash`` 1777 as on Ubuntu; ``/var/log`` group-writable as Ubuntu's ``root:syslog
0775``, with the attacker in that group where the attack needs it; a root-only secret),
runs the attacker's steps as ``nobody`` (``setpriv``), and runs the script as root, as Cloud
Assistant does, under every shell installed. Where the attack is a race, a stub on ``PATH``
(a program the script runs at the right moment) lets the attacker act exactly then, so the
race is won every time. Each test asserts what the script chose, printed and uploaded, and
that the attacker's step really happened.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_guest_script import (  # noqa: F401 (put_server and shell are fixtures)
    BOOTLOOP04,
    EXPECTED,
    KDUMP01,
    T0,
    VMCORE08,
    VMCORE08_DIR,
    _url,
    copy_instance,
    put_server,
    run_script,
    shell,
    system_tools,
    tool_dir,
)

from crashdiag.pipeline.guest_output import parse_guest_output

SETPRIV = shutil.which("setpriv")
NOBODY = 65534  # nobody:nogroup on Debian and Ubuntu
ATTACKER = [SETPRIV or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the attacks need root: the script runs as root, the attacker as nobody"),
    pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed"),
]

SECRET = b"root:$6$the-root-only-secret:19000:0:99999:7:::\n"
GENUINE = b"<0>[ 42.000001] Kernel panic - not syncing: the genuine crash\n"
FORGED = b"<0>[ 43.000001] Kernel panic - not syncing: FORGED by a local user\n"
NEWER = "127.0.0.1-2026-11-27-09:00:00"  # a crash folder name after the genuine one's


# --- the guest and its attacker -------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory the attacker can reach (pytest's tmp_path is root-only); removed after."""
    d = Path(tempfile.mkdtemp(prefix="crashdiag-guest-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def guest(world: Path, instance: str) -> Path:
    """The instance's tree as a guest has it: /var/crash 1777 (anyone may make a folder there,
    as on Ubuntu) and a root-only secret, /root/secret."""
    root = copy_instance(instance, world)
    (root / "var/crash").mkdir(parents=True, exist_ok=True)
    (root / "var/crash").chmod(0o1777)
    (root / "root").mkdir(mode=0o700)
    (root / "root/secret").write_bytes(SECRET)
    (root / "root/secret").chmod(0o600)
    return root


def syslog_group_var_log(root: Path, content: bytes = GENUINE, mode: int = 0o640) -> Path:
    """/var/log root:<attacker's group> 0775, like Ubuntu's root:syslog, holding a root-owned
    messages with ``content``. Returns messages."""
    d = root / "var/log"
    d.mkdir(parents=True, exist_ok=True)
    os.chown(d, 0, NOBODY)
    d.chmod(0o775)
    f = d / "messages"
    f.write_bytes(content)
    os.chown(f, 0, NOBODY)
    f.chmod(mode)
    os.utime(f, (T0, T0))
    return f


def attacker(script: str, *args: str) -> None:
    """Run ``sh -c script`` as nobody:nogroup, with no other group."""
    p = subprocess.run([*ATTACKER, "/bin/sh", "-c", script, "attacker", *args], cwd="/", capture_output=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr


def hook(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in for the program ``name`` first on PATH: ``body``, then the real program."""
    real = shutil.which(name)
    if real is None:
        pytest.skip(f"{name} is not installed")
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\nexec {real} \"$@\"\n")
    (bin_dir / name).chmod(0o755)


def hook_once(bin_dir: Path, name: str, step: str, marker: Path, *, prelude: str = "", when: str = ":") -> None:
    """``hook`` that runs ``step`` the first time ``when`` holds (``prelude`` runs before the
    test), leaving ``marker`` behind as proof that it ran."""
    hook(bin_dir, name,
         f"{prelude}"
         f'if {when} && [ ! -e "{marker}" ]; then\n'
         f'    : >"{marker}"\n'
         f"    {step}\n"
         f"fi")


def attacker_step(script: str, *args: str) -> str:
    """The shell text a hook runs: ``script`` as the attacker (same as ``attacker``)."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    body = script.replace("'", "'\\''")
    return f"(cd / && {' '.join(ATTACKER)} /bin/sh -c '{body}' attacker {quoted})"


def hooked_path(bin_dir: Path) -> str:
    return f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def genuine_kdump(root: Path, out: bytes) -> None:
    g = parse_guest_output(out)
    assert (g["log"]["source"], g["log"]["path"]) == EXPECTED[KDUMP01][:2]
    assert g["payload"] == (root / EXPECTED[KDUMP01][2]).read_bytes()
    assert b"FORGED" not in out and b"root-only-secret" not in out


# --- (a) the upload URL on a command line ---------------------------------------------------------


READER = r"""
import os, sys, time
stop, ours = sys.argv[1], sys.argv[2]
me = str(os.getpid())
seen = set()


def parent(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[1].decode()


def in_our_tree(pid):
    # Only the test's own processes count: the machine running the tests (a CI runner, say) may
    # have command lines of its own with any text in them. A process that exits during the walk
    # cannot be placed and is skipped; the uploader lives for seconds, its parents longer.
    try:
        while pid not in ("0", "1"):
            if pid == ours:
                return True
            pid = parent(pid)
    except (OSError, IndexError):
        return False
    return False


print("ready", flush=True)
end = time.time() + 60
while not os.path.exists(stop) and time.time() < end:
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid != me and in_our_tree(pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    seen.add(f.read())
            except OSError:
                pass
    time.sleep(0.01)
print("\n".join(sorted(s.hex() for s in seen)))
"""


UPLOADER_MARK = {"curl": b"\0-K\0-\0", "wget": b"\0--method=PUT\0"}


@pytest.mark.parametrize("uploader", ["curl", "wget"])
def test_a_local_user_never_sees_the_upload_url(uploader, shell, put_server, world, tmp_path):
    """While the uploader runs (its stand-in waits 2 s before running the real one), nobody
    scans every /proc/*/cmdline: among this test's processes it sees the uploader's command
    line, and no part of the URL."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    root = guest(world, KDUMP01)
    names = ["cat", "ls", "head", "tail", "grep", "sed", "gzip", "base64", "wc", "stat", "date", "id", "tr", "timeout",
             "mktemp", "rm", "sleep", uploader]
    tools = system_tools(*names)
    tools.update({n: os.path.realpath(p) for n in ("sh", "dash", "bash", "busybox") if (p := shutil.which(n))})
    path = tool_dir(tmp_path / "bin", {n: t for n, t in tools.items() if n != uploader})
    (Path(path) / uploader).write_text(f"#!/bin/sh\n{tools['sleep']} 2\nexec {tools[uploader]} \"$@\"\n")
    (Path(path) / uploader).chmod(0o755)
    stop = world / "stop"
    reader = subprocess.Popen([*ATTACKER, python, "-c", READER, str(stop), str(os.getpid())], cwd="/", stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
        url = _url(put_server)
        out, _ = run_script(root, tmp_path, upload_url=url, path=path, shell=shell)
    finally:
        stop.touch()
        seen_hex, _ = reader.communicate(timeout=60)
    seen = [bytes.fromhex(h) for h in seen_hex.split()]
    g = parse_guest_output(out)
    assert g["log"]["uploaded"] == "yes"
    assert put_server.puts[0]["body"] == (root / EXPECTED[KDUMP01][2]).read_bytes()
    assert any(UPLOADER_MARK[uploader] in s for s in seen), "the reader never saw the uploader run"
    port = str(put_server.server_address[1]).encode()
    for s in seen:
        assert b"Signature" not in s and b"guest-upload.log" not in s and b":" + port not in s, s


# --- (b) a symlink swapped in between the check and the read ---------------------------------------


@pytest.mark.parametrize("private_dir", [True, False], ids=["copy-in-tmpdir", "copy-in-memory"])
def test_a_symlink_swapped_in_after_the_check_is_not_read(private_dir, shell, put_server, world, tmp_path):
    """In a folder the attacker's group may write, messages passes the checks; then, while the
    script asks stat for its date (after the checks, before the open), the attacker renames a
    symlink to the root-only secret over it. The open descriptor is not the file checked: the
    script reads nothing, prints and uploads nothing of the secret."""
    root = guest(world, BOOTLOOP04)
    msgs = syslog_group_var_log(root)
    control = parse_guest_output(run_script(root, tmp_path, shell=shell)[0])
    assert (control["log"]["source"], control["payload"]) == ("messages", GENUINE)  # eligible untouched

    done = tmp_path / "swapped"
    swap = attacker_step('ln -s "$1" "$2.new" && mv -f "$2.new" "$2"', str(root / "root/secret"), str(msgs))
    hook_once(tmp_path / "hooks", "stat", swap, done, prelude='for a in "$@"; do last=$a; done\n',
              when=f'[ "$last" = "{msgs}" ]')
    out, _ = run_script(root, tmp_path, shell=shell, upload_url=_url(put_server), path=hooked_path(tmp_path / "hooks"),
                        tmpdir=None if private_dir else str(tmp_path / "no-such-dir"))
    assert done.exists(), "the script never asked stat about messages: the race was not run"
    assert msgs.is_symlink()  # the attacker's swap happened
    assert b"root-only-secret" not in out
    assert all(b"root-only-secret" not in p["body"] for p in put_server.puts)
    assert parse_guest_output(out)["log"]["source"] == "none"


def test_a_swap_loop_never_gets_the_secret_read(shell, put_server, world, tmp_path):
    """The same race without a hook: the attacker swaps messages and a symlink to the secret
    back and forth as fast as it can while the script runs again and again."""
    root = guest(world, BOOTLOOP04)
    msgs = syslog_group_var_log(root)
    stop = world / "stop"
    loop = ('while [ ! -e "$3" ]; do mv -f "$2" "$2.keep"; ln -s "$1" "$2.lnk"; mv -f "$2.lnk" "$2"; '
            'mv -f "$2.keep" "$2"; done')
    racer = subprocess.Popen([*ATTACKER, "/bin/sh", "-c", loop, "attacker", str(root / "root/secret"), str(msgs), str(stop)],
                             cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sources = []
    try:
        for _ in range(8):
            out, _ = run_script(root, tmp_path, shell=shell, upload_url=_url(put_server))
            assert b"root-only-secret" not in out
            sources.append(parse_guest_output(out)["log"]["source"])
    finally:
        stop.touch()
        racer.wait(timeout=60)
    assert racer.returncode == 0  # the loop ran until told to stop
    assert all(b"root-only-secret" not in p["body"] for p in put_server.puts)
    assert set(sources) <= {"messages", "none"}


# --- (c) a future date; (e) a symlinked crash folder; (f) files the attacker owns ------------------


def test_a_future_dated_crash_folder_does_not_win(shell, world, tmp_path):
    root = guest(world, KDUMP01)
    attacker('mkdir "$1" && printf "%s" "$2" >"$1/vmcore-dmesg.txt" && touch -d @"$3" "$1/vmcore-dmesg.txt"',
             str(root / "var/crash/127.0.0.1-2099-01-01-00:00:00"), FORGED.decode(), str(int(time.time()) + 365 * 86400))
    genuine_kdump(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


def test_a_symlinked_crash_folder_is_not_followed(shell, world, tmp_path):
    """The attacker's symlink in /var/crash points at a root-only folder holding a root-owned
    vmcore-dmesg.txt (the secret), newer than the genuine crash."""
    root = guest(world, KDUMP01)
    hidden = root / "root/crash"
    hidden.mkdir(mode=0o700)
    (hidden / "vmcore-dmesg.txt").write_bytes(SECRET)
    os.utime(hidden / "vmcore-dmesg.txt", (T0 + 3600, T0 + 3600))
    attacker('ln -s "$1" "$2"', str(hidden), str(root / "var/crash" / NEWER))
    assert (root / "var/crash" / NEWER).is_symlink()
    genuine_kdump(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


def test_a_vmcore_dmesg_the_attacker_owns_does_not_win(shell, world, tmp_path):
    root = guest(world, KDUMP01)
    forged = root / "var/crash" / NEWER / "vmcore-dmesg.txt"
    attacker('mkdir "$1" && printf "%s" "$2" >"$1/vmcore-dmesg.txt" && touch -d @"$3" "$1/vmcore-dmesg.txt"',
             str(forged.parent), FORGED.decode(), str(T0 + 3600))
    assert forged.stat().st_uid == NOBODY and forged.read_bytes() == FORGED
    genuine_kdump(root, run_script(root, tmp_path, since=str(T0 - 60), shell=shell)[0])


def test_a_vmcore_the_attacker_owns_is_not_extracted(shell, world, tmp_path):
    """A newer dump without its dmesg, the attacker's: makedumpfile reads the genuine one."""
    root = guest(world, VMCORE08)
    attacker('mkdir "$1" && printf "KDUMP   %s" "$2" >"$1/vmcore" && touch -d @"$3" "$1/vmcore"',
             str(root / "var/crash" / NEWER), FORGED.decode(), str(T0 + 3600))
    out, _ = run_script(root, tmp_path, since=str(T0 - 3600), shell=shell)
    g = parse_guest_output(out)
    assert g["log"]["path"] == f"/{VMCORE08_DIR}/vmcore (makedumpfile --dump-dmesg)"
    assert g["payload"] == (root / VMCORE08_DIR / "vmcore").read_bytes()[8:]
    assert b"FORGED" not in out


MAKE_FOLDERS = r"""
import os, sys
for i in range(int(sys.argv[2])):
    d = os.path.join(sys.argv[1], f"127.0.0.1-2026-11-27-{i:08d}")
    os.mkdir(d)
    with open(os.path.join(d, "vmcore-dmesg.txt"), "w") as f:
        f.write("Kernel panic - not syncing: FORGED\n")
"""


def test_thousands_of_the_attackers_crash_folders_cost_the_scan_no_process(shell, world, tmp_path):
    """Anyone may fill a 1777 /var/crash with crash folders; the scan skips those not root's
    without starting a process (test -O), so their number cannot run it into the command's
    timeout. An ``ls`` stand-in counts the processes the script starts for file checks."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    root = guest(world, KDUMP01)
    p = subprocess.run([*ATTACKER, python, "-c", MAKE_FOLDERS, str(root / "var/crash"), "3000"], cwd="/",
                       capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert len(list((root / "var/crash").iterdir())) == 3001
    calls = tmp_path / "ls-calls"
    hook(tmp_path / "hooks", "ls", f'echo >>"{calls}"')
    out, _ = run_script(root, tmp_path, since=str(T0 - 60), shell=shell, path=hooked_path(tmp_path / "hooks"))
    genuine_kdump(root, out)
    assert 0 < len(calls.read_text().splitlines()) < 30  # the genuine file's checks, not one per folder


# --- (d) a sparse 1 GB log ----------------------------------------------------------------------------


SPARSE_CRASH = b"<0>[ 77.000001] Kernel panic - not syncing: after a 1 GB hole\n"
SPARSE_SIZE = 1 << 30
ADDRESS_SPACE = 512 << 20  # per process, for the script and everything it runs: half the file


def _sparse(world: Path) -> tuple[Path, Path]:
    """messages made 1 GB by the attacker (group write on it), with a crash line after the hole."""
    root = guest(world, BOOTLOOP04)
    msgs = syslog_group_var_log(root, mode=0o660)
    attacker('truncate -s "$2" "$1" && printf "%s" "$3" >>"$1"', str(msgs), str(SPARSE_SIZE), SPARSE_CRASH.decode())
    assert msgs.stat().st_size == SPARSE_SIZE + len(SPARSE_CRASH)
    return root, msgs


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_a_sparse_1gb_log_costs_bounded_memory(shell, world, tmp_path):
    """With every process limited to 512 MB of address space, the 1 GB log is read from its
    end (a 64 MB copy) and its crash line found."""
    root, msgs = _sparse(world)
    out, _ = run_script(root, tmp_path, shell=shell, preexec_fn=_limit_address_space)
    g = parse_guest_output(out)
    assert not g["truncated"]
    assert (g["log"]["source"], g["log"]["size"]) == ("messages", str(msgs.stat().st_size))
    assert SPARSE_CRASH.strip() in g["payload"] and b"genuine crash" not in g["payload"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_sparse_1gb_log_costs_bounded_memory_with_busybox_applets(world, tmp_path):
    """The same with busybox's tail, grep, sed and the rest in place of coreutils (a small
    guest's userland): its tail seeks, its grep and sed hold one 64 MB line at most."""
    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("busybox is not installed (apt-get install -y busybox)")
    names = ["sh", "cat", "ls", "head", "tail", "grep", "sed", "gzip", "base64", "wc", "stat", "date", "mktemp", "rm",
             "timeout", "tr", "id"]
    path = tool_dir(tmp_path / "bin", {n: bb for n in names})
    root, msgs = _sparse(world)
    out, _ = run_script(root, tmp_path, path=path, preexec_fn=_limit_address_space)
    g = parse_guest_output(out)
    assert (g["log"]["source"], g["log"]["size"]) == ("messages", str(msgs.stat().st_size))
    assert SPARSE_CRASH.strip() in g["payload"] and b"genuine crash" not in g["payload"]


def test_a_sparse_1gb_log_uploads_its_last_64mb(put_server, world, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    root, msgs = _sparse(world)
    out, _ = run_script(root, tmp_path, upload_url=_url(put_server), preexec_fn=_limit_address_space)
    assert parse_guest_output(out)["log"]["uploaded"] == "yes"
    body = put_server.puts[0]["body"]
    assert len(body) == 64 << 20 and body.endswith(SPARSE_CRASH) and body.count(b"\0") == len(body) - len(SPARSE_CRASH)


# --- (g) the file replaced after the copy -------------------------------------------------------------


@pytest.mark.parametrize("private_dir", [True, False], ids=["copy-in-tmpdir", "copy-in-memory"])
def test_a_log_replaced_after_the_copy_changes_nothing(private_dir, shell, put_server, world, tmp_path):
    """When curl starts (the copy is made), the attacker renames a forged log over messages:
    the upload and the excerpt are still the genuine text, whether the copy is a file in the
    private directory or, without one, held in memory."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    root = guest(world, BOOTLOOP04)
    msgs = syslog_group_var_log(root)
    done = tmp_path / "replaced"
    replace = attacker_step('printf %s "$1" >"$2.new" && mv -f "$2.new" "$2"', FORGED.decode(), str(msgs))
    hook_once(tmp_path / "hooks", "curl", replace, done)
    out, _ = run_script(root, tmp_path, shell=shell, upload_url=_url(put_server), path=hooked_path(tmp_path / "hooks"),
                        tmpdir=None if private_dir else str(tmp_path / "no-such-dir"))
    assert done.exists() and msgs.read_bytes() == FORGED  # the attacker's replacement happened
    g = parse_guest_output(out)
    assert (g["log"]["source"], g["log"]["uploaded"]) == ("messages", "yes")
    assert put_server.puts[0]["body"] == GENUINE
    assert g["payload"] == GENUINE
    assert b"FORGED" not in out


def test_the_hooks_attacker_step_runs_as_nobody_with_its_arguments_intact():
    step = attacker_step('printf "%s|%s|" "$1" "$2"; id -u; id -G', "it's", 'a "b" $c')
    p = subprocess.run(["/bin/sh", "-c", step], capture_output=True, check=True)
    assert p.stdout == b"it's|a \"b\" $c|%d\n%d\n" % (NOBODY, NOBODY)
