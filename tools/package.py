"""Build the Function Compute code packages: ``dist/<function>.zip``, one per function.

    python tools/package.py                 # what `make package` runs
    python tools/package.py --no-deps       # our code only (fast; for tests, not deployable)

Why one zip per function, each with that function's ``index.py`` at the root
----------------------------------------------------------------------------
FC's Python handler is ``<file>.<method>`` (``index.handler`` = ``handler`` in
``index.py``) relative to the code root; the FC docs describe no directory part, so a
single zip holding ``functions/<name>/index.py`` could not name three handlers
reliably. Each zip therefore holds::

    index.py        functions/<name>/index.py
    crashdiag/      shared/crashdiag: *.py, classifier/rules/*.yaml, classifier/rules/rule.schema.json, pipeline/guest/*.sh,
                    reports/templates/*.j2 (the pages); in the functions that write a page also
                    reports/templates_compiled/ (below)
    <deps>/         third-party packages for the FC runtime (not with --no-deps)

and template.yml points each function at its own object with ``Handler: index.handler``.
Per-function zips also let the functions leave out what they never load: only
``collect`` ships the ECS SDK (~42 MB installed, ~0.5 s / 70 MB to import), and only
the functions that write a page (``collect`` and ``reconcile``: a failure's report.html;
``diagnose``: report.html; ``fleet``: fleet/index.html) ship Jinja2 and MarkupSafe.

Dependencies
------------
Read from pyproject.toml (``dependencies`` + the ``cloud`` extra), less what a function
does not use (COLLECT_ONLY, RENDER_ONLY), and installed for the FC runtime, not for this
machine, once per distinct list::

    pip install --target T --platform manylinux2014_x86_64 --python-version 3.10 \
        --implementation cp --only-binary=:all: --find-links WHEELHOUSE ...

Some packages publish no wheel at all (oss2, aliyun-fc2, alibabacloud-tea, crcmod,
rpm-vercmp, ...). When pip reports one, it is built here from its sdist into the local
wheelhouse (``pip wheel --no-deps --no-binary NAME`` with ``CC=false`` so crcmod's
optional C extension fails to build and its pure-Python fallback is packaged) and the
install is retried. A source build that still yields a platform-specific wheel is an
error: it would be built for this machine's Python, not the runtime's.

Precompiled templates
---------------------
Parsing and compiling the page templates costs a cold start's first page more than
importing Jinja2 (about twice as much, measured). The functions that write a page
therefore carry them precompiled (``Environment.compile_templates``, Python modules
that the bytecode step below compiles too), made with the Jinja2 the zip carries (with
``--no-deps``, this interpreter's) and the same environment the pages use
(``crashdiag.reports.pages``), plus a ``JINJA2_VERSION`` file: under any other Jinja2
version pages.py ignores them and compiles the templates themselves.

Bytecode
--------
FC's code directory is read-only, so without shipped ``.pyc`` files every cold start
compiles every module it imports (~2 s for the ECS SDK). Bytecode is version-specific:
it is compiled with an interpreter of the target version (``--bytecode-python``, else
``python3.10`` on PATH, else this interpreter if it matches), as ``unchecked-hash``
pycs (valid whatever mtimes the unzip leaves) with ``/code`` as the source path in
tracebacks. With no such interpreter the zips carry no bytecode and a warning says so.

Deterministic output: entries sorted by name, fixed timestamps and modes, no build
machine ``__pycache__``; the same inputs give byte-identical zips.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
PACKAGE_SRC = ROOT / "shared" / "crashdiag"
DEFAULT_OUT = ROOT / "dist"
BUILD_DIR = ROOT / "build" / "package"

DEFAULT_PYTHON_VERSION = "3.10"  # template.yml: Runtime python3.10
DEFAULT_PLATFORM = "manylinux2014_x86_64"
CODE_ROOT_ON_FC = "/code"

# Files of the crashdiag package that go into the zip (by suffix); caches never do.
CODE_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".json", ".sh", ".j2"})
# Data the functions read at run time by path: a zip without them is broken.
REQUIRED_DATA = ("classifier/rules/rule.schema.json", "pipeline/guest/collect-crash-log.sh",
                 "pipeline/guest/audit-readiness.sh",
                 "reports/templates/incident.html.j2", "reports/templates/fleet.html.j2")

# Requirements only the functions that call ECS need (collect, audit); the other functions'
# zips leave them, and everything only they pull in, out.
COLLECT_ONLY = frozenset({"alibabacloud-ecs20140526", "alibabacloud-tea-openapi"})
FUNCTIONS_WITH_ECS = frozenset({"collect", "audit"})
# The template engine, only in the functions that write a page: fleet (fleet/index.html) and
# every function that can end an incident with a report (pipeline/stages.py _write_report,
# by way of Pipeline.fail too): collect, diagnose and the reconciler.
RENDER_ONLY = frozenset({"jinja2"})
FUNCTIONS_THAT_RENDER = frozenset({"collect", "diagnose", "fleet", "reconcile"})

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_MISSING_REQ = re.compile(r"satisfies the requirement (\S+)")
_EXT_TAG = re.compile(r"\.cpython-(\d+)-")


class PackageError(Exception):
    pass


def log(msg: str) -> None:
    print(f"package: {msg}", file=sys.stderr, flush=True)


def zip_name(function: str) -> str:
    """The file (and OSS object basename) of one function's package."""
    return f"{function}.zip"


