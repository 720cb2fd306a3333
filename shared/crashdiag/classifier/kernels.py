"""Kernel releases: which distribution stream a release belongs to, and whether it
already carries a fix.

Versions are compared the way the package managers compare them: ``rpm-vercmp``
(a pure-Python port of rpm's rpmvercmp) for RPM streams, ``python-debian`` for
Debian and Ubuntu. Both are imported only when a comparison is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text

_ARCH = re.compile(r"\.(?:x86_64|aarch64|i[3-6]86|noarch|ppc64le|s390x|loongarch64)$")
_RPM_STREAMS = (
    (re.compile(r"\.el(\d+)"), "el{}"),
    (re.compile(r"\.al7\b"), "alinux2"),
    (re.compile(r"\.al8\b"), "alinux3"),
    (re.compile(r"\.alnx4\b|\.al9\b"), "alinux4"),
    (re.compile(r"\.an(\d+)"), "anolis{}"),
    (re.compile(r"\.fc\d+"), "fedora"),
    (re.compile(r"\.oe\d+"), "openeuler"),
)
_UBUNTU = re.compile(r"^(?P<base>\d+\.\d+\.\d+)-(?P<abi>\d+)-(?P<flavour>[a-z][\w-]*)$")
_DEBIAN = re.compile(r"^(?P<base>\d+\.\d+\.\d+)-(?P<abi>\d+)-(?P<flavour>amd64|arm64|cloud-amd64|cloud-arm64|rt-amd64|686(?:-pae)?)$")
_DEB_BUILD = re.compile(r"#(?P<upload>\d+)(?:~[\w.]+)?-Ubuntu")
_DEB_DEBIAN_BUILD = re.compile(r"Debian (?P<version>\d[\w.+~-]*)")


@dataclass(frozen=True)
class KernelRelease:
    release: str  # as printed by uname -r
    stream: str | None  # el7, alinux3, ubuntu, ... or None when unknown
    version: str | None  # comparable package version (rpm "V-R", deb "V-R.U")
    base: str | None  # upstream base, e.g. 3.10.0

    def to_json(self) -> dict:
        return {"release": self.release, "stream": self.stream, "version": self.version, "base": self.base}


def parse_release(release: str | None, build: str | None = None) -> KernelRelease | None:
    """Identify a kernel release. ``build`` is the ``#138-Ubuntu ...`` part if known."""
    if not release:
        return None
    rel = _ARCH.sub("", release.strip())
    base_m = re.match(r"^(\d+\.\d+(?:\.\d+)?)", rel)
    base = base_m.group(1) if base_m else None
    for rx, name in _RPM_STREAMS:
        m = rx.search(rel)
        if m:
            stream = name.format(*m.groups()) if m.groups() else name
            return KernelRelease(release, stream, rel, base)
    m = _DEBIAN.match(rel)
    if m and not (build and "Ubuntu" in build):
        version = None
        if build:
            dm = _DEB_DEBIAN_BUILD.search(build)
            version = dm.group("version") if dm else None
        return KernelRelease(release, "debian", version or f"{m.group('base')}-{m.group('abi')}", base)
    m = _UBUNTU.match(rel)
    if m:
        upload = None
        if build:
            um = _DEB_BUILD.search(build)
            upload = um.group("upload") if um else None
        version = f"{m.group('base')}-{m.group('abi')}" + (f".{upload}" if upload else "")
        return KernelRelease(release, "ubuntu", version, base)
    if re.search(r"-default$", rel):
        return KernelRelease(release, "sles", rel, base)
    return KernelRelease(release, None, None, base)


def _rpm_cmp(a: str, b: str) -> int:
    from rpm_vercmp import vercmp

    av, _, ar = a.partition("-")
    bv, _, br = b.partition("-")
    return vercmp(av, bv) or vercmp(ar, br)


