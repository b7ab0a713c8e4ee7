"""Real mail servers for tests: an aiosmtpd sink and a private Dovecot.

Fixtures:

* ``tls_material`` (session): a throwaway CA and a certificate for 127.0.0.1 / localhost,
  with ``server_context()``, ``client_context()`` (trusts only that CA) and PEM files.
* ``smtp_sink`` (function): a factory ``smtp_sink(mode="plain" | "starttls" | "ssl",
  auth=False)`` → :class:`SmtpSink`, an aiosmtpd server on 127.0.0.1 that keeps every
  envelope (``received``), counts connections, refuses chosen recipients
  (``refuse(address, "451 …")``), can drop its connections, and builds the matching
  ``SmtpConfig`` (``config()``).  Every sink is stopped after the test.
* ``dovecot`` (session): a private Dovecot (:class:`DovecotServer`) on free ports, plain and
  implicit TLS, where any user name logs in with ``DovecotServer.password``.
* ``mailbox`` (function): a :class:`Mailbox` of a brand-new user, so every test starts
  empty: ``append(raw)``, ``append_many(raws)``, ``uids()``, ``flags(uid)``, ``kick()``,
  ``create_folder(name)``, ``recreate_folder(name)``, ``config(**overrides)``.
* ``minimal_mailbox`` (function): the same on a server that offers that user only
  IMAP4rev1 (no IDLE, MOVE or UIDPLUS), for the fallbacks.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ptm_sync.config.settings import ImapConfig, Secret, SmtpConfig
from tests.support.servers import free_port, require

# --- TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A test CA and a server certificate (for 127.0.0.1 and localhost) it signed."""

    ca_file: Path
    cert_file: Path  # server certificate followed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies host names like the default context, but trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls_material(directory: Path) -> TlsMaterial:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - cryptography comes with the dev extra
        require("the cryptography package is needed for TLS tests")

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ptm-sync test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return TlsMaterial(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


# --- SMTP: aiosmtpd sink --------------------------------------------------------------------

SMTP_USER = "conferences"
SMTP_PASSWORD = "s3cret-smtp"
SinkMode = Literal["plain", "starttls", "ssl"]


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the envelope and the bytes as they came (after dot-unstuffing)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


class SinkHandler:
    """aiosmtpd handler: keeps messages, refuses the recipients it was told to refuse."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.refusals: dict[str, str] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.refusals.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None and envelope.original_content is not None
        self.received.append(
            ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 OK: queued"


class _Controller(Controller):
    """A Controller that remembers the server object of every connection."""

    def __init__(self, handler: SinkHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.servers: list[SMTP] = []

    def factory(self) -> SMTP:
        server = super().factory()
        self.servers.append(server)
        return server


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpSink:
    """A running aiosmtpd server and what it received."""

    mode: SinkMode
    auth: bool
    port: int
    controller: _Controller
    handler: SinkHandler
    tls: TlsMaterial | None
    host: str = "127.0.0.1"

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    @property
    def connections(self) -> int:
        """TCP connections clients opened since the sink started."""
        return len(self.controller.servers)

    def refuse(self, address: str, reply: str) -> None:
        """Answer RCPT TO ``address`` with ``reply``, e.g. ``"550 5.1.1 No such user"``."""
        self.handler.refusals[address.lower()] = reply

    def drop_connections(self) -> None:
        """Close every open connection from the server side, as an idle timeout would."""
        done = threading.Event()

        def close_all() -> None:
            for server in self.controller.servers:
                if server.transport is not None:
                    server.transport.close()
            done.set()

        self.controller.loop.call_soon_threadsafe(close_all)
        assert done.wait(5), "the sink did not close its connections"

    def config(self, **overrides: Any) -> SmtpConfig:
        """The ``[mail.smtp]`` section that reaches this sink."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "starttls": self.mode == "starttls",
            "ssl": self.mode == "ssl",
            "timeout": 10.0,
        }
        if self.auth:
            values["username"] = SMTP_USER
            values["password"] = Secret(key="mail.smtp.password", value=SMTP_PASSWORD)
        values.update(overrides)
        return SmtpConfig(**values)

    def client_context(self) -> ssl.SSLContext | None:
        return self.tls.client_context() if self.tls else None

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_sink(mode: SinkMode, auth: bool, tls: TlsMaterial | None) -> SmtpSink:
    handler = SinkHandler()
    port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port, "ready_timeout": 10.0}
    if mode == "starttls":
        assert tls is not None
        kwargs["tls_context"] = tls.server_context()
        kwargs["require_starttls"] = True
    elif mode == "ssl":
        assert tls is not None
        kwargs["ssl_context"] = tls.server_context()
    if auth:
        kwargs["authenticator"] = _authenticator
        # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS; and it warns about
        # requiring AUTH without requiring TLS, so AUTH is mandatory with STARTTLS only.
        kwargs["auth_require_tls"] = kwargs["auth_required"] = mode == "starttls"
    controller = _Controller(handler, **kwargs)
    controller.start()
    controller.servers.clear()  # the Controller's own readiness probe
    return SmtpSink(mode, auth, port, controller, handler, tls)


