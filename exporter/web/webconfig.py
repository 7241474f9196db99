"""The web config file shared by Prometheus exporters (`--web.config.file`): TLS and basic auth."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl

import bcrypt
import yaml


class WebConfigError(Exception):
    """The web config file is unreadable or invalid (one-line message)."""


TLS_KEYS = ("cert_file", "key_file", "client_ca_file")
#: checked for unknown users, so that a wrong user name takes as long as a wrong password (cost 10)
_DUMMY_HASH = b"$2b$10$A3W7EUS.vnlVkxHub9hZpu43urr9VPJ3SvU4ZcKPqytm.2/phdRQK"


def _checkpw(password: bytes, hashed: bytes) -> bool:
    """bcrypt (slow on purpose) in gevent's thread pool, so wrong passwords cannot stall the watchers."""
    import gevent

    return gevent.get_hub().threadpool.apply(bcrypt.checkpw, (password, hashed))


class BasicAuth:
    """WSGI middleware checking HTTP basic auth against bcrypt hashes; /healthz stays open for probes."""

    def __init__(self, users: dict[str, str], open_paths=("/healthz",)):
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self.open_paths = set(open_paths)
        # bcrypt is slow on purpose: a password that passed is remembered, as a keyed digest, never in clear
        self._ok_cache: set[bytes] = set()
        self._cache_key = secrets.token_bytes(32)

    def wrap(self, app):
        def guarded(environ, start_response):
            if environ.get("PATH_INFO") in self.open_paths or self.check(environ.get("HTTP_AUTHORIZATION", "")):
                return app(environ, start_response)
            body = b"unauthorized\n"
            start_response("401 Unauthorized", [
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                ("WWW-Authenticate", 'Basic realm="bliss-exporter"'),
            ])
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
        return guarded

    def check(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            _checkpw(password.encode(), _DUMMY_HASH)  # no user enumeration by timing
            return False
        digest = hashlib.blake2b(f"{user}\0{password}".encode(), key=self._cache_key).digest()
        if digest in self._ok_cache:
            return True
        try:
            ok = _checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            self._ok_cache.add(digest)
        return ok


def load_web_config(path: str):
    """Parse the file; return (gevent ssl kwargs or None, BasicAuth or None)."""
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise WebConfigError(f"web config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"web config {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise WebConfigError(f"web config {path}: not UTF-8 text") from None
    if not isinstance(doc, dict):
        raise WebConfigError(f"web config {path}: expected a mapping")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"web config {path}: unknown key(s) {', '.join(sorted(unknown))}")
    ssl_args = None
    tls = doc.get("tls_server_config")
    if tls:
        if not isinstance(tls, dict):
            raise WebConfigError(f"web config {path}: tls_server_config must be a mapping")
        unsupported = set(tls) - set(TLS_KEYS)
        if unsupported:  # e.g. client_auth_type: refuse rather than silently serve without it
            raise WebConfigError(f"web config {path}: unsupported tls_server_config key(s) "
                                 f"{', '.join(sorted(map(str, unsupported)))} (supported: {', '.join(TLS_KEYS)})")
        if not all(isinstance(tls[k], str) for k in TLS_KEYS if tls.get(k) is not None):
            raise WebConfigError(f"web config {path}: tls_server_config file names must be strings")
        cert, key = tls.get("cert_file"), tls.get("key_file")
        if not cert or not key:
            raise WebConfigError(f"web config {path}: tls_server_config needs cert_file and key_file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"web config {path}: cannot load TLS certificate/key: {exc}") from None
        if tls.get("client_ca_file"):
            try:
                context.load_verify_locations(tls["client_ca_file"])
            except (OSError, ssl.SSLError) as exc:
                raise WebConfigError(f"web config {path}: cannot load client_ca_file: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        ssl_args = {"ssl_context": context}
    auth = None
    users = doc.get("basic_auth_users")
    if users:
        if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
            raise WebConfigError(f"web config {path}: basic_auth_users must map user names to bcrypt hashes")
        for name, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise WebConfigError(f"web config {path}: password of {name!r} is not a bcrypt hash")
            try:
                bcrypt.checkpw(b"", hashed.encode())  # a malformed hash would lock the user out silently
            except ValueError:
                raise WebConfigError(f"web config {path}: password of {name!r} is not a valid bcrypt hash") from None
        auth = BasicAuth(users)
    return ssl_args, auth
