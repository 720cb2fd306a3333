"""tools/package.py: the Function Compute zips.

Fast tests build the code-only variant (``--no-deps``) and import each handler from the
unzipped package in a clean interpreter (``python -I``; deps from this venv). The real
build (``make package``: PyPI, about a minute) runs only with CRASHDIAG_TEST_PACKAGE=1;
zips a previous ``make package`` left in dist/ are checked as they are.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "package.py"
SHARED = ROOT / "shared" / "crashdiag"
HERE_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
ECS_SDK = "alibabacloud_ecs20140526"


def _load_tool():
    spec = importlib.util.spec_from_file_location("crashdiag_package_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = _load_tool()
FUNCTIONS = package.function_names()


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r


def source_files() -> set[str]:
    """What of shared/crashdiag belongs in a zip, as zip names."""
    return {
        "crashdiag/" + p.relative_to(SHARED).as_posix()
        for p in SHARED.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in package.CODE_SUFFIXES
    }


def unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def import_in_clean_interpreter(code_dir: Path, function: str, *, with_venv: bool, env: dict[str, str] | None = None) -> str:
    """Import index.py from ``code_dir`` with nothing else on sys.path (but the stdlib and,
    with_venv, this venv's site-packages for the third-party packages)."""
    paths = [str(code_dir)]
    if with_venv:
        paths.append(sysconfig.get_paths()["purelib"])
    code = (
        "import sys\n"
        f"sys.path[:0] = {paths!r}\n"
        "import index, crashdiag\n"
        f"assert crashdiag.__file__.startswith({str(code_dir)!r}), crashdiag.__file__\n"
        "assert callable(index.handler)\n"
        f"print('ecs-sdk-loaded' if {ECS_SDK!r} in sys.modules else 'ecs-sdk-absent')\n"
    )
    if function == "on_ecs_event" and with_venv:
        # everything the function does on a cold start before its first event: build the
        # ingest pipeline (store + FC invoker); still no ECS SDK
        code += (
            "from crashdiag.pipeline.runtime import pipeline_for\n"
            "pipeline_for('ingest')\n"
            f"print('ecs-sdk-loaded' if {ECS_SDK!r} in sys.modules else 'ecs-sdk-absent')\n"
        )
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=code_dir, env={**{"PATH": os.environ.get("PATH", "")}, **(env or {})})
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- the fast variant: our code only ----------------------------------------------------------


@pytest.fixture(scope="module")
def code_zips(tmp_path_factory) -> Path:
    """Code-only zips, with bytecode compiled by this interpreter (so that path is tested)."""
    out = tmp_path_factory.mktemp("dist")
    run_tool("--no-deps", "--out", str(out), "--build-dir", str(tmp_path_factory.mktemp("build")),
             "--python-version", HERE_VERSION)
    return out


