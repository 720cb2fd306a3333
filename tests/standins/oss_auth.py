"""How the OSS stand-in authenticates a request, written from OSS's documentation (not by
calling oss2's signer: a stand-in that shares the client's code would agree with any
mistake in it).

Sources, cited again beside each rule below:

- [V1-off]  "Guidelines for upgrading V1 signatures to V4 signatures": V1 is unavailable
  for accounts created from 2025-03-01 and buckets created from 2025-09-01.
  https://www.alibabacloud.com/help/en/oss/developer-reference/guidelines-for-upgrading-v1-signatures-to-v4-signatures
- [EC080]   0002-00000080: a request signed with V1 is answered 403.
  https://help.aliyun.com/en/oss/user-guide/0002-00000080
- [V4-hdr]  "Include a V4 signature in the Authorization header":
  https://help.aliyun.com/en/oss/developer-reference/recommend-to-use-signature-version-4
- [V4-url]  "(Recommended) V4 signatures in presigned URLs":
  https://help.aliyun.com/en/oss/developer-reference/add-signatures-to-urls
- [EC232]   0002-00000232: x-oss-expires must be 1..604800 (7 days).
  https://help.aliyun.com/en/oss/user-guide/0002-00000232
- [EC235]   0002-00000235: a V4 URL used more than 15 minutes before its x-oss-date.
  https://help.aliyun.com/en/oss/user-guide/0002-00000235
- [EC236]   0002-00000236: a V4 URL used after x-oss-date + x-oss-expires.
  https://alibabacloud.com/help/en/oss/support/0002-00000236
- [403]     "HTTP 403 errors" (AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId):
  https://www.alibabacloud.com/help/en/oss/how-to-troubleshoot-403-status-code-when-you-access-oss

The V4 rules, as those pages give them:

    CanonicalRequest = Method \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n
                       AdditionalHeaders \\n HashedPayload
    CanonicalURI     = UriEncode("/" + bucket + "/" + key), '/' left as is
    CanonicalQuery   = UriEncode(name)[=UriEncode(value)] sorted by name, joined by '&'
                       (a presigned URL's own x-oss-signature is not part of it)
    CanonicalHeaders = lowercase(name):trim(value)\\n for content-type, content-md5, every
                       x-oss-* header and each AdditionalHeaders name, sorted by name
    HashedPayload    = x-oss-content-sha256 (header form; UNSIGNED-PAYLOAD), UNSIGNED-PAYLOAD in a URL
    StringToSign     = "OSS4-HMAC-SHA256" \\n x-oss-date \\n Scope \\n hex(SHA256(CanonicalRequest))
    Scope            = <yyyymmdd>/<region>/oss/aliyun_v4_request
    SigningKey       = HMAC(HMAC(HMAC(HMAC("aliyun_v4" + secret, yyyymmdd), region), "oss"), "aliyun_v4_request")
    Signature        = hex(HMAC(SigningKey, StringToSign))

UriEncode keeps A-Z a-z 0-9 - _ . ~ and percent-encodes every other byte in upper-case
hex.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import unquote

ALGORITHM = "OSS4-HMAC-SHA256"
MAX_EXPIRES = 604800  # [EC232]
EARLY_SECONDS = 15 * 60  # [EC235]
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_DEFAULT_SIGNED = ("content-type", "content-md5")  # [V4-hdr] plus every x-oss-* header


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status, OSS's code, message and EC number."""

    status: int
    code: str
    message: str
    ec: str = ""


def uri_encode(text: str, keep_slash: bool) -> str:
    out = []
    for b in text.encode("utf-8"):
        if b in _UNRESERVED or (keep_slash and b == 0x2F):
            out.append(chr(b))
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _parse_query(raw: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a raw query string, in order."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    return pairs


def _headers(environ: dict) -> dict[str, str]:
    """The request's headers by lower-case name (WSGI keeps Content-Type/-Length apart)."""
    out = {}
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            out[k[5:].replace("_", "-").lower()] = v
    for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if k in environ:
            out[k.replace("_", "-").lower()] = environ[k]
    return out


def _canonical_request(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                       additional: list[str], payload_hash: str) -> str:
    # Path-style request (/<bucket>/<key>, what oss2 sends to an IP endpoint): the
    # canonical URI is "/" + bucket + "/" + key [V4-hdr]; a bucket-level request has
    # an empty key, so it ends in "/".
    bucket, _, key = path.lstrip("/").partition("/")
    uri = uri_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    encoded = sorted((uri_encode(k, False), uri_encode(v, False)) for k, v in query)
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in encoded)
    signed = sorted(name for name in headers
                    if name in _DEFAULT_SIGNED or name.startswith("x-oss-") or name in additional)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join([method, uri, canonical_query, canonical_headers, ";".join(additional), payload_hash])


