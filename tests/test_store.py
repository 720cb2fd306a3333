"""The ObjectStore contract, run against LocalStore (a directory) and OssStore (oss2 over
real HTTP to the local OSS stand-in), plus what only OSS has: metadata, presigned URLs,
transient faults and credential-free errors."""

# Tests take the imported fixtures oss_standin / oss_store as parameters, which pyflakes
# reads as redefining an unused import (ruff cannot see pytest's fixture lookup).
# ruff: noqa: F811

from __future__ import annotations

import io
import threading
import urllib.error
import urllib.request

import oss2
import pytest

from crashdiag.cloud.credentials import Credentials
from crashdiag.cloud.oss_store import PUT_URL_CONTENT_TYPE, OssStore
from crashdiag.cloud.store import (
    AlreadyExists,
    LocalStore,
    NotFound,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)
from fixtures_oss import CREDENTIALS, REGION, oss_standin, oss_store  # noqa: F401

CREDENTIALS_PAIR = (CREDENTIALS.access_key_id, CREDENTIALS.access_key_secret)

SENTINEL_SECRET = "SENTINEL-secret-3f9c1a77d2"
SENTINEL_TOKEN = "SENTINEL-sts-token-81be0c4e"

UNSAFE_KEYS = ["../escape", "a/../../b", "/abs/key", "a//b", "a/./b", "", "a/", "sp ace", "new\nline"]