def test_one_zip_per_function(code_zips):
    assert FUNCTIONS == ["audit", "collect", "diagnose", "fleet", "notify", "notify_flush", "on_ecs_event", "reconcile"]
    assert sorted(p.name for p in code_zips.glob("*.zip")) == sorted(package.zip_name(f) for f in FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_zip_layout(code_zips, function):
    with zipfile.ZipFile(code_zips / package.zip_name(function)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names), "entries in a fixed order"
        assert all(i.date_time == package.ZIP_DATE for i in infos)
        assert zf.read("index.py") == (ROOT / "functions" / function / "index.py").read_bytes()
        sources = {n for n in names if not n.endswith(".pyc")}
        compiled = {n for n in sources if n.startswith("crashdiag/reports/templates_compiled/")}
        assert sources - compiled == {"index.py"} | source_files()
        # the page writers carry their templates precompiled, with the Jinja2 version that did it
        assert bool(compiled) == (function in package.FUNCTIONS_THAT_RENDER)
        if compiled:
            assert "crashdiag/reports/templates_compiled/JINJA2_VERSION" in compiled
            assert sum(n.endswith(".py") for n in compiled) == len(list((SHARED / "reports" / "templates").glob("*.j2")))
        for needed in ("crashdiag/classifier/rules/rule.schema.json", "crashdiag/pipeline/guest/collect-crash-log.sh",
                       "crashdiag/pipeline/guest/audit-readiness.sh",
                       "crashdiag/reports/templates/incident.html.j2", "crashdiag/reports/templates/fleet.html.j2"):
            assert needed in names
        assert any(n.startswith("crashdiag/classifier/rules/") and n.endswith(".yaml") for n in names)
        assert not any(n.startswith(("tests/", "functions/", "shared/")) for n in names)
        # bytecode: only for the target version, one pyc per module, nothing else cached
        tag = f"cpython-{HERE_VERSION.replace('.', '')}"
        pycs = {n for n in names if n.endswith(".pyc")}
        assert all("/__pycache__/" in "/" + n and f".{tag}.pyc" in n for n in pycs)
        py = {n for n in names if n.endswith(".py")}
        assert len(pycs) == len(py)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_imports_from_the_zip(code_zips, function, tmp_path):
    code_dir = unzip(code_zips / package.zip_name(function), tmp_path / "code")
    env = {"CRASHDIAG_STORE_DIR": str(tmp_path / "store"), "CRASHDIAG_FC_ENDPOINT": "http://127.0.0.1:9"}  # never contacted
    out = import_in_clean_interpreter(code_dir, function, with_venv=True, env=env).split()
    # cold start: only collect pays for the ECS SDK, and not at import time either
    assert set(out) == {"ecs-sdk-absent"}, out


PAGES = (
    "from crashdiag.reports import pages\n"
    "env = pages.environment()\n"
    "def compile_(*a, **k):\n"
    "    print('compiled-at-run-time')\n"
    "    return type(env).compile(env, *a, **k)\n"
    "env.compile = compile_\n"
    "from crashdiag.reports.html_report import render_html\n"
    "from crashdiag.reports.fleet import render_fleet_html, empty_index\n"
    "assert 'id=\"summary\"' in render_html({'diagnosis': {'kind': 'none'}}) and 'ecs-crashdiag' in render_fleet_html(empty_index())\n"
    "print('rendered')\n"
)


@pytest.mark.parametrize("function", sorted(package.FUNCTIONS_THAT_RENDER))
def test_page_writers_render_from_their_precompiled_templates(code_zips, function, tmp_path):
    code_dir = unzip(code_zips / package.zip_name(function), tmp_path / "code")
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[str(code_dir), sysconfig.get_paths()['purelib']]!r}\n" + PAGES],
                       capture_output=True, text=True, timeout=120, cwd=code_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["rendered"]
    # under another Jinja2 version the precompiled modules are not trusted: the templates are compiled
    (code_dir / "crashdiag" / "reports" / "templates_compiled" / "JINJA2_VERSION").write_text("0.0\n")
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[str(code_dir), sysconfig.get_paths()['purelib']]!r}\n" + PAGES],
                       capture_output=True, text=True, timeout=120, cwd=code_dir)
    assert r.returncode == 0, r.stderr
    assert "compiled-at-run-time" in r.stdout.split() and r.stdout.split()[-1] == "rendered"


def test_build_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        run_tool("--no-deps", "--no-bytecode", "--function", "collect", "--out", str(out),
                 "--build-dir", str(tmp_path / f"build-{out.name}"))
    assert (a / "collect.zip").read_bytes() == (b / "collect.zip").read_bytes()


def test_no_bytecode_without_an_interpreter_of_the_target_version(tmp_path):
    other = "3.9" if HERE_VERSION != "3.9" else "3.8"
    r = run_tool("--no-deps", "--function", "diagnose", "--python-version", other, "--out", str(tmp_path),
                 "--build-dir", str(tmp_path / "build"))
    assert "no Python" in r.stderr
    with zipfile.ZipFile(tmp_path / "diagnose.zip") as zf:
        assert not any(n.endswith(".pyc") or "__pycache__" in n for n in zf.namelist())