@pytest.fixture
def smtp_sink(tls_material: TlsMaterial) -> Iterator[Callable[..., SmtpSink]]:
    """Factory: ``smtp_sink(mode="plain", auth=False)`` starts a sink for this test."""
    sinks: list[SmtpSink] = []

    def start(mode: SinkMode = "plain", auth: bool = False) -> SmtpSink:
        sink = start_smtp_sink(mode, auth, tls_material if mode != "plain" else None)
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


# --- IMAP: a private Dovecot ----------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
  chroot =
}}
service anvil {{
  chroot =
  # No growing delay for logins after a failed one (the wrong-password tests).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/userdb
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
"""


MINIMAL_USERS = 50


@dataclass
class DovecotServer:
    """A private Dovecot: every user name is valid and logs in with :attr:`password`."""

    directory: Path
    port: int
    tls_port: int
    tls: TlsMaterial
    mail_user: str
    mail_group: str
    binary: str = "dovecot"
    password: str = "s3cret-imap"
    host: str = "127.0.0.1"
    _users: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _minimal_users: Iterator[int] = field(default_factory=lambda: iter(range(MINIMAL_USERS)))

    def new_user(self, *, minimal: bool = False) -> str:
        """A user nobody has used yet; ``minimal``: the server offers that user nothing
        beyond IMAP4rev1 (no IDLE, MOVE or UIDPLUS), like a bare RFC 3501 server."""
        if minimal:
            return f"minimal{next(self._minimal_users)}@school.test"
        return f"user{next(self._users)}@school.test"

    def imap_config(self, user: str, *, tls: bool = False, **overrides: Any) -> ImapConfig:
        """The ``[mail.imap]`` section for ``user``: plain, or implicit TLS with ``tls``."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.tls_port if tls else self.port,
            "ssl": tls,
            "starttls": False,
            "username": user,
            "password": Secret(key="mail.imap.password", value=self.password),
            "poll_seconds": 1,
        }
        values.update(overrides)
        return ImapConfig(**values)

    def login(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(user, self.password)
        return conn

    def append(self, user: str, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """APPEND ``raw`` to ``folder`` (created if missing); returns its UID (UIDPLUS)."""
        conn = self.login(user)
        try:
            conn.create(_quote(folder))  # NO when it exists: fine
            typ, data = conn.append(_quote(folder), f"({flags})" if flags else None, None, raw)
            assert typ == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found, data
            return int(found.group(1))
        finally:
            conn.logout()

    def append_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> list[int]:
        """APPEND each of ``raws`` over one connection; returns their UIDs (UIDPLUS)."""
        conn = self.login(user)
        try:
            conn.create(_quote(folder))  # NO when it exists: fine
            uids = []
            for raw in raws:
                typ, data = conn.append(_quote(folder), None, None, raw)
                found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                assert typ == "OK" and found, data
                uids.append(int(found.group(1)))
            return uids
        finally:
            conn.logout()

    def create_folder(self, user: str, folder: str) -> None:
        conn = self.login(user)
        try:
            typ, data = conn.create(_quote(folder))
            assert typ == "OK", data
        finally:
            conn.logout()

    def recreate_folder(self, user: str, folder: str) -> None:
        """DELETE and CREATE ``folder``: empty, with a new UIDVALIDITY (RFC 3501 §2.3.1.1)."""
        conn = self.login(user)
        try:
            for command in (conn.delete, conn.create):
                typ, data = command(_quote(folder))
                assert typ == "OK", data
        finally:
            conn.logout()

    def uids(self, user: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        conn = self.login(user)
        try:
            typ, data = conn.select(_quote(folder), readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", criteria)
            return sorted(int(n) for n in (data[0] or b"").split())
        finally:
            conn.logout()

    def flags(self, user: str, uid: int, folder: str = "INBOX") -> set[str]:
        conn = self.login(user)
        try:
            conn.select(_quote(folder), readonly=True)
            _, data = conn.uid("FETCH", str(uid), "(FLAGS)")
            found = re.search(rb"FLAGS \(([^)]*)\)", data[0] or b"")  # type: ignore[arg-type]
            assert found, data
            return set(found.group(1).decode().split())
        finally:
            conn.logout()

    def kick(self, user: str) -> None:
        """Drop every connection of ``user`` from the server side (``doveadm kick``: BYE,
        then close), and return once their imap processes have ended: a kick alone only
        asks them to go."""
        pids = [int(row[2]) for row in self._doveadm("who", "-1", user)[1:] if len(row) > 2]
        self._doveadm("kick", user)
        for pid in pids:
            _gone(pid, 10.0)

    def _doveadm(self, *args: str) -> list[list[str]]:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        conf = str(self.directory / "dovecot.conf")
        done = subprocess.run(
            [doveadm, "-c", conf, *args], check=True, capture_output=True, text=True
        )
        return [line.split() for line in done.stdout.splitlines()]

    def start(self) -> None:
        """Start this instance (again): same ports, same maildirs."""
        output = self.directory / "start.out"
        # Dovecot daemonizes; its children keep stdout/stderr: a file, not a pipe.
        with output.open("wb") as out:
            started = subprocess.run(
                [self.binary, "-c", str(self.directory / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        if started.returncode != 0 or not _wait_for_start(self, 15):
            log = self.directory / "dovecot.log"
            detail = output.read_text() + (log.read_text() if log.exists() else "")
            self.stop()
            require(f"dovecot did not start: {detail.strip()[-500:]}")

    @property
    def pid_file(self) -> Path:
        return self.directory / "run" / "master.pid"

    def stop(self) -> None:
        """Stop this instance: SIGTERM to the master, then SIGKILL to its process group;
        :meth:`start` may start it again.

        A login process waiting for Dovecot's stats service holds a clean shutdown up for
        seconds; the master leads its own session, so its group is this instance alone.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            if not _gone(pid, 1.0) and os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        if _gone(pid, 10.0):
            # An unreaped master is still "running" to a new Dovecot reading this file.
            self.pid_file.unlink(missing_ok=True)


def _gone(pid: int, seconds: float) -> bool:
    """Whether ``pid`` ended within ``seconds``.  A zombie counts as ended: in a container
    the init process may be slow to reap a daemon that it adopted."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        except OSError:  # no /proc: ask the kernel instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        else:
            if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
                return True
        time.sleep(0.02)
    return False


@dataclass
class Mailbox:
    """One fresh user on the test Dovecot."""

    server: DovecotServer
    user: str

    def config(self, **overrides: Any) -> ImapConfig:
        return self.server.imap_config(self.user, **overrides)

    def append(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        return self.server.append(self.user, raw, folder, flags)

    def append_many(self, raws: list[bytes], folder: str = "INBOX") -> list[int]:
        return self.server.append_many(self.user, raws, folder)

    def create_folder(self, folder: str) -> None:
        self.server.create_folder(self.user, folder)

    def recreate_folder(self, folder: str) -> None:
        self.server.recreate_folder(self.user, folder)

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        return self.server.uids(self.user, folder, criteria)

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        return self.server.flags(self.user, uid, folder)

    def kick(self) -> None:
        self.server.kick(self.user)


def _quote(folder: str) -> str:
    """Folder names in the helpers are given as they go on the wire (modified UTF-7)."""
    return f'"{folder}"'


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


def _install_dovecot() -> str | None:
    """apt-get install dovecot-imapd, only as root and when PTM_TEST_INSTALL=1 allows it."""
    if (
        os.geteuid() != 0
        or os.environ.get("PTM_TEST_INSTALL") != "1"
        or not shutil.which("apt-get")
    ):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", "dovecot-imapd"]
    if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(command, env=env, capture_output=True, timeout=600)
    return dovecot_binary()


def _wait_for_start(server: DovecotServer, seconds: float) -> bool:
    """Until Dovecot listens and has written its pid file (a little after listening)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.pid_file.exists():
            try:
                with socket.create_connection((server.host, server.port), timeout=1):
                    return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def start_dovecot(directory: Path, tls: TlsMaterial) -> DovecotServer:
    binary = dovecot_binary() or _install_dovecot()
    if binary is None:
        require("dovecot not installed: apt-get install dovecot-imapd")
    if os.geteuid() == 0:  # the recipe: Dovecot refuses to log users in as root
        login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
        mail_user, mail_group = "dovecot", "dovecot"
    else:  # a private instance of an ordinary user runs everything as that user
        me = pwd.getpwuid(os.getuid()).pw_name
        login_user = internal_user = mail_user = me
        internal_group = mail_group = str(os.getgid())
    server = DovecotServer(
        directory, free_port(), free_port(), tls, mail_user, mail_group, binary=binary
    )
    # Users offered only IMAP4rev1: their userdb_ fields override settings for them alone.
    # Written before the start: Dovecot looks at a changed passwd-file at most once a second.
    (directory / "userdb").write_text(
        "".join(
            f"minimal{n}@school.test::{mail_user}:{mail_group}::{directory}/mail/minimal{n}"
            "::userdb_imap_capability=IMAP4rev1\n"
            for n in range(MINIMAL_USERS)
        )
    )
    for sub in ("run", "state", "mail"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / "mail").chmod(0o777)
    conf = directory / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            d=directory,
            port=server.port,
            tls_port=server.tls_port,
            cert=tls.cert_file,
            key=tls.key_file,
            password=server.password,
            login_user=login_user,
            internal_user=internal_user,
            internal_group=internal_group,
            mail_user=mail_user,
            mail_group=mail_group,
        )
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot(tls_material: TlsMaterial) -> Iterator[DovecotServer]:
    # Not under pytest's temp dir: that one is private (0700) and Dovecot's own users must
    # reach the maildirs.
    directory = Path(tempfile.mkdtemp(prefix="ptm-dovecot-"))
    try:
        server = start_dovecot(directory, tls_material)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """An empty mailbox: a user nobody has used before."""
    return Mailbox(dovecot, dovecot.new_user())


@pytest.fixture
def minimal_mailbox(dovecot: DovecotServer) -> Mailbox:
    """An empty mailbox on a server that offers only IMAP4rev1: no IDLE, MOVE or UIDPLUS."""
    return Mailbox(dovecot, dovecot.new_user(minimal=True))
