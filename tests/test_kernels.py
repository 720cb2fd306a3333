from __future__ import annotations

import pytest

from crashdiag.classifier.kernels import fix_status, parse_release


@pytest.mark.parametrize(
    "release, build, stream, version",
    [
        ("3.10.0-1160.80.1.el7.x86_64", None, "el7", "3.10.0-1160.80.1.el7"),
        ("4.18.0-305.3.1.el8.x86_64", None, "el8", "4.18.0-305.3.1.el8"),
        ("2.6.32-504.16.2.el6.x86_64", None, "el6", "2.6.32-504.16.2.el6"),
        ("5.14.0-362.8.1.el9_3.x86_64", None, "el9", "5.14.0-362.8.1.el9_3"),
        ("4.19.91-27.al7.x86_64", None, "alinux2", "4.19.91-27.al7"),
        ("5.10.134-16.al8.x86_64", None, "alinux3", "5.10.134-16.al8"),
        ("5.4.0-122-generic", "#138-Ubuntu SMP Wed Jun 22 15:00:31 UTC 2022", "ubuntu", "5.4.0-122.138"),
        ("5.4.0-122-generic", None, "ubuntu", "5.4.0-122"),
        ("5.15.0-1019-aws", "#23~20.04.1-Ubuntu SMP", "ubuntu", "5.15.0-1019.23"),
        ("5.10.0-21-amd64", "#1 SMP Debian 5.10.162-1 (2023-01-21)", "debian", "5.10.162-1"),
        ("6.1.0-18-cloud-amd64", None, "debian", "6.1.0-18"),
        ("4.20.0-next-20190102", None, None, None),
    ],
)
def test_streams(release, build, stream, version):
    k = parse_release(release, build)
    assert (k.stream, k.version) == (stream, version)


def test_rpm_ordering_not_string_ordering():
    k = parse_release("3.10.0-1160.80.1.el7.x86_64")
    # 1160.80 < 1160.88 numerically per segment; string order would agree here, so check 9 < 10 too
    assert fix_status(k, {"el7": ["3.10.0-1160.88.1.el7"]}).status == "affected"
    k2 = parse_release("3.10.0-1160.100.1.el7.x86_64")
    assert fix_status(k2, {"el7": ["3.10.0-1160.88.1.el7"]}).status == "fixed"


def test_el8_dist_tag_suffix():
    fixed = {"el8": ["4.18.0-305.12.1.el8_4"]}
    assert fix_status(parse_release("4.18.0-305.3.1.el8.x86_64"), fixed).status == "affected"
    assert fix_status(parse_release("4.18.0-305.12.1.el8_4.x86_64"), fixed).status == "fixed"
    assert fix_status(parse_release("4.18.0-348.el8.x86_64"), fixed).status == "fixed"


def test_backport_lines():
    fixed = {"el7": ["3.10.0-957.27.2.el7", "3.10.0-1062.el7"]}
    status = lambda r: fix_status(parse_release(r), fixed).status  # noqa: E731
    assert status("3.10.0-957.21.3.el7.x86_64") == "affected"  # 7.6 line before its backport
    assert status("3.10.0-957.27.2.el7.x86_64") == "fixed"  # the 7.6 backport
    assert status("3.10.0-862.14.4.el7.x86_64") == "affected"  # older line
    assert status("3.10.0-1000.el7.x86_64") == "affected"  # between lines, before 1062
    assert status("3.10.0-1062.1.2.el7.x86_64") == "fixed"
    assert status("3.10.0-1160.el7.x86_64") == "fixed"


def test_ubuntu():
    fixed = {"ubuntu": ["5.4.0-123.139"]}
    assert fix_status(parse_release("5.4.0-122-generic", "#138-Ubuntu"), fixed).status == "affected"
    assert fix_status(parse_release("5.4.0-124-generic", "#140-Ubuntu"), fixed).status == "fixed"
    assert fix_status(parse_release("5.4.0-123-generic"), fixed).status == "unknown"  # upload unknown
    assert fix_status(parse_release("5.15.0-50-generic", "#56-Ubuntu"), fixed).status == "unknown"  # other line


def test_other_stream_and_upstream():
    assert fix_status(parse_release("5.10.134-16.al8.x86_64"), {"el7": ["3.10.0-1160.88.1.el7"]}).status == "unknown"
    assert fix_status(parse_release("3.10.0-1127.19.1.el7.x86_64"), {"upstream": ["4.18"]}).status == "affected"
    assert fix_status(parse_release("4.18.0-305.el8.x86_64"), {"upstream": ["4.18"]}).status == "fixed"
    assert fix_status(None, {"el7": ["3.10.0-1.el7"]}).status == "unknown"
    assert fix_status(parse_release("3.10.0-1.el7.x86_64"), None).status is None
