"""`--web.config.file` in-process: every bad web config raises WebConfigError with its one-line message
(what the command line prints after "bliss-exporter: error: ", exit 2: tests/test_security.py), and the
good ones give the TLS context and basic auth they describe."""

from __future__ import annotations

import re
import ssl

import bcrypt
import pytest
import yaml

from exporter.web.webconfig import BasicAuth, WebConfigError, load_web_config


def _cert(pki, **extra):
    return {"tls_server_config": {"cert_file": str(pki["server.crt"]), "key_file": str(pki["server.key"]), **extra}}


def _openssl(detail: str) -> str:
    """A pattern for OpenSSL's text of an error: its reason, then where in _ssl.c (build dependent)."""
    return rf"\[{detail}\] .*\(_ssl\.c:\d+\)"


#: (name, file content, message after "web config <path>: "). Content: None (no file), "<dir>", text, bytes,
#: a mapping (dumped as YAML) or a function of the test PKI giving one. A message in re(...) is a pattern.
INVALID_WEB_CONFIGS = [
    ("missing file", None, "No such file or directory"),
    ("directory", "<dir>", "Is a directory"),
    ("bad YAML", "tls_server_config: [unclosed\n", "invalid YAML (while parsing a flow sequence)"),
    ("not UTF-8", b"basic_auth_users:\n  alice: \xff\xfe\n", "not UTF-8 text"),
    ("not a mapping", "- tls_server_config\n", "expected a mapping"),
    ("a scalar", "just text\n", "expected a mapping"),
    ("unknown key", {"basic_auth_user": {"alice": "x"}}, "unknown key(s) basic_auth_user"),
    ("unknown keys, sorted", {"zz": 1, "basic_auth_user": {}}, "unknown key(s) basic_auth_user, zz"),
    ("non-bcrypt password", {"basic_auth_users": {"alice": "wonderland"}}, "password of 'alice' is not a bcrypt hash"),
    ("malformed bcrypt hash", {"basic_auth_users": {"alice": "$2b$10$tooshort"}},
     "password of 'alice' is not a valid bcrypt hash"),
    ("users not a mapping", {"basic_auth_users": ["alice"]}, "basic_auth_users must map user names to bcrypt hashes"),
    ("YAML boolean user name", "basic_auth_users:\n  yes: '$2b$04$x'\n",
     "basic_auth_users must map user names to bcrypt hashes"),
    ("hash not a string", {"basic_auth_users": {"alice": 10}}, "basic_auth_users must map user names to bcrypt hashes"),
    ("tls not a mapping", {"tls_server_config": "yes"}, "tls_server_config must be a mapping"),
    ("missing key_file", lambda pki: {"tls_server_config": {"cert_file": str(pki["server.crt"])}},
     "tls_server_config needs cert_file and key_file"),
    ("file name not a string", {"tls_server_config": {"cert_file": 1, "key_file": 2}},
     "tls_server_config file names must be strings"),
    ("unreadable certificate", lambda pki: {"tls_server_config": {"cert_file": "/etc/hostname",
                                                                  "key_file": str(pki["server.key"])}},
     re.compile("cannot load TLS certificate/key: " + _openssl("SSL[^]]*"))),  # OpenSSL 3: "[SSL] PEM lib"
    ("missing certificate", lambda pki: {"tls_server_config": {"cert_file": "/nonexistent/tls.crt",
                                                               "key_file": str(pki["server.key"])}},
     "cannot load TLS certificate/key: [Errno 2] No such file or directory"),
    ("key of another certificate", lambda pki: {"tls_server_config": {"cert_file": str(pki["server.crt"]),
                                                                      "key_file": str(pki["rogue.key"])}},
     re.compile("cannot load TLS certificate/key: " + _openssl("X509: KEY_VALUES_MISMATCH"))),
    ("unreadable client CA", lambda pki: _cert(pki, client_ca_file="/etc/hostname"),
     re.compile("cannot load client_ca_file: " + _openssl("X509: NO_CERTIFICATE_OR_CRL_FOUND"))),
    ("missing client CA", lambda pki: _cert(pki, client_ca_file="/nonexistent/ca.crt"),
     "cannot load client_ca_file: [Errno 2] No such file or directory"),
    ("unsupported TLS setting", lambda pki: _cert(pki, client_auth_type="RequireAndVerifyClientCert"),
     "unsupported tls_server_config key(s) client_auth_type (supported: cert_file, key_file, client_ca_file)"),
]


def write_config(path, content, request):
    if callable(content):
        content = content(request.getfixturevalue("pki"))
    if content == "<dir>":
        path.mkdir()
    elif isinstance(content, dict):
        path.write_text(yaml.safe_dump(content))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name, content, message", INVALID_WEB_CONFIGS, ids=[c[0] for c in INVALID_WEB_CONFIGS])
def test_invalid_web_config_raises_its_one_line_message(name, content, message, tmp_path, request):
    path = write_config(tmp_path / "web-config.yml", content, request)
    with pytest.raises(WebConfigError) as raised:
        load_web_config(str(path))
    text = str(raised.value)
    assert "\n" not in text, text
    prefix = f"web config {path}: "
    assert text.startswith(prefix), text
    if isinstance(message, re.Pattern):
        assert message.fullmatch(text[len(prefix):]), text
    else:
        assert text == prefix + message
    exc = raised.value  # no chained exception to show with it (raised `from None` inside an except)
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_empty_web_config_changes_nothing(tmp_path):
    for content in ("", "# nothing\n", "tls_server_config:\nbasic_auth_users: {}\nhttp_server_config: {}\n"):
        path = tmp_path / "web-config.yml"
        path.write_text(content)
        assert load_web_config(str(path)) == (None, None), content


def test_tls_config_gives_a_tls_1_2_context_and_client_certificates_only_with_a_client_ca(tmp_path, pki):
    path = tmp_path / "web-config.yml"
    path.write_text(yaml.safe_dump(_cert(pki)))
    ssl_args, auth = load_web_config(str(path))
    context = ssl_args["ssl_context"]
    assert auth is None and list(ssl_args) == ["ssl_context"]
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.verify_mode == ssl.CERT_NONE
    path.write_text(yaml.safe_dump(_cert(pki, client_ca_file=str(pki["ca.crt"]))))
    context = load_web_config(str(path))[0]["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "bliss-exporter test CA"),),)]


def test_basic_auth_users_with_2a_2b_and_2y_hashes(tmp_path):
    hashes = {"alice": bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)).decode()}
    hashes["bob"] = hashes["alice"].replace("$2b$", "$2y$", 1)
    hashes["carol"] = hashes["alice"].replace("$2b$", "$2a$", 1)
    path = tmp_path / "web-config.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": hashes}))
    ssl_args, auth = load_web_config(str(path))
    assert ssl_args is None and isinstance(auth, BasicAuth)
    assert auth.users == {name: hashed.encode() for name, hashed in hashes.items()}
    assert auth.open_paths == {"/healthz"}