def function_names() -> list[str]:
    return sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/index.py"))


# -- requirements --------------------------------------------------------------------------


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip vendors tomli
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as f:
        return tomllib.load(f)


def canonical(req: str) -> str:
    name = re.split(r"[\s<>=!~;\[(@]", req.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[str], list[str]]:
    """(base, full): what every function needs, and that plus the ECS SDK."""
    project = _load_toml(pyproject)["project"]
    reqs = list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("cloud", []))
    missing = COLLECT_ONLY - {canonical(r) for r in reqs}
    if missing:
        raise PackageError(f"pyproject.toml no longer lists {sorted(missing)}: update COLLECT_ONLY in {__file__}")
    base = [r for r in reqs if canonical(r) not in COLLECT_ONLY]
    return base, reqs


def requirements_for(function: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What one function's zip carries: everything, less the ECS SDK unless it collects,
    less the template engine unless it writes a page."""
    _, full = requirements(pyproject)
    missing = RENDER_ONLY - {canonical(r) for r in full}
    if missing:
        raise PackageError(f"pyproject.toml no longer lists {sorted(missing)}: update RENDER_ONLY in {__file__}")
    drop = (set() if function in FUNCTIONS_WITH_ECS else set(COLLECT_ONLY)) | (set() if function in FUNCTIONS_THAT_RENDER else set(RENDER_ONLY))
    return [r for r in full if canonical(r) not in drop]


# -- dependency install ----------------------------------------------------------------------


def _pip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def _quiet(text: str) -> str:
    # this machine's pip config lists local indexes that lack most projects: noise
    return "\n".join(line for line in text.splitlines() if not line.startswith("WARNING: Location "))


def build_pure_wheel(req: str, wheelhouse: Path) -> Path:
    """Build one sdist-only requirement into a pure-Python wheel in ``wheelhouse``."""
    name = canonical(req)
    before = set(wheelhouse.glob("*.whl"))
    env = dict(os.environ, CC="false", CXX="false")  # optional C extensions fall back to Python
    log(f"building {req} from source (no wheel is published)")
    r = _pip("wheel", "--no-deps", "--no-cache-dir", "--no-binary", name, "-w", str(wheelhouse), req, env=env)
    if r.returncode != 0:
        raise PackageError(f"could not build {req} from source:\n{_quiet(r.stderr)[-3000:]}")
    new = sorted(set(wheelhouse.glob("*.whl")) - before) or sorted(
        w for w in wheelhouse.glob("*.whl") if canonical(w.name.split("-")[0]) == name
    )
    if not new:
        raise PackageError(f"pip built no wheel for {req}")
    for wheel in new:
        if not wheel.name.endswith("-none-any.whl"):
            wheel.unlink()
            raise PackageError(
                f"{req} has no wheel for the FC runtime and its source build is platform-specific "
                f"({wheel.name}): it would target this machine's Python, not the runtime's"
            )
    return new[0]


def install_deps(reqs: list[str], target: Path, wheelhouse: Path, python_version: str, platform: str) -> None:
    """Install ``reqs`` for the FC runtime into ``target`` (emptied first)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    built: set[str] = set()
    for _ in range(50):  # one more round per sdist-only package found
        if target.exists():
            shutil.rmtree(target)
        r = _pip(
            "install", "--no-compile", "--progress-bar", "off", "--target", str(target),
            "--platform", platform, "--python-version", python_version, "--implementation", "cp",
            "--only-binary=:all:", "--find-links", str(wheelhouse), *reqs,
        )
        if r.returncode == 0:
            break
        m = _MISSING_REQ.search(r.stderr)
        if not m or canonical(m.group(1)) in built:
            raise PackageError(f"pip could not install the dependencies:\n{_quiet(r.stderr)[-3000:]}")
        built.add(canonical(m.group(1)))
        build_pure_wheel(m.group(1), wheelhouse)
    else:  # pragma: no cover - 50 sdist-only packages
        raise PackageError("too many source-only packages")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts with this machine's shebang
    want = python_version.replace(".", "")
    wrong = sorted(str(p.relative_to(target)) for p in target.rglob("*.so")
                   if (m := _EXT_TAG.search(p.name)) and m.group(1) != want)
    if wrong:
        raise PackageError(f"extension modules for the wrong Python in {target}: {wrong[:5]}")


# -- our code --------------------------------------------------------------------------------


def stage_code(function: str, dest: Path, *, allow_incomplete: bool) -> None:
    """``dest/index.py`` and ``dest/crashdiag/...`` for one function."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "crashdiag").mkdir(parents=True)
    shutil.copy2(FUNCTIONS_DIR / function / "index.py", dest / "index.py")
    for src in sorted(PACKAGE_SRC.rglob("*")):
        rel = src.relative_to(PACKAGE_SRC)
        if not src.is_file() or "__pycache__" in rel.parts or src.suffix not in CODE_SUFFIXES:
            continue
        out = dest / "crashdiag" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    missing = [p for p in REQUIRED_DATA if not (dest / "crashdiag" / p).is_file()]
    if not any((dest / "crashdiag" / "classifier" / "rules").glob("*.yaml")):
        missing.append("classifier/rules/*.yaml")
    if missing:
        msg = f"shared/crashdiag lacks {', '.join(missing)}: the {function} function would fail at run time"
        if not allow_incomplete:
            raise PackageError(msg + " (--allow-incomplete builds anyway)")
        log("WARNING: " + msg)


# -- precompiled templates -------------------------------------------------------------------


def compile_templates(stage: Path, deps: Path | None) -> None:
    """``stage/crashdiag/reports/templates_compiled/`` from the staged templates, with the
    Jinja2 in ``deps`` (the zip's own) or, without deps, this interpreter's."""
    out = stage / "crashdiag" / "reports" / "templates_compiled"
    code = (
        "import sys\n"
        "sys.path[:0] = sys.argv[2:]\n"
        "import jinja2\n"
        "from crashdiag.reports import pages\n"
        "assert pages.__file__.startswith(sys.argv[2]), pages.__file__\n"
        "assert len(sys.argv) < 4 or jinja2.__file__.startswith(sys.argv[3]), jinja2.__file__\n"
        "pages.environment().compile_templates(sys.argv[1], zip=None, ignore_errors=False)\n"
        "with open(sys.argv[1] + '/' + pages.COMPILED_VERSION, 'w') as f:\n"
        "    f.write(jinja2.__version__ + '\\n')\n"
    )
    paths = [str(stage)] + ([str(deps)] if deps is not None else [])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code, str(out), *paths], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise PackageError(f"could not precompile the page templates:\n{r.stderr[-3000:]}")


# -- bytecode --------------------------------------------------------------------------------


def find_bytecode_python(python_version: str, explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [shutil.which(f"python{python_version}")]
    if not explicit and f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        candidates.append(sys.executable)
    for exe in filter(None, candidates):
        r = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == python_version:
            return exe
        if explicit:
            raise PackageError(f"{exe} is not Python {python_version}")
    return None


def compile_bytecode(python: str, root: Path) -> None:
    """``unchecked-hash`` pycs next to the sources, naming /code/... in tracebacks."""
    r = subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         "-s", str(root), "-p", CODE_ROOT_ON_FC, str(root)],
        capture_output=True, text=True,
    )
    if r.returncode != 0:  # a vendored file for another Python version, say: keep going
        log(f"WARNING: some files in {root.name} did not compile:\n{(r.stdout + r.stderr)[-1500:]}")


# -- the zip ---------------------------------------------------------------------------------


def _entries(roots: list[Path], pyc_tag: str | None) -> dict[str, Path]:
    entries: dict[str, Path] = {}
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(root)
            if path.suffix == ".pyc":
                if pyc_tag is None or rel.parent.name != "__pycache__" or f".{pyc_tag}." not in path.name:
                    continue
            elif "__pycache__" in rel.parts:
                continue
            name = rel.as_posix()
            if name in entries:
                raise PackageError(f"{name} comes from both {entries[name]} and {path}")
            entries[name] = path
    return entries


def write_zip(dest: Path, entries: dict[str, Path]) -> None:
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            src = entries[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            executable = src.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the modes above are read
            zf.writestr(info, src.read_bytes(), compresslevel=9)
    tmp.replace(dest)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- main ------------------------------------------------------------------------------------


def build(
    out: Path = DEFAULT_OUT,
    *,
    functions: list[str] | None = None,
    with_deps: bool = True,
    python_version: str = DEFAULT_PYTHON_VERSION,
    platform: str = DEFAULT_PLATFORM,
    bytecode: bool = True,
    bytecode_python: str | None = None,
    allow_incomplete: bool = False,
    build_dir: Path = BUILD_DIR,
) -> list[Path]:
    known = function_names()
    functions = functions or known
    unknown = sorted(set(functions) - set(known))
    if unknown:
        raise PackageError(f"no functions/<name>/index.py for {unknown}")
    build_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    deps: dict[str, Path] = {}  # function -> its installed dependencies (shared by equal lists)
    if with_deps:
        wheelhouse = build_dir / "wheelhouse"
        installed: dict[tuple[str, ...], Path] = {}
        for f in functions:
            reqs = tuple(requirements_for(f))
            if reqs not in installed:
                kind = ("ecs-" if f in FUNCTIONS_WITH_ECS else "") + ("pages" if f in FUNCTIONS_THAT_RENDER else "base")
                log(f"installing the {kind} dependencies for cp{python_version} {platform}")
                installed[reqs] = build_dir / f"deps-{kind}"
                install_deps(list(reqs), installed[reqs], wheelhouse, python_version, platform)
            deps[f] = installed[reqs]

    stages = {f: build_dir / f"code-{f}" for f in functions}
    for f, stage in stages.items():
        stage_code(f, stage, allow_incomplete=allow_incomplete)
        if f in FUNCTIONS_THAT_RENDER:
            compile_templates(stage, deps.get(f))

    pyc_tag = None
    if bytecode:
        exe = find_bytecode_python(python_version, bytecode_python)
        if exe is None:
            log(f"WARNING: no Python {python_version} interpreter here (--bytecode-python): the zips "
                f"carry no bytecode, so each cold start compiles what it imports")
        else:
            for root in [*dict.fromkeys(deps.values()), *stages.values()]:
                compile_bytecode(exe, root)
            pyc_tag = f"cpython-{python_version.replace('.', '')}"

    written = []
    for f in functions:
        roots = [stages[f]]
        if with_deps:
            roots.append(deps[f])
        dest = out / zip_name(f)
        entries = _entries(roots, pyc_tag)
        write_zip(dest, entries)
        size = dest.stat().st_size / 1e6
        log(f"{dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}: {len(entries)} files, "
            f"{size:.1f} MB, sha256 {sha256(dest)[:16]}" + ("" if with_deps else " (code only, not deployable)"))
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: dist/)")
    p.add_argument("--function", action="append", dest="functions", help="build only this function (repeatable)")
    p.add_argument("--no-deps", action="store_true", help="our code only: no third-party packages (not deployable)")
    p.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION, help="the FC runtime's Python (default 3.10)")
    p.add_argument("--platform", default=DEFAULT_PLATFORM, help="wheel platform tag (default manylinux2014_x86_64)")
    p.add_argument("--bytecode-python", help="interpreter of --python-version to compile bytecode with")
    p.add_argument("--no-bytecode", action="store_true", help="ship sources only")
    p.add_argument("--allow-incomplete", action="store_true", help="build even when data files the code reads are missing")
    p.add_argument("--build-dir", type=Path, default=BUILD_DIR, help="scratch space (default: build/package)")
    a = p.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", a.python_version):
        p.error("--python-version looks like 3.10")
    try:
        build(a.out, functions=a.functions, with_deps=not a.no_deps, python_version=a.python_version,
              platform=a.platform, bytecode=not a.no_bytecode, bytecode_python=a.bytecode_python,
              allow_incomplete=a.allow_incomplete, build_dir=a.build_dir)
    except PackageError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
