"""All settings in one place: an explicit argument beats the environment, which beats
the default. Nothing else in the package reads ``os.environ``.

Every environment variable the code reads is listed in ``ENV`` (the template test
checks that template.yml sets no variable missing from it). Secrets are kept out of
``repr()`` so a settings object can be logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

LANGS = ("en", "zh")

# environment variable -> (field name, kind)
ENV: dict[str, tuple[str, type]] = {
    "CRASHDIAG_LANG": ("lang", str),
    "CRASHDIAG_REGION": ("region", str),
    "CRASHDIAG_STORE_DIR": ("store_dir", str),
    "CRASHDIAG_INSTANCES_DIR": ("instances_dir", str),
    "OSS_BUCKET": ("oss_bucket", str),
    "OSS_ENDPOINT": ("oss_endpoint", str),
    "ECS_ENDPOINT": ("ecs_endpoint", str),
    "CRASHDIAG_FC_ENDPOINT": ("fc_endpoint", str),
    "CRASHDIAG_FC_SERVICE": ("fc_service", str),
    "CRASHDIAG_FC_STAGE_SERVICE": ("fc_stage_service", str),
    "CRASHDIAG_COLLECT_FUNCTION": ("fc_collect_function", str),
    "COLLECT_WAIT_SECONDS": ("collect_wait_seconds", int),
    "COLLECT_COMMAND_TIMEOUT": ("collect_command_timeout", int),
    "COLLECT_POLL_SECONDS": ("collect_poll_seconds", float),
    "COLLECT_MAX_BYTES": ("collect_max_bytes", int),
    "LOG_MAX_BYTES": ("log_max_bytes", int),
    "DIAGNOSE_MAX_BYTES": ("diagnose_max_bytes", int),
    # waiting for a guest that is saving a kdump capture (docs/PIPELINE.md, "Waiting for the guest")
    "GUEST_WAIT_MINUTES": ("guest_wait_minutes", int),
    "CAPTURE_STALL_MINUTES": ("capture_stall_minutes", int),
    "EARLY_NOTICE": ("early_notice", bool),
    "UPLOAD_URL_TTL": ("upload_url_ttl", int),
    "REPORT_LINK_TTL": ("report_link_ttl", int),
    "ALIBABA_CLOUD_ACCESS_KEY_ID": ("access_key_id", str),
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ("access_key_secret", str),
    "ALIBABA_CLOUD_SECURITY_TOKEN": ("security_token", str),
    "ALIBABA_CLOUD_ACCOUNT_ID": ("account_id", str),
    # notify (docs/NOTIFY.md): DingTalk custom robot and email; unset = channel off
    "DINGTALK_WEBHOOK": ("dingtalk_webhook", str),
    "DINGTALK_SECRET": ("dingtalk_secret", str),
    "DINGTALK_KEYWORD": ("dingtalk_keyword", str),
    "DINGTALK_AT_MOBILES": ("dingtalk_at_mobiles", str),
    "DINGTALK_AT_ALL": ("dingtalk_at_all", bool),
    "SMTP_HOST": ("smtp_host", str),
    "SMTP_PORT": ("smtp_port", int),
    "SMTP_USER": ("smtp_user", str),
    "SMTP_PASSWORD": ("smtp_password", str),
    "SMTP_SECURITY": ("smtp_security", str),
    "MAIL_FROM": ("mail_from", str),
    "MAIL_TO": ("mail_to", str),
    "CRASHDIAG_OUTBOX_DIR": ("outbox_dir", str),
    "CRASHDIAG_REDACT": ("redact", bool),
    "CLASSIFY_BUDGET_SECONDS": ("classify_budget_seconds", float),
    "OSS_LINK_ENDPOINT": ("oss_link_endpoint", str),
    "REPORT_LINK_ACCESS_KEY_ID": ("report_link_access_key_id", str),
    "REPORT_LINK_ACCESS_KEY_SECRET": ("report_link_access_key_secret", str),
    "REPORT_LINK_DOMAIN": ("report_link_domain", str),
    "NOTIFY_TIMEOUT": ("notify_timeout", float),
    "NOTIFY_RATE_PER_MINUTE": ("notify_rate_per_minute", int),
    "NOTIFY_BURST": ("notify_burst", int),
    "NOTIFY_STORM_WINDOW": ("notify_storm_window", int),
    "NOTIFY_REPEAT_WINDOW": ("notify_repeat_window", int),
    "NOTIFY_FOLLOWUP_INTERVAL": ("notify_followup_interval", int),
    "NOTIFY_LEASE_SECONDS": ("notify_lease_seconds", int),
    "NOTIFY_MAX_ATTEMPTS": ("notify_max_attempts", int),
    # readiness audit (docs/PIPELINE.md, "The guest audit script")
    "CRASHDIAG_AUDIT_TAG": ("audit_tag", str),
    # crash safety (docs/PIPELINE.md): claims' leases, attempts, the reconciler's deadlines
    "COLLECT_LEASE_SECONDS": ("collect_lease_seconds", int),
    "DIAGNOSE_LEASE_SECONDS": ("diagnose_lease_seconds", int),
    "STAGE_MAX_ATTEMPTS": ("stage_max_attempts", int),
    "CRASHDIAG_DIAGNOSE_FUNCTION": ("fc_diagnose_function", str),
    "CRASHDIAG_NOTIFY_FUNCTION": ("fc_notify_function", str),
    "OSS_TIMEOUT": ("oss_timeout", float),
    # a central bucket in another region (docs/DEPLOY-MANY.md)
    "OSS_BUCKET_REGION": ("oss_bucket_region", str),
}
SECRET_FIELDS = frozenset({"access_key_secret", "security_token", "dingtalk_webhook", "dingtalk_secret", "smtp_password",
                           "report_link_access_key_secret"})
SMTP_SECURITY = ("ssl", "starttls", "none")
# A presigned URL signed with OSS Signature V4 lives at most 7 days (x-oss-expires 1..604800:
# https://help.aliyun.com/en/oss/user-guide/0002-00000232).
MAX_PRESIGN_TTL = 7 * 24 * 3600
MIN_LOG_MAX_BYTES = 256 * 1024  # room for a head, a tail and a crash report in each
_CREDENTIAL_VARS = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")


@dataclass(frozen=True)
class Settings:
    lang: str = "en"  # language of causes, remedies and messages
    region: str = ""  # the function's own region (CRASHDIAG_REGION), also the V4 signing region of the bucket
    # Where incidents live: an OSS bucket, or (no bucket) a local directory.
    store_dir: str = "out/store"
    oss_bucket: str = ""
    oss_endpoint: str = ""  # e.g. https://oss-cn-hangzhou-internal.aliyuncs.com
    # Simulated instances (folder trees) instead of the ECS API: replay and tests.
    instances_dir: str = ""
    ecs_endpoint: str = ""  # default: ecs.<region>.aliyuncs.com
    # Function Compute async invocation of the collect stage; unset = run it in-process.
    fc_endpoint: str = ""  # https://<account>.<region>-internal.fc.aliyuncs.com
    fc_service: str = "ecs-crashdiag-collect"  # collect has its own service (template.yml)
    fc_stage_service: str = "ecs-crashdiag"  # diagnose and notify, which the reconciler restarts
    fc_collect_function: str = "collect"
    collect_wait_seconds: int = 600  # how long to wait for Running + Cloud Assistant online
    collect_command_timeout: int = 120  # RunCommand Timeout
    collect_poll_seconds: float = 3.0  # first poll interval; grows with backoff
    collect_max_bytes: int = 11000  # the script's whole output, inside the 12,000 bytes the agent keeps
    # The most of a guest's upload that collect keeps as crash.log (an honest guest script
    # sends at most 64 MiB). A larger object (root on the guest can PUT anything to its
    # URL) is checked by size first and kept as its head and its tail, with a note.
    log_max_bytes: int = 64 * 1024 * 1024
    # The most of one log diagnose copies to its temporary disk (Function Compute's is 512 MB
    # unless the function asks for 10 GB): an inbox/ log, which collect does not cap, is
    # diagnosed from its head and tail past this, with a note.
    diagnose_max_bytes: int = 256 * 1024 * 1024
    # A guest whose console shows a kdump capture under way is waited for (a state, checked
    # again with backoff; no function sleeps through it) until this long after the crash.
    # makedumpfile filters and writes a few hundred MB/s at best: a 512 GiB instance can
    # take well over an hour, so two hours covers large instances without waiting forever.
    guest_wait_minutes: int = 120
    # A capture whose console shows no progress (phase, percentage) for this long is hung.
    capture_stall_minutes: int = 20
    # Tell people "crashed; waiting for the dump" when a capture is first seen (once).
    early_notice: bool = True
    upload_url_ttl: int = 900  # presigned PUT lifetime for the guest's full-log upload
    report_link_ttl: int = 7 * 24 * 3600
    access_key_id: str = ""
    access_key_secret: str = field(default="", repr=False)
    security_token: str = field(default="", repr=False)
    account_id: str = ""
    # DingTalk custom robot: the full webhook URL (its access_token is a secret), the
    # optional signing secret (SEC...), keyword, and whom to @.
    dingtalk_webhook: str = field(default="", repr=False)
    dingtalk_secret: str = field(default="", repr=False)
    dingtalk_keyword: str = ""
    dingtalk_at_mobiles: str = ""  # comma-separated
    dingtalk_at_all: bool = False
    # Email (DirectMail SMTP: implicit SSL on 465, STARTTLS on 80; port 25 is closed on ECS).
    smtp_host: str = ""
    smtp_port: int = 0  # 0: by SMTP_SECURITY (ssl 465, starttls 80, none 25)
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_security: str = "ssl"  # ssl | starttls | none
    mail_from: str = ""
    mail_to: str = ""  # comma-separated
    # Replay: a channel that is not configured writes its message here instead ("" = off).
    outbox_dir: str = ""
    # Hide IP addresses, host names and the kernel command line in reports and messages.
    redact: bool = False
    # Classification of one log stops here and reports what it found (confidence low,
    # "time budget"), well inside diagnose's Timeout, whatever the log holds.
    classify_budget_seconds: float = 60.0
    # Report links people open: the public endpoint (the functions use the internal one) and
    # a long-lived key limited to oss:GetObject, since a link signed with the function's STS
    # token stops working when that token expires, whatever REPORT_LINK_TTL says.
    oss_link_endpoint: str = ""
    report_link_access_key_id: str = ""
    report_link_access_key_secret: str = field(default="", repr=False)
    # A custom domain bound to the bucket (https://crash.example.com): every link people open
    # is made on it, since OSS's default domain serves text/html as a download.
    report_link_domain: str = ""
    notify_timeout: float = 10.0  # per HTTP request / SMTP connection
    notify_rate_per_minute: int = 10  # robot messages per calendar minute: <= 20 in any 60 s
    notify_burst: int = 3  # incidents paged one by one per storm window; the rest go in a digest
    notify_storm_window: int = 300
    notify_repeat_window: int = 24 * 3600  # same fingerprint, same instance: a repeat
    notify_followup_interval: int = 3600  # how long repeats are held before a follow-up
    notify_lease_seconds: int = 180  # a send claim older than this (and unanswered) may be taken over
    notify_max_attempts: int = 5  # failed sends per channel and incident before giving up
    # The audit function audits running Linux instances carrying this tag (KEY=VALUE);
    # empty: every running Linux instance of the region.
    audit_tag: str = ""
    # Crash safety (docs/PIPELINE.md). A stage's claim is held for longer than its function's
    # Timeout (collect 600 s, diagnose 300 s), so a live invocation is never taken over.
    collect_lease_seconds: int = 660
    diagnose_lease_seconds: int = 360
    stage_max_attempts: int = 4  # claims of collect / diagnose before the incident ends as a failure
    ingest_deadline: int = 300  # event.json without state/00-received this long: start collect again
    notify_deadline: int = 900  # report.json without state/40-notified this long: run notify again
    reconcile_max_kicks: int = 4  # the reconciler restarts one stage at most this often
    fc_diagnose_function: str = "diagnose"
    fc_notify_function: str = "notify"
    oss_timeout: float = 5.0  # per OSS request (oss2: connect, and each read); internal endpoint, same region
    # The bucket's region when it is not the function's own (one central bucket for many
    # regions and accounts): requests then go to its public endpoint.
    oss_bucket_region: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for var, (name, kind) in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            if kind is bool:
                if raw.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(f"{var} must be true or false, not {raw!r}")
                values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif kind in (int, float):
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ValueError(f"{var} must be a number, not {raw!r}") from None
            else:
                values[name] = raw
        known = {f.name for f in fields(cls)}
        for k, v in overrides.items():
            if k not in known:
                raise TypeError(f"unknown setting {k}")
            if v is not None and v != "":
                values[k] = v
        s = cls(**values)  # type: ignore[arg-type]
        if s.lang not in LANGS:
            raise ValueError(f"CRASHDIAG_LANG must be one of {', '.join(LANGS)}, not {s.lang!r}")
        if s.audit_tag and ("=" not in s.audit_tag or s.audit_tag.startswith("=")):
            raise ValueError(f"CRASHDIAG_AUDIT_TAG must be KEY=VALUE, not {s.audit_tag!r}")
        if s.smtp_security not in SMTP_SECURITY:
            raise ValueError(f"SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}, not {s.smtp_security!r}")
        for var, value in (("LOG_MAX_BYTES", s.log_max_bytes), ("DIAGNOSE_MAX_BYTES", s.diagnose_max_bytes)):
            if value < MIN_LOG_MAX_BYTES:
                raise ValueError(f"{var} must be at least {MIN_LOG_MAX_BYTES}, not {value}")
        for var, value in (("REPORT_LINK_TTL", s.report_link_ttl), ("UPLOAD_URL_TTL", s.upload_url_ttl)):
            if not 0 < value <= MAX_PRESIGN_TTL:
                raise ValueError(f"{var} must be 1..{MAX_PRESIGN_TTL} seconds (a V4-signed OSS URL lives at most "
                                 f"7 days), not {value}")
        return s

    @staticmethod
    def current_credentials(env: Mapping[str, str] | None = None) -> tuple[str, str, str]:
        """(key id, secret, token) as the environment holds them now: read per invocation,
        since Function Compute may hand a long-lived instance newer STS credentials."""
        env = os.environ if env is None else env
        key_id, secret, token = (env.get(v, "") for v in _CREDENTIAL_VARS)
        return key_id, secret, token

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret)

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, reports or error messages."""
        from urllib.parse import parse_qs, urlsplit

        values = [self.access_key_secret, self.security_token, self.dingtalk_webhook, self.dingtalk_secret, self.smtp_password,
                  self.report_link_access_key_secret]
        if self.dingtalk_webhook:  # the access_token alone is as good as the whole URL
            values += parse_qs(urlsplit(self.dingtalk_webhook).query).get("access_token", [])
        return [v for v in values if v]