@pytest.fixture(params=["local", "oss"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("oss_store")


def _http(url: str, data: bytes | None = None, method: str = "GET", headers: dict | None = None) -> bytes:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


# -- the contract, both stores -------------------------------------------------------------


def test_put_get_exists(store):
    assert not store.exists("incidents/r/i-1/e/event.json")
    store.put("incidents/r/i-1/e/event.json", b'{"a": 1}', content_type="application/json")
    assert store.exists("incidents/r/i-1/e/event.json")
    assert store.get("incidents/r/i-1/e/event.json") == b'{"a": 1}'
    assert not store.exists("incidents/r/i-1/e")  # a "directory" is not an object


def test_plain_put_overwrites(store):
    store.put("k/x.txt", b"one")
    store.put("k/x.txt", b"two")
    assert store.get("k/x.txt") == b"two"


def test_empty_and_binary_objects(store):
    store.put("k/empty", b"")
    store.put("k/bin", bytes(range(256)) * 4)
    assert store.get("k/empty") == b""
    assert store.get("k/bin") == bytes(range(256)) * 4


def test_odd_but_safe_key_characters(store):
    key = "odd/a+b=c(d)'e!f*g_h-i.txt"
    store.put(key, b"x")
    assert store.get(key) == b"x"
    assert store.list("odd/") == [key]


def test_get_missing_is_not_found(store):
    with pytest.raises(NotFound):
        store.get("nothing/here.json")


def test_size_without_reading(store):
    store.put("k/sized", b"x" * 1000)
    store.put("k/empty", b"")
    assert store.size("k/sized") == 1000
    assert store.size("k/empty") == 0
    with pytest.raises(NotFound):
        store.size("k/missing")


BODY = bytes(range(256)) * 4 + b"tail-of-the-log\n"  # 1,040 bytes


@pytest.mark.parametrize(("start", "length", "expect"), [
    (0, 10, BODY[:10]),
    (1000, 40, BODY[1000:1040]),
    (1030, 100, BODY[1030:]),  # the end past the object: cut at its end
    (len(BODY), 10, b""),  # the start at the end: nothing
    (5000, 10, b""),  # the start past the end: nothing
    (7, 0, b""),
    (0, len(BODY), BODY),
])
def test_get_range_reads_at_most_the_window(store, start, length, expect):
    store.put("k/log", BODY)
    assert store.get_range("k/log", start, length) == expect


def test_put_from_a_file(store, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(BODY * 1500)
    with open(src, "rb") as f:
        store.put("k/from-file", f, content_type="text/plain")
    assert store.get("k/from-file") == BODY * 1500


def test_get_range_missing_and_bad_ranges(store):
    with pytest.raises(NotFound):
        store.get_range("k/missing", 0, 10)
    store.put("k/log", BODY)
    with pytest.raises(ValueError):
        store.get_range("k/log", -1, 10)
    with pytest.raises(ValueError):
        store.get_range("k/log", 0, -5)


def test_get_to_file_streams_the_object(store, tmp_path):
    store.put("k/log", BODY * 3000)  # ~3 MB: several pieces
    with open(tmp_path / "whole", "wb") as out:
        assert store.get_to_file("k/log", out) == len(BODY) * 3000
    assert (tmp_path / "whole").read_bytes() == BODY * 3000
    with open(tmp_path / "head", "wb") as out:
        assert store.get_to_file("k/log", out, max_bytes=100) == 100
    assert (tmp_path / "head").read_bytes() == BODY[:100]
    with open(tmp_path / "tail", "wb") as out:
        assert store.get_to_file("k/log", out, max_bytes=10_000, start=len(BODY) * 3000 - 50) == 50
    assert (tmp_path / "tail").read_bytes() == (BODY * 3000)[-50:]
    with open(tmp_path / "past", "wb") as out:
        assert store.get_to_file("k/log", out, start=len(BODY) * 3000 + 1) == 0
    store.put("k/empty", b"")
    with open(tmp_path / "empty", "wb") as out:
        assert store.get_to_file("k/empty", out, max_bytes=100) == 0
    with pytest.raises(NotFound), open(tmp_path / "none", "wb") as out:
        store.get_to_file("k/missing", out)


def test_list_is_a_string_prefix_and_sorted(store):
    keys = ["a/1", "a/2/x", "a/2/y", "ab/1", "b/1"]
    for k in reversed(keys):
        store.put(k, b"-")
    assert store.list("a/") == ["a/1", "a/2/x", "a/2/y"]
    assert store.list("a") == ["a/1", "a/2/x", "a/2/y", "ab/1"]
    assert store.list("a/2/") == ["a/2/x", "a/2/y"]
    assert store.list("") == sorted(keys)
    assert store.list("zzz/") == []


def test_list_pages_past_one_hundred(store):
    many = [f"many/{i:04d}.json" for i in range(120)]
    for k in many:
        store.put(k, b"{}")
    store.put("other/1", b"-")
    assert store.list("many/") == many


def test_if_absent_creates_once(store):
    store.put("claim/event.json", b"first", if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put("claim/event.json", b"second", if_absent=True)
    assert store.get("claim/event.json") == b"first"


def test_if_absent_race_has_exactly_one_winner(store):
    for round_ in range(20):
        key = f"race/{round_}/event.json"
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def writer(name: str, key: str = key, barrier: threading.Barrier = barrier, outcome: dict = outcome) -> None:
            barrier.wait()
            try:
                store.put(key, name.encode(), if_absent=True)
                outcome[name] = "won"
            except AlreadyExists:
                outcome[name] = "lost"

        threads = [threading.Thread(target=writer, args=(n,)) for n in ("w1", "w2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcome.values()) == ["lost", "won"], outcome
        winner = next(n for n, o in outcome.items() if o == "won")
        assert store.get(key) == winner.encode()


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.url(key, 60)


def test_url_fetches_the_object(store):
    store.put("reports/r.md", b"# report\n", content_type="text/markdown")
    assert _http(store.url("reports/r.md", 300)) == b"# report\n"


def test_put_url_uploads_when_offered(store):
    url = store.put_url("incidents/r/i-1/e/crash.log", 300)
    if url is None:  # allowed: the store has no presigned uploads (LocalStore)
        assert isinstance(store, LocalStore)
        return
    _http(url, data=b"kernel panic\n", method="PUT", headers={"Content-Type": PUT_URL_CONTENT_TYPE})
    assert store.get("incidents/r/i-1/e/crash.log") == b"kernel panic\n"


# -- OSS only --------------------------------------------------------------------------------


def test_oss_unsafe_put_url_and_list_prefix_refused(oss_store):
    with pytest.raises(ValueError):
        oss_store.put_url("../x", 60)
    for prefix in ("../", "/abs", "a//"):
        with pytest.raises(ValueError):
            oss_store.list(prefix)
    with pytest.raises(ValueError):
        oss_store.url("k", 0)


def test_oss_list_really_pages(oss_store, oss_standin):
    for i in range(120):
        oss_store.put(f"p/{i:03d}", b"-")
    before = len(oss_standin.requests)
    assert len(oss_store.list("p/")) == 120
    listings = [r for r in oss_standin.requests[before:] if r.startswith("GET ") and "list-type=2" in r]
    assert len(listings) == 2


def test_oss_ranged_read_sends_the_standard_range_behaviour(oss_store, oss_standin):
    oss_store.put("k/log", BODY)
    assert oss_store.get_range("k/log", 1030, 100) == BODY[1030:]
    assert oss_standin.ranges[-1] == ("bytes=1030-1129", "standard", False)


def test_oss_stand_in_ignores_an_invalid_range_like_oss(oss_store, oss_standin):
    """Without x-oss-range-behavior: standard, OSS answers a range past the end with 200 and
    the whole object (the stand-in models it; S3 would cut it or answer 416)."""
    oss_store.put("k/log", BODY)
    bucket = oss_store.bucket
    past_end = bucket.get_object("k/log", byte_range=(1030, 2000))
    assert past_end.status == 200 and past_end.read() == BODY
    start_past = bucket.get_object("k/log", byte_range=(5000, 6000))
    assert start_past.status == 200 and start_past.read() == BODY
    inside = bucket.get_object("k/log", byte_range=(10, 19))
    assert inside.status == 206 and inside.read() == BODY[10:20]
    # ...and with the header, as documented: an end past the end is cut, a start past it is 416
    cut = bucket.get_object("k/log", byte_range=(1030, 2000), headers={"x-oss-range-behavior": "standard"})
    assert cut.status == 206 and cut.read() == BODY[1030:]
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket.get_object("k/log", byte_range=(5000, 6000), headers={"x-oss-range-behavior": "standard"})
    assert e.value.status == 416 and e.value.code == "InvalidRange"


def test_oss_stand_in_serves_the_first_of_several_ranges_and_ignores_a_long_suffix(oss_store):
    """OSS serves only the first of several ranges (S3 sends the whole object), and takes a
    suffix longer than the object for an invalid range without the standard behaviour."""
    oss_store.put("k/log", BODY)
    bucket = oss_store.bucket
    several = bucket.get_object("k/log", headers={"Range": "bytes=0-9,20-29"})
    assert several.status == 206 and several.read() == BODY[:10]
    with pytest.raises(oss2.exceptions.ServerError) as e:  # the 416 page's cause, with the standard behaviour
        bucket.get_object("k/log", headers={"Range": "bytes=0-9,20-29", "x-oss-range-behavior": "standard"})
    assert e.value.status == 416 and e.value.code == "InvalidRange"
    suffix = bucket.get_object("k/log", byte_range=(None, 40))
    assert suffix.status == 206 and suffix.read() == BODY[-40:]
    too_long = bucket.get_object("k/log", byte_range=(None, 5000))
    assert too_long.status == 200 and too_long.read() == BODY
    malformed = bucket.get_object("k/log", headers={"Range": "byte=0-9"})
    assert malformed.status == 200 and malformed.read() == BODY


@pytest.mark.parametrize("start", [0, 1000])
def test_oss_ranged_read_keeps_its_bound_when_the_whole_object_comes(oss_store, oss_standin, start):
    """A server that ignores the range sends everything: get_range still returns the bytes it
    asked for, from the right offset, and no more."""
    oss_store.put("k/log", BODY * 2000)  # ~2 MB
    oss_standin.serve_whole_next(1)
    assert oss_store.get_range("k/log", start, 16) == (BODY * 2000)[start:start + 16]
    assert oss_standin.ranges[-1][2]  # the whole object was sent (200)
    oss_standin.serve_whole_next(1)
    out = io.BytesIO()
    assert oss_store.get_to_file("k/log", out, max_bytes=5000, start=start) == 5000
    assert out.getvalue() == (BODY * 2000)[start:start + 5000]


def test_oss_forbid_overwrite_header_and_409(oss_store):
    oss_store.put("c/k", b"a", if_absent=True)
    with pytest.raises(oss2.exceptions.ServerError) as e:
        oss_store.bucket.put_object("c/k", b"b", headers={"x-oss-forbid-overwrite": "true"})
    assert (e.value.status, e.value.code) == (409, "FileAlreadyExists")
    assert e.value.request_id


def test_oss_user_metadata_round_trip(oss_store):
    bucket = oss_store.bucket
    bucket.put_object("m/obj", b"data", headers={"x-oss-meta-incident-id": "e-123", "Content-Type": "text/plain"})
    head = bucket.head_object("m/obj")
    assert head.headers["x-oss-meta-incident-id"] == "e-123"
    got = bucket.get_object("m/obj")
    assert got.headers["x-oss-meta-incident-id"] == "e-123"
    assert got.headers["Content-Type"] == "text/plain"
    assert got.read() == b"data"
    assert bucket.get_object_meta("m/obj").headers["Content-Length"] == "4"


def test_oss_listing_parses_with_oss2_v1_and_v2(oss_store):
    for i in range(5):
        oss_store.put(f"l/{i}", b"x" * i)
    v1 = [o.key for o in oss2.ObjectIterator(oss_store.bucket, prefix="l/", max_keys=2)]
    v2 = list(oss2.ObjectIteratorV2(oss_store.bucket, prefix="l/", max_keys=2))
    assert v1 == [o.key for o in v2] == [f"l/{i}" for i in range(5)]
    assert {o.type for o in v2} == {"Normal"}
    assert [o.size for o in v2] == [0, 1, 2, 3, 4]
    dirs = list(oss2.ObjectIteratorV2(oss_store.bucket, prefix="", delimiter="/"))
    assert [o.key for o in dirs if o.is_prefix()] == ["l/"]


def _refusal(url: str, data: bytes | None = None, method: str = "GET", headers: dict | None = None) -> tuple[int, str, str]:
    """(status, Code, EC) of a request the stand-in refuses."""
    import xml.etree.ElementTree as ET

    with pytest.raises(urllib.error.HTTPError) as e:
        _http(url, data, method, headers)
    body = ET.fromstring(e.value.read())
    return e.value.code, body.findtext("Code"), body.findtext("EC") or ""


def test_oss_every_request_and_url_is_signed_v4(oss_store, oss_standin):
    oss_store.put("v/k", b"x", if_absent=True)
    oss_store.get("v/k")
    oss_store.exists("v/k")
    oss_store.list("v/")
    assert _http(oss_store.url("v/k", 60)) == b"x"
    _http(oss_store.put_url("v/up", 60), b"y", "PUT", {"Content-Type": PUT_URL_CONTENT_TYPE})
    assert oss_store.get("v/up") == b"y"
    assert set(oss_standin.signed) == {"V4-header", "V4-query"} and "V1" not in oss_standin.signed
    for url in (oss_store.url("v/k", 60), oss_store.put_url("v/up", 60)):
        assert "x-oss-signature-version=OSS4-HMAC-SHA256" in url and "OSSAccessKeyId" not in url


def test_oss_v1_signatures_are_refused_like_a_new_bucket(oss_store, oss_standin):
    """V1 (header or presigned URL) gets 403 with OSS's error body, whatever the key."""
    v1 = oss2.Bucket(oss2.Auth(*CREDENTIALS_PAIR), oss_standin.endpoint, oss_store.bucket.bucket_name)
    with pytest.raises(oss2.exceptions.AccessDenied) as e:
        v1.put_object("v1/k", b"x")
    assert (e.value.status, e.value.code, e.value.ec) == (403, "AccessDenied", "0002-00000080")
    with pytest.raises(oss2.exceptions.AccessDenied):
        v1.head_object("v1/k")  # HEAD: the error comes in x-oss-err
    oss_store.put("v1/k", b"x")
    assert _refusal(v1.sign_url("GET", "v1/k", 60)) == (403, "AccessDenied", "0002-00000080")
    assert oss_standin.signed.count("V1") == 3
    # and through our store: a readable refusal, not a traceback of oss2's
    store = OssStore(v1)
    with pytest.raises(StoreRefused) as refused:
        store.get("v1/k")
    assert str(refused.value).startswith("OSS refused the request: AccessDenied")
    assert "EC 0002-00000080" in str(refused.value)


def test_oss_v4_signature_is_verified(oss_store, oss_standin):
    oss_store.put("s/k", b"x")
    wrong = OssStore.connect(oss_standin.endpoint, oss_store.bucket.bucket_name, Credentials(CREDENTIALS.access_key_id, "nope"),
                             region=REGION)
    with pytest.raises(StoreRefused) as e:
        wrong.get("s/k")
    assert e.value.code == "SignatureDoesNotMatch" and e.value.status == 403
    other_region = OssStore.connect(oss_standin.endpoint, oss_store.bucket.bucket_name, CREDENTIALS, region="cn-beijing")
    with pytest.raises(StoreRefused, match="SignatureDoesNotMatch"):
        other_region.exists("s/k")
    unknown = OssStore.connect(oss_standin.endpoint, oss_store.bucket.bucket_name, Credentials("LTAI-unknown", "x"), region=REGION)
    with pytest.raises(StoreRefused, match="InvalidAccessKeyId"):
        unknown.put("s/k2", b"y")
    # a presigned URL whose signature, key or signed header was changed
    url = oss_store.url("s/k", 60)
    assert _refusal(url[:-4] + "0000")[:2] == (403, "SignatureDoesNotMatch")
    assert _refusal(url.replace("/s/k?", "/s/K?"))[:2] == (403, "SignatureDoesNotMatch")
    put = oss_store.put_url("s/up", 60)
    assert _refusal(put, b"z", "PUT", {"Content-Type": "text/plain"})[:2] == (403, "SignatureDoesNotMatch")
    assert _refusal(oss_standin.endpoint + f"/{oss_store.bucket.bucket_name}/s/k")[:2] == (403, "AccessDenied")  # anonymous
    assert not oss_store.exists("s/up") and not oss_store.exists("s/k2")


def test_oss_expired_presigned_url_is_refused(oss_store, oss_standin):
    oss_store.put("e/k", b"x")
    url = oss_store.url("e/k", 60)
    assert _http(url) == b"x"
    oss_standin.advance_clock(61)
    assert _refusal(url) == (403, "AccessDenied", "0002-00000236")
    oss_standin.advance_clock(-16 * 60)  # used long before it was signed
    assert _refusal(url) == (403, "AccessDenied", "0002-00000235")


def test_oss_presigned_urls_live_at_most_seven_days(oss_store, oss_standin):
    oss_store.put("w/k", b"x")
    assert _http(oss_store.url("w/k", 604800)) == b"x"
    with pytest.raises(ValueError, match="7 days"):
        oss_store.url("w/k", 604801)
    with pytest.raises(ValueError, match="7 days"):
        oss_store.put_url("w/k", 8 * 24 * 3600)
    # the stand-in refuses a longer one, as OSS does (0002-00000232)
    too_long = oss_store.bucket.sign_url("GET", "w/k", 604801)
    assert _refusal(too_long) == (403, "AccessDenied", "0002-00000232")


def test_oss_sts_token_is_sent_and_checked(oss_store, oss_standin):
    oss_standin.add_key("STS.key", "sts-secret", "sts-token-1")
    name = oss_store.bucket.bucket_name
    good = OssStore.connect(oss_standin.endpoint, name, Credentials("STS.key", "sts-secret", "sts-token-1"), region=REGION)
    good.put("t/k", b"x")
    assert _http(good.url("t/k", 60)) == b"x"
    for token in ("", "sts-token-2"):
        bad = OssStore.connect(oss_standin.endpoint, name, Credentials("STS.key", "sts-secret", token), region=REGION)
        with pytest.raises(StoreRefused, match="InvalidAccessKeyId"):
            bad.get("t/k")


def test_oss_injected_5xx_is_store_unavailable(oss_store, oss_standin):
    oss_store.put("f/k", b"x")
    for call in (lambda: oss_store.put("f/k2", b"y"), lambda: oss_store.get("f/k"), lambda: oss_store.exists("f/k")):
        oss_standin.fail_next(1, status=503)
        with pytest.raises(StoreUnavailable):
            call()
    oss_standin.fail_next(1, status=500)
    with pytest.raises(StoreUnavailable):
        oss_store.get("f/k")
    assert not oss_store.exists("f/k2")  # the refused put wrote nothing
    assert oss_store.get("f/k") == b"x"  # faults are used up


def test_oss_list_retries_a_page_then_gives_up(oss_store, oss_standin):
    oss_store.put("g/k", b"x")
    oss_standin.fail_next(2)
    assert oss_store.list("g/") == ["g/k"]  # oss2's iterator retried the page
    oss_standin.fail_next(3)
    with pytest.raises(StoreUnavailable):
        oss_store.list("g/")


def test_oss_timeout_and_refused_connection_are_unavailable(oss_store, oss_standin):
    slow = OssStore(oss2.Bucket(oss_store.bucket.auth, oss_standin.endpoint, oss_store.bucket.bucket_name, connect_timeout=0.3,
                                region=REGION))
    oss_standin.delay_next(1, 1.5)
    with pytest.raises(StoreUnavailable):
        slow.get("nothing")
    closed = OssStore.connect("http://127.0.0.1:9", "some-bucket", CREDENTIALS, region=REGION, timeout=2)
    with pytest.raises(StoreUnavailable):
        closed.exists("k")


def test_oss_connect_refuses_a_bad_bucket_name():
    with pytest.raises(ValueError):
        OssStore.connect("http://127.0.0.1:9", "b", CREDENTIALS, region=REGION)


def test_oss_missing_bucket_is_an_error_not_not_found(oss_standin):
    store = OssStore.connect(oss_standin.endpoint, "no-such-bucket", CREDENTIALS, region=REGION, timeout=5)
    with pytest.raises(StoreError) as e:
        store.get("k")
    assert not isinstance(e.value, NotFound)
    assert "NoSuchBucket" in str(e.value)


@pytest.mark.parametrize("token", [None, SENTINEL_TOKEN])
def test_oss_errors_never_carry_credentials(oss_standin, token):
    oss_standin.create_bucket("secret-test")
    oss_standin.add_key("visible-key-id", SENTINEL_SECRET, token)
    creds = Credentials("visible-key-id", SENTINEL_SECRET, token or "")
    store = OssStore.connect(oss_standin.endpoint, "secret-test", creds, region=REGION, timeout=0.3)
    store.put("s/k", b"x")
    raised: list[BaseException] = []

    def expect(exc_type, call):
        with pytest.raises(exc_type) as e:
            call()
        raised.append(e.value)

    expect(NotFound, lambda: store.get("s/missing"))
    expect(AlreadyExists, lambda: store.put("s/k", b"y", if_absent=True))
    oss_standin.fail_next(1)
    expect(StoreUnavailable, lambda: store.get("s/k"))
    oss_standin.delay_next(1, 1.0)
    expect(StoreUnavailable, lambda: store.get("s/k"))
    expect(StoreError, lambda: OssStore.connect(oss_standin.endpoint, "gone", creds, region=REGION).get("k"))
    expect(StoreUnavailable, lambda: OssStore.connect("http://127.0.0.1:9", "bkt", creds, region=REGION).get("k"))
    wrong = Credentials("visible-key-id", "not-the-" + SENTINEL_SECRET, token or "")
    expect(StoreError, lambda: OssStore.connect(oss_standin.endpoint, "secret-test", wrong, region=REGION).get("s/k"))
    for exc in raised:
        text = f"{exc} {exc!r} {exc.args}"
        assert SENTINEL_SECRET not in text
        assert SENTINEL_TOKEN not in text
        assert exc.__cause__ is None and exc.__suppress_context__


def test_report_links_use_the_link_endpoint_and_key(oss_standin):  # noqa: F811
    """Links people open are signed with the link key for the link endpoint; the store's
    own calls keep the function's (STS) credentials. Fetched for real through the stand-in."""
    import urllib.parse
    import urllib.request

    from crashdiag.cloud.oss_store import OssStore

    oss_standin.create_bucket("linkbucket")
    oss_standin.add_key("sts-key-id", "sts-secret", "sts-token-abc")
    oss_standin.add_key("link-key-id", "link-key-secret")
    internal = oss_standin.endpoint
    public = internal.replace("127.0.0.1", "localhost")
    store = OssStore.connect(internal, "linkbucket", Credentials("sts-key-id", "sts-secret", "sts-token-abc"), region=REGION,
                             link_endpoint=public, link_key=("link-key-id", "link-key-secret"))
    store.put("incidents/cn-hangzhou/i-a/e-1/report.html", b"<p>report</p>")
    link = store.url("incidents/cn-hangzhou/i-a/e-1/report.html", 3600)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert link.startswith(public + "/") and query["x-oss-credential"][0].startswith("link-key-id/")
    assert query["x-oss-signature-version"] == ["OSS4-HMAC-SHA256"]
    assert "x-oss-security-token" not in query  # a long-lived key: the link outlives the STS token
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(link, timeout=10) as resp:
        assert resp.read() == b"<p>report</p>"
    guest = store.put_url("incidents/cn-hangzhou/i-a/e-1/guest-upload.log", 900)
    assert guest.startswith(internal + "/")  # the guest uploads over the internal endpoint