def test_missing_data_files_stop_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "REQUIRED_DATA", (*package.REQUIRED_DATA, "guest/not-there.sh"))
    with pytest.raises(package.PackageError, match="not-there"):
        package.stage_code("collect", tmp_path / "stage", allow_incomplete=False)
    package.stage_code("collect", tmp_path / "stage", allow_incomplete=True)  # warns only
    assert (tmp_path / "stage" / "index.py").is_file()


def test_requirements_split_keeps_the_ecs_sdk_for_collect():
    base, full = package.requirements()
    names = {package.canonical(r) for r in full}
    assert package.COLLECT_ONLY <= names
    assert {package.canonical(r) for r in base} == names - package.COLLECT_ONLY
    for needed in ("oss2", "aliyun-fc2", "tenacity", "pyyaml", "fastjsonschema"):
        assert needed in {package.canonical(r) for r in base}
    assert package.FUNCTIONS_WITH_ECS == {"collect", "audit"}


def test_only_the_page_writers_carry_the_template_engine():
    assert package.FUNCTIONS_THAT_RENDER == {"collect", "diagnose", "fleet", "reconcile"}
    for function in FUNCTIONS:
        names = {package.canonical(r) for r in package.requirements_for(function)}
        assert ("jinja2" in names) == (function in package.FUNCTIONS_THAT_RENDER), function
        assert (package.COLLECT_ONLY <= names) == (function in package.FUNCTIONS_WITH_ECS), function
        assert {"oss2", "pyyaml", "fastjsonschema"} <= names


def test_canonical_names():
    assert package.canonical("PyYAML>=6.0") == "pyyaml"
    assert package.canonical("alibabacloud_tea>=0.3.3 (from alibabacloud-tea-util)") == "alibabacloud-tea"
    assert package.canonical("moto[server]>=5.0") == "moto"


# -- the real build -------------------------------------------------------------------------


def _dist_zips() -> dict[str, Path] | None:
    zips = {f: ROOT / "dist" / package.zip_name(f) for f in FUNCTIONS}
    return zips if all(p.is_file() for p in zips.values()) else None


@pytest.fixture(scope="module")
def real_zips() -> dict[str, Path]:
    if os.environ.get("CRASHDIAG_TEST_PACKAGE") == "1":
        r = subprocess.run(["make", "package"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stdout + r.stderr
    zips = _dist_zips()
    if zips is None:
        pytest.skip("no dist/*.zip: run `make package` or set CRASHDIAG_TEST_PACKAGE=1 (needs PyPI)")
    return zips


@pytest.mark.parametrize("function", FUNCTIONS)
def test_real_zip_carries_its_dependencies(real_zips, function, tmp_path):
    with zipfile.ZipFile(real_zips[function]) as zf:
        names = zf.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"index.py", "crashdiag", "oss2", "tenacity", "yaml", "fastjsonschema", "fc2"} <= tops
    assert (ECS_SDK in tops) == (function in package.FUNCTIONS_WITH_ECS)
    assert ("jinja2" in tops) == ("markupsafe" in tops) == (function in package.FUNCTIONS_THAT_RENDER)
    assert "bin" not in tops
    want = package.DEFAULT_PYTHON_VERSION.replace(".", "")
    for n in names:
        m = package._EXT_TAG.search(n)
        assert not m or m.group(1) == want, f"{n} is built for another Python"
        if n.endswith(".pyc"):
            assert f".cpython-{want}." in n, n
    # the handler module imports with nothing but the zip on sys.path
    code_dir = unzip(real_zips[function], tmp_path / "code")
    assert import_in_clean_interpreter(code_dir, function, with_venv=False).split() == ["ecs-sdk-absent"]