def _deb_cmp(a: str, b: str) -> int:
    from debian.debian_support import version_compare

    r = version_compare(a, b)
    return (r > 0) - (r < 0)


def compare(stream: str, a: str, b: str) -> int:
    """Order two versions of one stream: -1, 0 or 1."""
    if stream in ("ubuntu", "debian"):
        return _deb_cmp(a, b)
    return _rpm_cmp(a, b)


def _branch(stream: str, version: str) -> tuple:
    """The maintenance line a version belongs to: el7's 3.10.0-957.x are one line
    (RHEL 7.6), 3.10.0-1062.x the next; Ubuntu's line is the upstream base."""
    base, _, rel = version.partition("-")
    if stream in ("ubuntu", "debian"):
        return (base,)
    first = re.match(r"\d+", rel)
    return (base, int(first.group(0)) if first else 0)


@dataclass(frozen=True)
class FixStatus:
    status: str | None  # affected, fixed, unknown, or None when the rule has no fixed version
    detail: str
    fixed_version: str | None = None


def fix_status(kernel: KernelRelease | None, fixed_in: dict[str, list[str]] | None) -> FixStatus:
    """Does the running kernel already carry the fix listed in ``fixed_in``?

    Per stream, ``fixed_in`` lists the first fixed version on each maintenance line
    (a z-stream backport and the minor release that took the fix). A running kernel
    is fixed when it is at or past the listed version of its own line, or past every
    listed line; ``upstream`` compares the base version only.
    """
    if not fixed_in:
        return FixStatus(None, "the rule records no fixed kernel version")
    if kernel is None:
        return FixStatus("unknown", "the log does not say which kernel was running")
    stream = kernel.stream
    if stream in fixed_in and kernel.version:
        versions = sorted(fixed_in[stream], key=_SortKey(stream))
        mine = _branch(stream, kernel.version)
        candidates = [v for v in versions if _branch(stream, v)[: len(mine)] >= mine]
        if stream in ("ubuntu", "debian"):
            candidates = [v for v in versions if _branch(stream, v) == mine]
            if not candidates:
                return FixStatus(
                    "unknown",
                    f"a fix is recorded for the {stream} {', '.join(sorted({_branch(stream, v)[0] for v in versions}))} line(s), not for {kernel.base}",
                )
        if not candidates:
            target = versions[-1]
            return FixStatus("fixed", f"{kernel.release} is newer than every fixed {stream} line (>= {target})", target)
        target = candidates[0]
        if stream in ("ubuntu", "debian") and "." not in kernel.version.partition("-")[2]:
            # Only the ABI number is known (no "#NNN-Ubuntu" build tag): equal ABI is undecidable.
            if kernel.version.partition("-")[2] == target.partition("-")[2].split(".")[0]:
                return FixStatus("unknown", f"{kernel.release}: upload number unknown, the fix is in {target}", target)
        if compare(stream, kernel.version, target) >= 0:
            return FixStatus("fixed", f"{kernel.release} already includes the fix (fixed in {target})", target)
        return FixStatus("affected", f"{kernel.release} predates the fix ({stream} {target})", target)
    if "upstream" in fixed_in and kernel.base:
        target = sorted(fixed_in["upstream"], key=_SortKey("upstream"))[0]
        if _rpm_cmp(kernel.base, target) >= 0:
            return FixStatus("fixed", f"kernel {kernel.base} is at or past upstream {target}, where the fix landed", target)
        return FixStatus("affected", f"kernel {kernel.base} predates upstream {target}, where the fix landed", target)
    where = ", ".join(sorted(fixed_in))
    return FixStatus("unknown", f"fixed versions are recorded for {where}, not for {stream or 'this kernel'}")


class _SortKey:
    def __init__(self, stream: str) -> None:
        self.stream = stream

    def __call__(self, v: str):
        from functools import cmp_to_key

        return cmp_to_key(lambda a, b: compare(self.stream, a, b))(v)
