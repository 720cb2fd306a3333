"""Email: the MIME message and the SMTP delivery (standard library only).

The message is ``multipart/mixed``: a ``multipart/alternative`` with the text and the
HTML rendering of the same blocks as the DingTalk card (plus evidence and call trace),
and the crash log excerpt as an attachment. Its ``Message-ID`` is derived from what it
tells (the incident's notice id or the digest id), so a mail client folds a duplicate.

``SMTP_SECURITY`` and the port, as DirectMail serves them
(https://www.alibabacloud.com/help/en/direct-mail/smtp-endpoints: ports 25, 80, and 465
for SSL; 25 is closed on ECS; STARTTLS on 25 or 80):

- ``ssl`` (the default): implicit TLS, port 465 unless SMTP_PORT says otherwise;
- ``starttls``: plain connection upgraded with STARTTLS, port 80 (465 speaks implicit TLS
  only: a STARTTLS client waits there for a greeting that never comes);
- ``none``: no TLS, port 25; refused with a login unless the server is this machine (the
  password would cross the network in clear).

DirectMail requires the login to be the sender address
(https://help.aliyun.com/en/direct-mail/user-guide/send-emails-using-smtp): a MAIL_FROM
other than SMTP_USER is refused there before anything is sent. Certificates are verified
against the system's trust store (an injected ``ssl.SSLContext`` replaces it).
"""

from __future__ import annotations

import email.policy
import email.utils
import ipaddress
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage

from ..reports.escape import plain
from .messages import Message, subject_text, to_html, to_text
from .outcome import REJECTED, SENT, Outcome, Transient, deliver_with_retries, redact

log = logging.getLogger("crashdiag.notify.mail")

DEFAULT_PORTS = {"ssl": 465, "starttls": 80, "none": 25}


def is_local(host: str) -> bool:
    """Whether an SMTP host is this machine (a relay a password may reach in clear)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_directmail(host: str) -> bool:
    """DirectMail's SMTP endpoints: smtpdm.aliyun.com, smtpdm-<region>.aliyuncs.com, ..."""
    return host.strip().lower().startswith("smtpdm")


def configuration_error(host: str, security: str, user: str, mail_from: str) -> str | None:
    """Why these SMTP settings must not be used (said once at start, and as the outcome of
    every email), or None."""
    if security == "none" and user and not is_local(host):
        return (f"SMTP_SECURITY=none with SMTP_USER set would send SMTP_PASSWORD in clear to {plain(host, 100)}: "
                "use SMTP_SECURITY=ssl (port 465) or starttls (port 80), or a relay on this machine")
    if user and mail_from and mail_from.strip().lower() != user.strip().lower() and is_directmail(host):
        return (f"DirectMail requires the SMTP login to be the sender address: MAIL_FROM ({plain(mail_from, 100)}) "
                f"is not SMTP_USER ({plain(user, 100)}); set MAIL_FROM to SMTP_USER or leave it empty")
    return None


def addresses(raw: str) -> list[str]:
    """MAIL_TO: comma-separated addresses; anything that is not one plain address is dropped."""
    out = []
    for a in raw.split(","):
        if any(ord(c) < 32 or ord(c) == 127 for c in a):
            continue
        name, addr = email.utils.parseaddr(a.strip())
        if addr and "@" in addr and not any(c in addr for c in "\r\n<>,;\"' "):
            out.append(addr)
    return out


