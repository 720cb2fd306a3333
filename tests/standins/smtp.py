"""A real SMTP server on 127.0.0.1 (aiosmtpd) speaking one of DirectMail's three ways
(https://www.alibabacloud.com/help/en/direct-mail/smtp-endpoints: "ports 25, 80, and 465
for SSL"; STARTTLS on 25 or 80), with AUTH when a user is given; faults on demand:

- ``ssl``: implicit TLS from the first byte, as DirectMail's 465. A client that connects
  in plain text and waits for the greeting gets none (the server waits for a TLS
  handshake), so a STARTTLS client there times out, as on the real port; STARTTLS inside
  the TLS session is refused (454, aiosmtpd without a STARTTLS context).
- ``starttls``: a plain greeting, STARTTLS offered and required before AUTH and mail, as
  DirectMail's 80 and 25.
- ``none``: plain, no TLS at all (a local relay).

aiosmtpd's ``Controller(port=0)`` does not work (it connects to the port it was given to
check that it is up), so a free port is picked first. A stand-in built with ``port=``
and not started is a server that is down: connections are refused until ``start()``.

    certs = make_test_cert(tmp_dir)            # self-signed, for 127.0.0.1 and localhost
    with SmtpStandIn("ssl", certs, user="u", password="p") as smtp:
        ...
        smtp.messages                           # email.message.EmailMessage, parsed
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd knows TLS only as STARTTLS: with implicit TLS (our "ssl" mode) it warns that AUTH
# is allowed without TLS, which is not the case there.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")


@dataclass(frozen=True)
class TestCert:
    """A self-signed certificate made for one test session. The key is generated at test
    time into a temporary directory and never committed."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts this certificate uses (hostname checks stay on)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_test_cert(directory: Path) -> TestCert:
    """A throwaway self-signed certificate for 127.0.0.1/localhost: with the openssl CLI if
    there is one, else with the ``cryptography`` package."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "test-smtp-cert.pem", directory / "test-smtp-key.pem"
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:TRUE"],
            check=True, capture_output=True, timeout=60)
        return TestCert(cert, key)
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
         .sign(pk, hashes.SHA256()))
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return TestCert(cert, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: email.message.EmailMessage
    authenticated_as: str | None
    tls: bool


class SmtpStandIn:
    def __init__(self, security: str = "ssl", cert: TestCert | None = None, *, user: str = "", password: str = "",
                 port: int | None = None) -> None:
        if security in ("ssl", "starttls") and cert is None:
            raise ValueError("TLS needs a certificate")
        self.security, self.cert, self.user, self.password = security, cert, user, password
        self.port = port or free_port()
        self.received: list[Received] = []
        self.auth_failures = 0
        self._faults: list[str] = []  # SMTP replies to give to the next DATA commands
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return [r.message for r in self.received]

    def fail_next(self, n: int = 1, reply: str = "451 4.3.0 try again later") -> None:
        with self._lock:
            self._faults.extend([reply] * n)

    # -- aiosmtpd handler hooks ----------------------------------------------------------------

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            raw = envelope.original_content or envelope.content
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            tls = session.ssl is not None or self.security == "ssl"
            who = session.auth_data if getattr(session, "authenticated", False) else None
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, msg, who, tls))
        return "250 2.0.0 queued"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user and auth_data.password.decode() == self.password:
            return AuthResult(success=True, auth_data=self.user)
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SmtpStandIn:
        kwargs: dict = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "localhost", "enable_SMTPUTF8": True}
        if self.user:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # with implicit TLS the whole session is encrypted, but aiosmtpd only knows about STARTTLS
            kwargs["auth_require_tls"] = self.security == "starttls"
        if self.security == "ssl":
            # implicit TLS only: no tls_context, so STARTTLS is not offered and is answered 454
            kwargs["ssl_context"] = self.cert.server_context()
        elif self.security == "starttls":
            kwargs["tls_context"] = self.cert.server_context()
            kwargs["require_starttls"] = True
        self._controller = Controller(self, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