def _signature(secret: str, date_time: str, scope: str, region: str, canonical: str) -> str:
    string_to_sign = "\n".join([ALGORITHM, date_time, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = hmac.new(("aliyun_v4" + secret).encode(), date_time[:8].encode(), hashlib.sha256).digest()
    for part in (region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_time(value: str) -> float | None:
    try:
        return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return None


class Verifier:
    """Checks one request against the keys it knows, the way a V4-only bucket does."""

    def __init__(self, region: str, keys: dict[str, str], tokens: dict[str, str]) -> None:
        self.region = region
        self.keys = keys  # access key id -> secret
        self.tokens = tokens  # access key id -> the STS token it must come with
        self.clock = time.time

    def check(self, environ: dict) -> tuple[str, Refusal | None]:
        """('V4-header' | 'V4-query' | 'V1' | 'anonymous', a refusal or None)."""
        headers = _headers(environ)
        raw_query = environ.get("QUERY_STRING", "")
        query = _parse_query(raw_query)
        names = {k for k, _ in query}
        auth = headers.get("authorization", "")
        # V1: "Authorization: OSS <id>:<sig>", or OSSAccessKeyId/Expires/Signature in the
        # URL. A bucket created from 2025-09-01 refuses it with 403 [V1-off] [EC080].
        if auth.startswith("OSS ") or "OSSAccessKeyId" in names:
            return "V1", Refusal(403, "AccessDenied",
                                 "The V1 signature is not supported for this bucket; use Signature V4.", "0002-00000080")
        if auth.startswith(ALGORITHM + " "):
            return "V4-header", self._check_header(environ, headers, query, auth[len(ALGORITHM) + 1:])
        if "x-oss-signature" in names or "x-oss-credential" in names:
            return "V4-query", self._check_query(environ, headers, query)
        # No signature at all: the bucket is private (template.yml AccessControl: private).
        return "anonymous", Refusal(403, "AccessDenied", "You have no right to access this object because of bucket acl.")

    # -- the two forms ---------------------------------------------------------------------

    def _check_header(self, environ: dict, headers: dict[str, str], query: list[tuple[str, str]], rest: str) -> Refusal | None:
        # "Credential=<id>/<date>/<region>/oss/aliyun_v4_request, AdditionalHeaders=a;b,
        # Signature=<hex>": fields separated by commas, key=value [V4-hdr].
        fields = dict(part.strip().partition("=")[::2] for part in rest.split(",") if part.strip())
        date_time = headers.get("x-oss-date", "")
        payload = headers.get("x-oss-content-sha256", "")
        if not (fields.get("Credential") and fields.get("Signature") and date_time and payload):
            return Refusal(403, "AccessDenied", "Authorization, x-oss-date and x-oss-content-sha256 are required for V4.")
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        canonical = _canonical_request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), query, headers,
                                       additional, payload)
        return self._verify(fields["Credential"], date_time, fields["Signature"], canonical, headers.get("x-oss-security-token", ""))

    def _check_query(self, environ: dict, headers: dict[str, str], query: list[tuple[str, str]]) -> Refusal | None:
        params = dict(query)
        if params.get("x-oss-signature-version") != ALGORITHM:
            return Refusal(403, "AccessDenied", "x-oss-signature-version must be OSS4-HMAC-SHA256.")
        date_time, expires = params.get("x-oss-date", ""), params.get("x-oss-expires", "")
        signed_at = _parse_time(date_time)
        if signed_at is None or not expires.isdigit():
            return Refusal(403, "AccessDenied", "x-oss-date and x-oss-expires are required.", "0002-00000215")
        # x-oss-expires is a lifetime in seconds, 1..604800 [EC232]; the URL is good from
        # 15 minutes before x-oss-date [EC235] until x-oss-date + x-oss-expires [EC236].
        if not 1 <= int(expires) <= MAX_EXPIRES:
            return Refusal(403, "AccessDenied", "x-oss-expires must be 1..604800 seconds.", "0002-00000232")
        now = self.clock()
        if now > signed_at + int(expires):
            return Refusal(403, "AccessDenied", "Request has expired.", "0002-00000236")
        if now < signed_at - EARLY_SECONDS:
            return Refusal(403, "AccessDenied", "Request is not valid yet.", "0002-00000235")
        additional = [h for h in params.get("x-oss-additional-headers", "").split(";") if h]
        unsigned = [(k, v) for k, v in query if k != "x-oss-signature"]
        canonical = _canonical_request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), unsigned, headers,
                                       additional, "UNSIGNED-PAYLOAD")
        return self._verify(params.get("x-oss-credential", ""), date_time, params.get("x-oss-signature", ""), canonical,
                            params.get("x-oss-security-token", ""))

    # -- shared ----------------------------------------------------------------------------

    def _verify(self, credential: str, date_time: str, signature: str, canonical: str, token: str) -> Refusal | None:
        parts = credential.split("/")
        if len(parts) != 5 or parts[3:] != ["oss", "aliyun_v4_request"] or parts[1] != date_time[:8]:
            return Refusal(403, "AccessDenied", "Invalid credential scope: <id>/<date>/<region>/oss/aliyun_v4_request.")
        key_id, date, region = parts[0], parts[1], parts[2]
        secret = self.keys.get(key_id)
        if secret is None:  # [403] InvalidAccessKeyId
            return Refusal(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
        expected_token = self.tokens.get(key_id)
        if expected_token is not None and token != expected_token:
            # An STS key comes with its token (x-oss-security-token); without it, or with
            # another, the key is not the one STS issued [403] (code as for an unknown key).
            return Refusal(403, "InvalidAccessKeyId", "The security token you provided is invalid.")
        # The bucket's own region signs: a request scoped to another region cannot match.
        scope = f"{date}/{self.region}/oss/aliyun_v4_request"
        want = _signature(secret, date_time, scope, self.region, canonical)
        if region != self.region or not hmac.compare_digest(want, signature):  # [403] SignatureDoesNotMatch
            return Refusal(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided. "
                           "Check your key and signing method.")
        return None
