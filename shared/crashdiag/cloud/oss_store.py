"""``ObjectStore`` over Alibaba Cloud OSS, through ``oss2``.

``oss2`` is imported when a store is built, not when this module is imported: the
classifier and the local replay never pay its ~0.2 s / 47 MB.

Error mapping (every call):

- 409 ``FileAlreadyExists`` (a ``put(..., if_absent=True)`` found the key) -> ``AlreadyExists``
- 404 ``NoSuchKey`` (or a bodyless 404 on HEAD)                          -> ``NotFound``
- 5xx, 429, timeouts, refused or reset connections, a torn download    -> ``StoreUnavailable``
- anything else (403, NoSuchBucket, 400 ...)                           -> ``StoreError``

Messages carry the operation, the key, the HTTP status, the OSS error code and the
request id: never the exception text of ``oss2``/``requests`` (which may hold a URL)
and never a credential. Exceptions are raised ``from None`` so a logged traceback
does not drag the original along either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import AlreadyExists, NotFound, StoreError, StoreUnavailable, check_key

if TYPE_CHECKING:
    import oss2

# A presigned PUT URL signs its Content-Type (OSS V1 puts it in the string to sign): the
# uploader must send exactly this header, e.g. ``curl -H 'Content-Type: application/octet-stream' -T file URL``.
PUT_URL_CONTENT_TYPE = "application/octet-stream"

_FORBID_OVERWRITE = "x-oss-forbid-overwrite"


def _check_prefix(prefix: str) -> str:
    """A list prefix is safe when some safe key could start with it ('' and 'a/' are)."""
    check_key(prefix + "x")
    return prefix


class OssStore:
    """Objects in one OSS bucket. Build with ``OssStore(oss2.Bucket(...))`` or ``OssStore.connect``."""

    def __init__(self, bucket: oss2.Bucket, link_bucket: oss2.Bucket | None = None) -> None:
        """``link_bucket`` signs the links people open (``url``): the public endpoint and,
        ideally, a long-lived key, where ``bucket`` talks to the internal endpoint with the
        function's short-lived STS credentials (a link signed with those dies with them)."""
        import oss2  # lazily: see the module docstring
        import requests  # a dependency of oss2; a torn download surfaces as a bare requests error

        self._oss2 = oss2
        self._requests = requests
        self.bucket = bucket
        self.link_bucket = link_bucket or bucket

    @classmethod
    def connect(
        cls,
        endpoint: str,
        bucket_name: str,
        access_key_id: str,
        access_key_secret: str,
        security_token: str | None = None,
        *,
        timeout: float = 30.0,
        link_endpoint: str | None = None,
        link_key: tuple[str, str] | None = None,
    ) -> OssStore:
        """A store on ``bucket_name`` at ``endpoint`` (e.g. ``https://oss-cn-hangzhou-internal.aliyuncs.com``).

        ``security_token`` (the STS token Function Compute hands a function through
        ``ALIBABA_CLOUD_SECURITY_TOKEN``) selects ``StsAuth``. ``timeout`` bounds each
        HTTP call (oss2 uses it for both connect and read).
        """
        import oss2

        # Signature V1 on purpose: OSS still accepts it, and the local stand-in the tests
        # use (moto's S3 server behind a dialect shim) answers V4-signed requests
        # (oss2.AuthV4) with 500. V1 lets the same code run against both.
        if security_token:
            auth: Any = oss2.StsAuth(access_key_id, access_key_secret, security_token)
        else:
            auth = oss2.Auth(access_key_id, access_key_secret)
        try:
            bucket = oss2.Bucket(auth, endpoint, bucket_name, connect_timeout=timeout)
            link_bucket = None
            if link_endpoint or link_key:
                link_auth = oss2.Auth(*link_key) if link_key else auth
                link_bucket = oss2.Bucket(link_auth, link_endpoint or endpoint, bucket_name, connect_timeout=timeout)
        except oss2.exceptions.ClientError:
            raise ValueError(f"invalid OSS endpoint {endpoint!r} or bucket name {bucket_name!r}") from None
        return cls(bucket, link_bucket)

    # -- the ObjectStore protocol ------------------------------------------------------

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream", if_absent: bool = False) -> None:
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

    # -- helpers -----------------------------------------------------------------------

    def _sign(self, method: str, key: str, ttl: int, headers: dict[str, str] | None = None, bucket=None) -> str:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        # slash_safe keeps '/' readable in the URL; the V1 signature covers the raw key either way.
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
        return StoreError(f"{where}: {detail}")
