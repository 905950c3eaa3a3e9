"""The metrics endpoint's TLS and basic auth, in the Prometheus exporters' web-config format.

`[metrics] web_config` names a YAML file as node_exporter's `--web.config.file` reads it:

    tls_server_config:
      cert_file: server.crt          # relative paths: from the web-config file's folder
      key_file: server.key
      client_ca_file: ca.crt         # optional, with client_auth_type
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (the default)
      min_version: TLS12             # or TLS13 (default TLS12)
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes (htpasswd -B, or python -m bcrypt)

A key this module does not implement is refused by name, never ignored: a file that asks for
something the endpoint would not do must not start it. Passwords are checked with bcrypt; a
checked (user, password) pair is remembered (by its SHA-256) so that a scrape every few seconds
does not pay bcrypt's cost each time, as the exporters do.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from appliance.errors import SluiceError

TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
MIN_VERSION = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass
class WebConfig:
    source: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    users: dict[str, bytes] = field(default_factory=dict)
    _good: set[bytes] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (None without TLS); a bad certificate or key: SluiceError."""
        if self.cert_file is None or self.key_file is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                ctx.load_verify_locations(self.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SluiceError(f"web config {self.source}: cannot load the TLS certificate, key or CA: "
                              f"{getattr(exc, 'strerror', None) or exc}", 2) from None
        ctx.verify_mode = self.client_auth
        return ctx

    def authorized(self, header: str | None) -> bool:
        """Does this Authorization header name a user of basic_auth_users with its password?"""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return False
        key = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        with self._lock:
            if key in self._good:
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:  # a password longer than bcrypt's 72 bytes
            return False
        if ok:
            with self._lock:
                self._good.add(key)
        return ok


def _fail(path: Path, message: str) -> SluiceError:
    return SluiceError(f"web config {path}: {message}", 2)


def _file(path: Path, tls: dict[str, Any], key: str) -> Path | None:
    value = tls.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(path, f"tls_server_config.{key} must be a file path")
    p = Path(value)
    p = p if p.is_absolute() else path.parent / p
    if not p.is_file():
        raise _fail(path, f"tls_server_config.{key}: {p} is not a file")
    return p


def load(path: str | Path) -> WebConfig:
    """Reads and checks a web-config file; every problem is one SluiceError line (exit 2)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise _fail(path, f"not YAML: {str(exc).splitlines()[0]}") from None
    doc = doc or {}
    if not isinstance(doc, dict):
        raise _fail(path, "expected a mapping with tls_server_config and/or basic_auth_users")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise _fail(path, f"{sorted(unknown)[0]} is not supported (supported: tls_server_config, basic_auth_users)")
    wc = WebConfig(source=path)
    tls = doc.get("tls_server_config") or {}
    if not isinstance(tls, dict):
        raise _fail(path, "tls_server_config must be a mapping")
    unknown = set(tls) - TLS_KEYS
    if unknown:
        raise _fail(path, f"tls_server_config.{sorted(unknown)[0]} is not supported "
                          f"(supported: {', '.join(sorted(TLS_KEYS))})")
    if tls:
        wc.cert_file, wc.key_file = _file(path, tls, "cert_file"), _file(path, tls, "key_file")
        if wc.cert_file is None or wc.key_file is None:
            raise _fail(path, "tls_server_config needs both cert_file and key_file")
        wc.client_ca_file = _file(path, tls, "client_ca_file")
        auth = tls.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH:
            raise _fail(path, f"tls_server_config.client_auth_type {auth!r} is not supported "
                              f"(supported: {', '.join(CLIENT_AUTH)})")
        wc.client_auth = CLIENT_AUTH[auth]
        if wc.client_auth == ssl.CERT_REQUIRED and wc.client_ca_file is None:
            raise _fail(path, "client_auth_type RequireAndVerifyClientCert needs client_ca_file")
        version = tls.get("min_version", "TLS12")
        if version not in MIN_VERSION:
            raise _fail(path, f"tls_server_config.min_version {version!r} is not supported "
                              f"(supported: {', '.join(MIN_VERSION)})")
        wc.min_version = MIN_VERSION[version]
        wc.ssl_context()  # the certificate and key load now, not at the first scrape
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise _fail(path, "basic_auth_users must be a mapping of user names to bcrypt hashes")
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise _fail(path, f"basic_auth_users: {user!r} is not a user name")
        if not isinstance(hashed, str) or not hashed.startswith(BCRYPT_PREFIXES) or len(hashed) != 60:
            raise _fail(path, f"basic_auth_users.{user}: not a bcrypt hash ($2y$..., 60 characters)")
        wc.users[user] = hashed.encode()
    return wc