def header(value: object) -> str:
    """A header value without C0 or C1 controls (U+0085 is a line break to Python's email
    package, which then refuses the header) or line and paragraph separators."""
    return "".join(ch for ch in str(value) if not (ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029"))


def build_email(msg: Message, *, mail_from: str, mail_to: list[str], lang: str, now: float) -> EmailMessage:
    m = EmailMessage(policy=email.policy.SMTP)
    m["Subject"] = header(subject_text(msg))
    m["From"] = header(mail_from)
    m["To"] = header(", ".join(mail_to))
    m["Date"] = email.utils.formatdate(now, usegmt=True)
    domain = mail_from.rpartition("@")[2].strip(">") or "ecs-crashdiag"
    m["Message-ID"] = header(f"<crashdiag.{msg.ref}@{domain}>")
    m["Auto-Submitted"] = "auto-generated"
    m.set_content(to_text(msg), subtype="plain", charset="utf-8")
    m.add_alternative(to_html(msg, lang), subtype="html", charset="utf-8")
    for name, data in msg.attachments:
        # the log's bytes as they were; the charset says how to read them (non-ASCII text included)
        m.add_attachment(data, maintype="text", subtype="plain", filename=header(plain(name, 100)), params={"charset": "utf-8"})
    return m


SmtpFactory = Callable[[str, int, str, float, ssl.SSLContext], smtplib.SMTP]


def connect(host: str, port: int, security: str, timeout: float, context: ssl.SSLContext) -> smtplib.SMTP:
    """An SMTP session, TLS as configured, before login."""
    if security == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    s = smtplib.SMTP(host, port, timeout=timeout)
    if security == "starttls":
        try:
            s.ehlo()
            s.starttls(context=context)
            s.ehlo()
        except BaseException:
            s.close()
            raise
    return s


class SmtpMailer:
    transport = "smtp"

    def __init__(self, host: str, port: int = 0, security: str = "ssl", user: str = "", password: str = "", *,
                 mail_from: str = "", timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 factory: SmtpFactory = connect, sleep: Callable[[float], None] = time.sleep, attempts: int = 3) -> None:
        """``port`` 0: the port of ``security`` (DEFAULT_PORTS)."""
        if security not in DEFAULT_PORTS:
            raise ValueError(f"SMTP_SECURITY must be ssl, starttls or none, not {security!r}")
        self.host, self.port, self.security, self.user = host, port or DEFAULT_PORTS[security], security, user
        self.refusal = configuration_error(host, security, user, mail_from)
        if self.refusal:
            log.error("email is off: %s", self.refusal)
        elif user and mail_from and mail_from.strip().lower() != user.strip().lower():
            log.warning("MAIL_FROM (%s) is not SMTP_USER: DirectMail would refuse that; this server may not", plain(mail_from, 100))
        self._password = password
        self.timeout, self.factory, self.sleep, self.attempts = timeout, factory, sleep, attempts
        self._context = ssl_context

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def send(self, m: EmailMessage) -> Outcome:
        if self.refusal:
            return Outcome(REJECTED, self.refusal)
        return deliver_with_retries(lambda: self._send_once(m), self.attempts, self.sleep)

    def _hint(self) -> str:
        """What a timeout or a TLS failure most likely means for this mode and port."""
        if self.security == "starttls" and self.port == 465:
            return ": port 465 speaks implicit TLS only; use SMTP_SECURITY=ssl there, or starttls on port 80"
        if self.security == "ssl" and self.port in (25, 80, 587):
            return f": port {self.port} starts in plain text; use SMTP_SECURITY=starttls there, or ssl on port 465"
        return ""

    def _send_once(self, m: EmailMessage) -> Outcome:
        where = f"SMTP {self.host}:{self.port} ({self.security})"
        try:
            with self.factory(self.host, self.port, self.security, self.timeout, self.context) as s:
                if self.user:
                    s.login(self.user, self._password)
                refused = s.send_message(m)
        except smtplib.SMTPAuthenticationError as e:
            return Outcome(REJECTED, f"{where} refused the login of SMTP_USER (reply {e.smtp_code}): check SMTP_USER/SMTP_PASSWORD", str(e.smtp_code))
        except smtplib.SMTPNotSupportedError:
            return Outcome(REJECTED, f"{where} does not offer what SMTP_SECURITY/SMTP_USER need (STARTTLS or AUTH)")
        except smtplib.SMTPRecipientsRefused as e:
            codes = sorted({str(c) for c, _ in e.recipients.values()})
            if all(c.startswith("5") for c in codes):
                return Outcome(REJECTED, f"{where} refused every recipient in MAIL_TO (reply {', '.join(codes)})", ",".join(codes))
            raise Transient(f"{where} deferred the recipients (reply {', '.join(codes)})", ",".join(codes)) from None
        except smtplib.SMTPSenderRefused as e:
            if 500 <= e.smtp_code < 600:
                return Outcome(REJECTED, f"{where} refused MAIL_FROM (reply {e.smtp_code})", str(e.smtp_code))
            raise Transient(f"{where} deferred the sender (reply {e.smtp_code})", str(e.smtp_code)) from None
        except smtplib.SMTPResponseException as e:
            if 500 <= e.smtp_code < 600:
                return Outcome(REJECTED, f"{where} refused the message (reply {e.smtp_code}): {self._clean(e.smtp_error)}", str(e.smtp_code))
            raise Transient(f"{where} failed (reply {e.smtp_code}): {self._clean(e.smtp_error)}", str(e.smtp_code)) from None
        except ssl.SSLCertVerificationError:
            return Outcome(REJECTED, f"{where}: the server's certificate did not verify")
        except (TimeoutError, ssl.SSLError, smtplib.SMTPServerDisconnected) as e:
            raise Transient(f"{where} unreachable or failed ({type(e).__name__}){self._hint()}") from None
        except (OSError, smtplib.SMTPException) as e:
            raise Transient(f"{where} unreachable or failed ({type(e).__name__})") from None
        if refused:
            return Outcome(SENT, f"accepted for {len(m['To'].split(',')) - len(refused)} recipient(s); refused: {', '.join(sorted(refused))}")
        return Outcome(SENT, "accepted by the SMTP server")

    def _clean(self, raw: object) -> str:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return plain(redact(text, [self._password]), 200)


__all__ = ["SmtpMailer", "build_email", "addresses", "connect", "header"]
