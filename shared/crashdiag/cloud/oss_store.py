"""``ObjectStore`` over Alibaba Cloud OSS, through ``oss2``.

``oss2`` is imported when a store is built, not when this module is imported: the
classifier and the local replay never pay its ~0.2 s / 47 MB.

Every request and every presigned URL is signed with OSS Signature V4
(OSS4-HMAC-SHA256, oss2 >= 2.18.4 ``ProviderAuthV4`` with the bucket's region): OSS no
longer accepts V1 for buckets created from 2025-09-01 or accounts created from
2025-03-01 ("Guidelines for upgrading V1 signatures to V4 signatures",
https://www.alibabacloud.com/help/en/oss/developer-reference/guidelines-for-upgrading-v1-signatures-to-v4-signatures),
and template.yml creates a new bucket. A V4 presigned URL lives at most 7 days
(``x-oss-expires`` 1..604800, error 0002-00000232). The credentials are read from a
``CredentialSource`` on every request, so a refreshed STS token is used as soon as the
next invocation hands it over (crashdiag.cloud.credentials).

Error mapping (every call):

- 409 ``FileAlreadyExists`` (a ``put(..., if_absent=True)`` found the key) -> ``AlreadyExists``
- 404 ``NoSuchKey`` (or a bodyless 404 on HEAD)                          -> ``NotFound``
- 416 ``InvalidRange`` on a ranged read (it starts past the object's end)  -> no bytes (``get_range``, ``get_to_file``)
- 5xx, 429, timeouts, refused or reset connections, a torn download    -> ``StoreUnavailable``
- any other 4xx (403 AccessDenied, SignatureDoesNotMatch, NoSuchBucket ...) -> ``StoreRefused``,
  whose message starts "OSS refused the request: <Code>" and says what to check

Messages carry the operation, the key, the HTTP status, the OSS error code and the
request id: never the exception text of ``oss2``/``requests`` (which may hold a URL)
and never a credential. Exceptions are raised ``from None`` so a logged traceback
does not drag the original along either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

from .credentials import Credentials, CredentialSource, as_source
from .store import (
    AlreadyExists,
    NotFound,
    Skipping,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    check_key,
    check_range,
    copy_bounded,
    read_bounded,
)

if TYPE_CHECKING:
    import oss2

# A presigned PUT URL signs its Content-Type (V4 signs content-type, content-md5 and every
# x-oss-* header by default; oss2/auth.py DEFAULT_SIGNED_HEADERS): the uploader must send
# exactly this header, e.g. ``curl -H 'Content-Type: application/octet-stream' -T file URL``.
PUT_URL_CONTENT_TYPE = "application/octet-stream"

_FORBID_OVERWRITE = "x-oss-forbid-overwrite"

# Without this header OSS ignores a Range it finds invalid (its end or start past the
# object's end, a suffix longer than the object) and answers 200 with the WHOLE object;
# with it, a range past the end is cut to the end (206) and one starting past the end is
# refused (416 InvalidRange). "How to obtain OSS resources by segmenting HTTP Range
# requests", https://help.aliyun.com/en/oss/how-to-obtain-oss-resources-by-segmenting-http-range-requests
# ("Compatible behavior"), and https://www.alibabacloud.com/help/en/oss/user-guide/http-status-code-416.
# get_range sends it and still keeps no more than it asked for, whatever comes back.
_RANGE_BEHAVIOR = "x-oss-range-behavior"

# The longest a V4 presigned URL may live: x-oss-expires is 1..604800 seconds (OSS error
# 0002-00000232, https://help.aliyun.com/en/oss/user-guide/0002-00000232).
MAX_URL_TTL = 7 * 24 * 3600

# What to check when OSS refuses a request (4xx), by error code: the message a person
# reads in the log, the handler's result or the incident's failure record.
_REFUSAL_HINTS = {
    "AccessDenied": "check that the function's RAM role allows this action on the bucket and that "
                    "requests are signed V4 for the bucket's region (CRASHDIAG_REGION)",
    "SignatureDoesNotMatch": "the V4 signature did not match: check the AccessKey secret and that "
                             "CRASHDIAG_REGION is the bucket's region",
    "InvalidAccessKeyId": "the AccessKey id is unknown or its STS token expired: the function's "
                          "credentials must be current (they are read on every invocation)",
    "SecurityTokenExpired": "the STS token expired: the function's credentials must be current",
    "NoSuchBucket": "the bucket does not exist: check OSS_BUCKET and OSS_ENDPOINT",
}
_DEFAULT_HINT = "check the bucket name, endpoint, region and the function's RAM role"


def _check_prefix(prefix: str) -> str:
    """A list prefix is safe when some safe key could start with it ('' and 'a/' are)."""
    check_key(prefix + "x")
    return prefix


class OssStore:
    """Objects in one OSS bucket. Build with ``OssStore(oss2.Bucket(...))`` or ``OssStore.connect``."""

    def __init__(self, bucket: oss2.Bucket, link_bucket: oss2.Bucket | None = None,
                 public_bucket: oss2.Bucket | None = None) -> None:
        """``link_bucket`` signs the links people open (``url``): the public endpoint and,
        ideally, a long-lived key, where ``bucket`` talks to the internal endpoint with the
        function's short-lived STS credentials (a link signed with those dies with them)."""
        import oss2  # lazily: see the module docstring
        import requests  # a dependency of oss2; a torn download surfaces as a bare requests error

        self._oss2 = oss2
        self._requests = requests
        self.bucket = bucket
        self.link_bucket = link_bucket or bucket
        # the same bucket and credentials on the public endpoint: upload URLs for a guest in
        # another region, which cannot reach the internal endpoint (put_url_public)
        self.public_bucket = public_bucket

    @classmethod
    def connect(
        cls,
        endpoint: str,
        bucket_name: str,
        credentials: CredentialSource | Credentials,
        *,
        region: str,
        timeout: float = 30.0,
        link_endpoint: str | None = None,
        link_key: tuple[str, str] | None = None,
        link_cname: bool = False,
        public_endpoint: str | None = None,
    ) -> OssStore:
        """A store on ``bucket_name`` at ``endpoint`` (e.g. ``https://oss-cn-hangzhou-internal.aliyuncs.com``)
        in ``region`` (e.g. ``cn-hangzhou``: the V4 signing scope names it).

        ``credentials`` is read on every request (a ``CredentialSource`` the handler
        refreshes per invocation; fixed ``Credentials`` in tests and replay); a security
        token goes out as ``x-oss-security-token``. ``timeout`` bounds each HTTP call
        (oss2 uses it for both connect and read). ``link_endpoint`` / ``link_key`` sign
        the links people open (see ``__init__``); ``link_cname``: ``link_endpoint`` is a
        custom domain bound to the bucket (links are ``https://<domain>/<key>``).
        ``public_endpoint`` (default: ``endpoint`` without ``-internal``, when it is an
        ``oss-<region>-internal.aliyuncs.com`` one) signs upload URLs for guests in other
        regions (``put_url_public``).
        """
        import oss2

        if not region:
            raise ValueError("OSS V4 signing needs the bucket's region (CRASHDIAG_REGION, e.g. cn-hangzhou)")
        auth = oss2.ProviderAuthV4(_provider(oss2, as_source(credentials)))
        try:
            bucket = oss2.Bucket(auth, endpoint, bucket_name, connect_timeout=timeout, region=region)
            link_bucket = None
            if link_endpoint or link_key:
                link_auth = oss2.ProviderAuthV4(_provider(oss2, as_source(Credentials(*link_key)))) if link_key else auth
                link_bucket = oss2.Bucket(link_auth, link_endpoint or endpoint, bucket_name, connect_timeout=timeout,
                                          region=region, is_cname=bool(link_cname and link_endpoint))
            public = public_endpoint or public_endpoint_of(endpoint)
            public_bucket = oss2.Bucket(auth, public, bucket_name, connect_timeout=timeout, region=region) if public else None
        except oss2.exceptions.ClientError:
            raise ValueError(f"invalid OSS endpoint {endpoint!r} or bucket name {bucket_name!r}") from None
        return cls(bucket, link_bucket, public_bucket)

    # -- the ObjectStore protocol ------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str = "application/octet-stream",
            if_absent: bool = False) -> None:
        """PutObject; ``data`` is bytes or a binary file, which oss2 streams from where it
        stands (oss2/http.py ``_convert_request_body``: a seekable file is sent from its
        position with its remaining length)."""
        check_key(key)
        headers = {"Content-Type": content_type}
        if if_absent:
            # OSS refuses the write with 409 FileAlreadyExists when the key exists; the
            # check and the write are one atomic step on the server.
            headers[_FORBID_OVERWRITE] = "true"
        try:
            self.bucket.put_object(key, data, headers=headers)
        except self._oss2.exceptions.OssError as e:
            if getattr(e, "status", None) == 409 and getattr(e, "code", "") == "FileAlreadyExists":
                raise AlreadyExists(key) from None
            raise self._translate(e, "put", key) from None

    def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return self.bucket.get_object(key).read()
        except self._oss2.exceptions.OssError as e:
            raise self._translate(e, "get", key) from None
        except self._requests.RequestException as e:
            # The status line came back but the body broke off mid-stream: oss2 does not wrap this.
            raise StoreUnavailable(f"oss get {key!r}: download interrupted ({type(e).__name__})") from None

    def size(self, key: str) -> int:
        """The object's length from HeadObject's Content-Length, without reading it."""
        check_key(key)
        try:
            length = self.bucket.head_object(key).content_length
        except self._oss2.exceptions.NotFound as e:
            if getattr(e, "code", "") in ("", "NoSuchKey"):  # HEAD: a 404 may come without a code
                raise NotFound(key) from None
            raise self._translate(e, "size", key) from None
        except self._oss2.exceptions.OssError as e:
            raise self._translate(e, "size", key) from None
        if length is None:
            raise StoreError(f"oss size {key!r}: HeadObject gave no Content-Length")
        return int(length)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """At most ``length`` bytes from offset ``start`` (b"" past the end): GetObject with
        ``Range: bytes=start-end`` and ``x-oss-range-behavior: standard``. Whatever the server
        sends (a 200 with the whole object, a longer body), no more than ``length`` bytes
        past ``start`` are read off the connection, which is then closed."""
        check_key(key)
        check_range(start, length)
        if length == 0:
            return b""
        opened = self._open_range(key, start, length, "get_range")
        if opened is None:
            return b""
        result, reader = opened
        try:
            return read_bounded(reader.read, length)
        except self._requests.RequestException as e:
            raise StoreUnavailable(f"oss get_range {key!r}: download interrupted ({type(e).__name__})") from None
        finally:
            result.close()

    def get_to_file(self, key: str, out: BinaryIO, max_bytes: int | None = None, start: int = 0) -> int:
        """Stream the object from offset ``start`` (``max_bytes`` at most) into ``out``, a piece
        at a time; returns the number of bytes written. A body that ends short of what the
        server announced is a torn download (StoreUnavailable), as in ``get``."""
        check_key(key)
        check_range(start, max_bytes or 0)
        if max_bytes == 0:
            return 0
        opened = self._open_range(key, start, max_bytes, "get")
        if opened is None:
            return 0
        result, reader = opened
        try:
            written = copy_bounded(reader.read, out, max_bytes)
        except self._requests.RequestException as e:
            raise StoreUnavailable(f"oss get {key!r}: download interrupted ({type(e).__name__})") from None
        finally:
            result.close()
        announced = result.content_length
        if announced is not None:
            if result.status != 206:  # the whole object came: what was wanted of it
                announced = max(0, announced - start)
            if written < min(announced, max_bytes if max_bytes is not None else announced):
                raise StoreUnavailable(f"oss get {key!r}: download interrupted ({written} of {announced} bytes)")
        return written

    def _open_range(self, key: str, start: int, length: int | None, op: str) -> tuple[Any, Skipping] | None:
        """GetObject from ``start`` (``length`` bytes, or to the end) with the standard range
        behaviour: the response and a reader positioned at ``start``; None when the object
        ends at or before ``start``."""
        whole = start == 0 and length is None
        try:
            if whole:
                result = self.bucket.get_object(key)
            else:
                last = None if length is None else start + length - 1
                result = self.bucket.get_object(key, byte_range=(start, last), headers={_RANGE_BEHAVIOR: "standard"})
        except self._oss2.exceptions.OssError as e:
            if getattr(e, "status", None) == 416:  # InvalidRange: the start is at or past the end
                return None
            raise self._translate(e, op, key) from None
        skip = start
        if result.status == 206:
            first = _range_start(result.content_range)
            if first != start:
                result.close()
                raise StoreError(f"oss {op} {key!r}: asked for bytes from {start}, got {result.content_range!r}")
            skip = 0
        elif result.content_length is not None and result.content_length <= start:
            result.close()
            return None  # the whole object came back, and it ends before start
        # else a 200: the whole object (the range ignored); the bytes before start are dropped
        return result, Skipping(result.read, skip)

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            self.bucket.head_object(key)
        except self._oss2.exceptions.NotFound as e:
            # HEAD has no body: a 404 may come without a code (or with x-oss-err's).
            if getattr(e, "code", "") in ("", "NoSuchKey"):
                return False
            raise self._translate(e, "exists", key) from None
        except self._oss2.exceptions.OssError as e:
            raise self._translate(e, "exists", key) from None
        return True

    def delete(self, key: str) -> None:
        """DeleteObject; OSS answers 204 whether or not the object existed."""
        check_key(key)
        try:
            self.bucket.delete_object(key)
        except self._oss2.exceptions.OssError as e:
            raise self._translate(e, "delete", key) from None

    def list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted; pages through ListObjectsV2.

        oss2's iterator itself retries a page that fails with 5xx (3 attempts) before
        the error reaches us.
        """
        _check_prefix(prefix)
        try:
            keys = [obj.key for obj in self._oss2.ObjectIteratorV2(self.bucket, prefix=prefix, max_keys=100)]
        except self._oss2.exceptions.OssError as e:
            raise self._translate(e, "list", prefix) from None
        return sorted(keys)

    def url(self, key: str, ttl: int) -> str:
        """A presigned GET URL valid for ``ttl`` seconds, for people (see ``link_bucket``)."""
        check_key(key)
        return self._sign("GET", key, ttl, bucket=self.link_bucket)

    def put_url(self, key: str, ttl: int) -> str | None:
        """A presigned PUT URL valid for ``ttl`` seconds; send ``Content-Type: PUT_URL_CONTENT_TYPE``."""
        check_key(key)
        return self._sign("PUT", key, ttl, headers={"Content-Type": PUT_URL_CONTENT_TYPE})

    def put_url_public(self, key: str, ttl: int) -> str | None:
        """``put_url`` on the bucket's public endpoint, for a guest in another region (the
        internal endpoint answers only inside the bucket's region: "OSS domain names",
        https://www.alibabacloud.com/help/en/oss/user-guide/oss-domain-names); None when
        no public endpoint is known."""
        if self.public_bucket is None:
            return None
        check_key(key)
        return self._sign("PUT", key, ttl, headers={"Content-Type": PUT_URL_CONTENT_TYPE}, bucket=self.public_bucket)

    # -- helpers -----------------------------------------------------------------------

    def _sign(self, method: str, key: str, ttl: int, headers: dict[str, str] | None = None, bucket=None) -> str:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_URL_TTL:
            raise ValueError(f"ttl must be 1..{MAX_URL_TTL} seconds (a V4 presigned URL lives at most 7 days), not {ttl!r}")
        # slash_safe keeps '/' readable in the URL; the V4 canonical URI keeps '/' unescaped too.
        return (bucket or self.bucket).sign_url(method, key, ttl, headers=headers, slash_safe=True)

    def _translate(self, e: Any, op: str, key: str) -> StoreError:
        """One of our errors for an oss2 error, with a message free of credentials and URLs."""
        status = getattr(e, "status", None)
        code = getattr(e, "code", "") or ""
        request_id = getattr(e, "request_id", "") or ""
        where = f"oss {op} {key!r}"
        if isinstance(e, self._oss2.exceptions.RequestError):
            # Connection refused/reset, DNS, timeout: the inner exception's text names the
            # URL, so only its type is kept.
            inner = type(getattr(e, "exception", e)).__name__
            return StoreUnavailable(f"{where}: request failed ({inner})")
        if isinstance(e, self._oss2.exceptions.InconsistentError):
            return StoreUnavailable(f"{where}: CRC mismatch, transfer corrupted")
        if not isinstance(status, int) or status < 0:
            return StoreError(f"{where}: refused by the client library ({type(e).__name__})")
        detail = f"HTTP {status}" + (f" {code}" if code else "") + (f" (request id {request_id})" if request_id else "")
        if status == 404 and code in ("", "NoSuchKey"):
            return NotFound(key)
        if status >= 500 or status == 429:
            return StoreUnavailable(f"{where}: {detail}")
        return _refused(e, op, key, status, code, request_id)


def _refused(e: Any, op: str, key: str, status: int, code: str, request_id: str) -> StoreRefused:
    """'OSS refused the request: AccessDenied (HTTP 403, put 'k', ...): what to check'.

    OSS's own Message is kept (a sentence from the server, no credentials: those stay in
    our requests), cut short; the EC code names the documentation page of the error.
    """
    message = " ".join(str(getattr(e, "message", "") or "").split())[:200]
    ec = str(getattr(e, "ec", "") or "")
    facts = [f"HTTP {status}", f"{op} {key!r}"] + ([f"EC {ec}"] if ec else []) + ([f"request id {request_id}"] if request_id else [])
    hint = _REFUSAL_HINTS.get(code, _DEFAULT_HINT)
    text = f"OSS refused the request: {code or 'HTTP ' + str(status)}" + (f" {message}" if message else "")
    return StoreRefused(f"{text} ({', '.join(facts)}); {hint}", code=code or str(status), status=status)


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes 0-9/44``; None when absent or malformed."""
    try:
        return int(str(content_range).split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _provider(oss2: Any, source: CredentialSource) -> Any:
    """An oss2 credentials provider that reads ``source`` on every signed request."""

    class _SourceProvider(oss2.credentials.CredentialsProvider):
        def get_credentials(self) -> Any:
            c = source.get()
            return oss2.credentials.Credentials(c.access_key_id, c.access_key_secret, c.security_token or None)

    return _SourceProvider()


def public_endpoint_of(endpoint: str) -> str | None:
    """``https://oss-cn-hangzhou-internal.aliyuncs.com`` -> ``https://oss-cn-hangzhou.aliyuncs.com``;
    None for an endpoint of another shape (a custom domain, a local stand-in)."""
    import re

    m = re.match(r"^(https?://)?(oss-[a-z0-9-]+?)-internal(\.aliyuncs\.com)/?$", endpoint)
    if not m:
        return None
    return f"{m.group(1) or 'https://'}{m.group(2)}{m.group(3)}"
