"""Build the pipeline's parts from settings: once per Function Compute instance, lazily.

Handlers call ``pipeline_for(stage, credentials)`` on every invocation; only the parts a
stage needs are built, once (the ingest function never imports the ECS SDK). The
credentials are another matter: FC's STS credentials expire (36 hours) and an instance
may outlive them, so each call hands this instance's ``CredentialSource`` the current
ones (the handler's ``context.credentials``, else the environment as it is now), and the
cached clients read that source on every request. Tests and replay build ``Pipeline``
directly with injected parts instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from ..cloud.credentials import Credentials, CredentialSource, as_source
from ..settings import Settings
from .stages import Pipeline

log = logging.getLogger("crashdiag.runtime")

_cache: dict[str, Any] = {}
_credentials = CredentialSource()  # this instance's current credentials (see the module docstring)

_OSS_ENDPOINT_REGION = re.compile(r"^(?:https?://)?oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com/?$")


def refresh_credentials(given: Any = None, settings: Settings | None = None) -> CredentialSource:
    """Per invocation: take ``given`` (a ``context.credentials``), else what ``settings``
    holds when the caller passed settings, else the environment as it is now; return the
    source the clients read."""
    creds = Credentials.of(given)
    if not creds:
        if settings is not None:
            creds = Credentials.of(Credentials(settings.access_key_id, settings.access_key_secret, settings.security_token))
        else:
            creds = Credentials.of(Credentials(*Settings.current_credentials()))
    _credentials.update(creds)
    return _credentials


def oss_region(settings: Settings) -> str:
    """The bucket's region for V4 signing: CRASHDIAG_REGION, else read off an OSS endpoint."""
    if settings.region:
        return settings.region
    m = _OSS_ENDPOINT_REGION.match(settings.oss_endpoint or "")
    if m:
        return m.group(1)
    raise ValueError("OSS requests are signed V4 for the bucket's region: set CRASHDIAG_REGION (e.g. cn-hangzhou)")


def build_store(settings: Settings, credentials: CredentialSource | Credentials | None = None):
    """The object store: OSS when OSS_BUCKET is set (signed V4 with ``credentials``, by
    default those in ``settings``), else a local directory."""
    if settings.oss_bucket:
        from ..cloud.oss_store import OssStore

        if credentials is None:
            credentials = Credentials(settings.access_key_id, settings.access_key_secret, settings.security_token)
        region = settings.oss_bucket_region or oss_region(settings)
        # An internal endpoint answers only inside its own region (OSS "Regions and endpoints",
        # https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints): a central
        # bucket elsewhere is reached, by the functions and by the guests' presigned uploads,
        # through its public endpoint.
        here = not settings.region or region == settings.region
        endpoint = settings.oss_endpoint or f"https://oss-{region}{'-internal' if here else ''}.aliyuncs.com"
        # Links for people: the public endpoint unless one is set (an explicit OSS_ENDPOINT
        # without OSS_LINK_ENDPOINT, as in tests, serves both).
        link_endpoint = settings.oss_link_endpoint or (None if settings.oss_endpoint else f"https://oss-{region}.aliyuncs.com")
        link_key = (settings.report_link_access_key_id, settings.report_link_access_key_secret) \
            if settings.report_link_access_key_id and settings.report_link_access_key_secret else None
        # A custom domain bound to the bucket opens report.html in the browser; OSS's own
        # domain serves it as a download (REPORT_LINK_DOMAIN, README).
        domain = settings.report_link_domain.strip().rstrip("/")
        if domain:
            link_endpoint = domain if "://" in domain else f"https://{domain}"
        return OssStore.connect(endpoint, settings.oss_bucket, credentials, region=region,
                                link_endpoint=link_endpoint, link_key=link_key, link_cname=bool(domain),
                                timeout=settings.oss_timeout)
    from ..cloud.store import LocalStore

    return LocalStore(settings.store_dir)


def build_ecs(settings: Settings, credentials: CredentialSource | Credentials | None = None):
    if settings.instances_dir:
        from ..cloud.simulate import SimulatedCloud

        return SimulatedCloud.from_dir(settings.instances_dir)
    from ..cloud.ecs_sdk import SdkEcsApi

    return SdkEcsApi.from_settings(settings, credentials=as_source(credentials) if credentials is not None else None)


def build_invoker(settings: Settings, credentials: CredentialSource | Credentials | None = None):
    if not settings.fc_endpoint:
        return None
    from ..cloud.invoke import Fc2Invoker

    if credentials is None:
        credentials = Credentials(settings.access_key_id, settings.access_key_secret, settings.security_token)
    stages = {settings.fc_diagnose_function: settings.fc_stage_service, settings.fc_notify_function: settings.fc_stage_service}
    return Fc2Invoker(settings.fc_endpoint, settings.fc_service, as_source(credentials), services=stages)


def build_notifier(settings: Settings, store, *, outbox_dir: str | None = None):
    """DingTalk and email as configured (urllib, smtplib: no SDK); ``outbox_dir`` (default
    CRASHDIAG_OUTBOX_DIR) stands in for a channel that is not configured."""
    from ..notify import build_notifier as build

    return build(settings, store, outbox_dir=settings.outbox_dir if outbox_dir is None else outbox_dir)


def _settings() -> Settings:
    if "settings" not in _cache:
        _cache["settings"] = Settings.from_env()
    return _cache["settings"]


def pipeline_for(stage: str, settings: Settings | None = None, credentials: Any = None) -> Pipeline:
    """The pipeline a handler uses, built on first use and kept for the instance's life;
    ``credentials`` (the handler's ``context.credentials``) refreshes what its clients sign with."""
    s = settings or _settings()
    source = refresh_credentials(credentials, settings)
    if stage not in _cache:
        ecs = build_ecs(s, source) if stage == "collect" else None
        invoker = build_invoker(s, source) if stage in ("ingest", "reconcile") else None
        store = build_store(s, source)
        notifier = build_notifier(s, store) if stage == "notify" else None
        _cache[stage] = Pipeline(store, ecs, invoker, s, notifier=notifier)
    return _cache[stage]


def store_for(settings: Settings | None = None, credentials: Any = None):
    """The object store alone (the fleet function), cached like ``pipeline_for``'s parts."""
    s = settings or _settings()
    source = refresh_credentials(credentials, settings)
    if "store" not in _cache:
        _cache["store"] = build_store(s, source)
    return _cache["store"]


def run_stage(stage: str, call: Callable[[], Any]) -> Any:
    """Run a handler's work; when OSS (or the store) refuses a request, end with one
    readable log line and a result that says what to fix, never a traceback: the refusal
    (403 AccessDenied, SignatureDoesNotMatch ...) will not go away by retrying."""
    from ..cloud.store import StoreRefused

    try:
        return call()
    except StoreRefused as exc:
        log.error("%s stopped: %s", stage, exc)
        return {"refused": str(exc), "stage": stage, "code": exc.code}
