"""TLS options without Triton: URL schemes, certificate files, what reaches tritonclient, error
mapping, the CLI flags, and real handshakes with a small local HTTPS server.

gRPC TLS against the real Triton server: test_client_tls.py (integration).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tritonclient.grpc
import tritonclient.http
from tls_certificates import Certificates, make_certificates
from tritonclient.utils import InferenceServerException

from deepfake_client import (
    NO_RETRY,
    AsyncDeepfakeClient,
    DeepfakeClient,
    InvalidInputError,
    RetryPolicy,
    ServerUnavailableError,
    TlsConfig,
    TlsError,
    cli,
)
from deepfake_client.cli import ExitCode, exit_code_for_error, main
from deepfake_client.errors import from_transport_exception, from_triton_exception
from deepfake_client.retry import call_with_retry
from deepfake_client.transport import (
    GrpcTransport,
    HttpTransport,
    parse_url,
    split_url,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory) -> Certificates:
    """Another CA and its certificates: trusted by nobody here."""
    return make_certificates(tmp_path_factory.mktemp("tls-other"))


@pytest.fixture(autouse=True)
def no_url_from_the_environment(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_URL", raising=False)


# URL schemes


@pytest.mark.parametrize(
    "url, protocol, expected",
    [
        ("grpcs://triton:8001", None, ("triton:8001", "grpc", True)),
        ("https://triton:443/", None, ("triton:443", "http", True)),
        ("grpc://triton:8001", None, ("triton:8001", "grpc", False)),
        ("http://triton:8000", "http", ("triton:8000", "http", False)),
        ("triton:8001", None, ("triton:8001", "grpc", None)),  # no scheme: the URL does not say
        ("triton:8000", "http", ("triton:8000", "http", None)),
    ],
)
def test_parse_url(url, protocol, expected):
    assert parse_url(url, protocol) == expected


@pytest.mark.parametrize(
    "url, protocol, message",
    [
        ("grpcs://triton:8001", "http", "contradicts"),
        ("https://t:443", "grpc", "contradicts"),
        ("tls://t:1", None, "unsupported URL scheme"),
    ],
)
def test_parse_url_refuses_contradictions_and_unknown_schemes(url, protocol, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_url(url, protocol)


def test_split_url_refuses_tls_schemes_rather_than_dropping_them():
    assert split_url("grpc://triton:8001", None) == ("triton:8001", "grpc")
    with pytest.raises(InvalidInputError, match="TLS"):
        split_url("grpcs://triton:8001", None)


@pytest.mark.parametrize("protocol, url", [("grpc", "grpcs://localhost:1"), ("http", "https://localhost:1")])
def test_a_tls_scheme_turns_tls_on_with_the_default_roots(protocol, url):
    with DeepfakeClient(url) as client:
        assert client.protocol == protocol
        assert client.tls == TlsConfig()
        assert client._transport.tls == TlsConfig()
        assert repr(client).startswith(f"DeepfakeClient({protocol}s://localhost:1")


def test_the_environment_url_can_ask_for_tls(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_URL", "grpcs://triton:8001")
    with DeepfakeClient() as client:
        assert (client.url, client.protocol, client.tls) == ("triton:8001", "grpc", TlsConfig())


def test_tls_true_and_false(certs):
    with DeepfakeClient("localhost:1", tls=True) as client:
        assert client.tls == TlsConfig()
    with DeepfakeClient("localhost:1", tls=False) as client:
        assert client.tls is None
    with DeepfakeClient("localhost:1") as client:
        assert client.tls is None  # plain unless asked


@pytest.mark.parametrize(
    "url, tls, message",
    [
        ("grpcs://localhost:1", False, "contradicts"),
        ("grpc://localhost:1", True, "contradicts"),
        ("grpc://localhost:1", "ca", "plain-text URL grpc://localhost:1"),
        ("http://localhost:1", "ca", "plain-text URL http://localhost:1"),
        ("localhost:1", "ca.pem", "TlsConfig"),
    ],
)
def test_contradictory_tls_options_are_refused(certs, url, tls, message):
    if tls == "ca":
        tls = TlsConfig(ca=certs.ca)
    with pytest.raises(InvalidInputError, match=message):
        DeepfakeClient(url, tls=tls)


# Certificate files: checked when the client is built


def test_tls_config_takes_strings_or_paths(certs):
    config = TlsConfig(ca=str(certs.ca), cert=str(certs.client_cert), key=certs.client_key)
    assert config == TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    assert config.check() is config


@pytest.mark.parametrize("given", ["cert", "key"])
def test_client_certificate_and_key_go_together(certs, given):
    with pytest.raises(InvalidInputError, match="both cert and key"):
        TlsConfig(ca=certs.ca, **{given: certs.client_cert})


def _bad_files(certs: Certificates, tmp_path: Path) -> dict:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    return {
        "missing CA": (TlsConfig(ca=tmp_path / "nope.pem"), "cannot read the TLS CA file .*nope.pem"),
        "CA is a folder": (TlsConfig(ca=tmp_path), "cannot read the TLS CA file"),
        "empty CA": (TlsConfig(ca=empty), "CA file .*empty.pem is empty"),
        "CA not PEM": (TlsConfig(ca=garbage), "CA file .*garbage.pem holds no PEM certificate"),
        "key given as CA": (TlsConfig(ca=certs.client_key), "holds no PEM certificate"),
        "missing client key": (
            TlsConfig(ca=certs.ca, cert=certs.client_cert, key=tmp_path / "nope.key"),
            "cannot read the TLS client key file",
        ),
        "cert and key mismatch": (
            TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.server_key),
            "not a matching PEM certificate and unencrypted private key",
        ),
        "cert not PEM": (
            TlsConfig(ca=certs.ca, cert=garbage, key=certs.client_key),
            "not a matching PEM certificate",
        ),
    }


BAD_FILES = [
    "missing CA",
    "CA is a folder",
    "empty CA",
    "CA not PEM",
    "key given as CA",
    "missing client key",
    "cert and key mismatch",
    "cert not PEM",
]


@pytest.mark.parametrize("case", BAD_FILES)
@pytest.mark.parametrize("client_class, protocol", [(DeepfakeClient, "grpc"), (DeepfakeClient, "http"),
                                                     (AsyncDeepfakeClient, "grpc"), (AsyncDeepfakeClient, "http")])
def test_bad_certificate_files_fail_before_any_connection(certs, tmp_path, monkeypatch, case, client_class, protocol):
    tls, message = _bad_files(certs, tmp_path)[case]

    def no_connection(*args, **kwargs):
        raise AssertionError("a transport was built")

    # The asyncio client builds its transport through DeepfakeClient.
    monkeypatch.setattr(DeepfakeClient, "transport_classes", {"grpc": no_connection, "http": no_connection})
    with pytest.raises(InvalidInputError, match=message):
        client_class("localhost:1", protocol=protocol, tls=tls)


def test_an_encrypted_key_is_refused_without_prompting(certs, tmp_path):
    import subprocess

    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(certs.client_key), "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True)
    assert b"ENCRYPTED" in encrypted.read_bytes()
    with pytest.raises(InvalidInputError, match="unencrypted private key"):
        TlsConfig(ca=certs.ca, cert=certs.client_cert, key=encrypted).check()


# What reaches tritonclient


class Recorder:
    """Stands for a tritonclient InferenceServerClient: records its arguments."""

    calls: list = []

    def __init__(self, url, **kwargs):
        Recorder.calls.append((url, kwargs))

    def close(self):
        pass


@pytest.fixture
def recorded(monkeypatch):
    Recorder.calls = []
    for module in (tritonclient.grpc, tritonclient.http):
        monkeypatch.setattr(module, "InferenceServerClient", Recorder)
    return Recorder.calls


def test_grpc_gets_file_paths(certs, recorded):
    # tritonclient.grpc opens and reads these paths itself.
    full = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    GrpcTransport("triton:8001", 60.0, tls=full)
    GrpcTransport("triton:8001", 60.0, tls=TlsConfig())
    GrpcTransport("triton:8001", 60.0)
    expected_full = {
        "ssl": True,
        "root_certificates": str(certs.ca),
        "private_key": str(certs.client_key),
        "certificate_chain": str(certs.client_cert),
    }
    assert recorded == [
        ("triton:8001", expected_full),
        ("triton:8001", {"ssl": True}),  # grpc's default roots
        ("triton:8001", {}),
    ]


def test_http_gets_ssl_options_and_never_insecure(certs, recorded):
    full = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    HttpTransport("triton:443", 60.0, tls=full)._new_client()
    HttpTransport("triton:443", 60.0, tls=TlsConfig())._new_client()
    HttpTransport("triton:8000", 60.0)._new_client()
    options = [kwargs for _, kwargs in recorded]
    assert options[0]["ssl"] is True
    assert options[0]["ssl_options"] == {
        "ca_certs": str(certs.ca),
        "certfile": str(certs.client_cert),
        "keyfile": str(certs.client_key),
    }
    assert options[1]["ssl"] is True and options[1]["ssl_options"] == {}  # geventhttpclient's default roots
    assert "ssl" not in options[2]
    assert not any(o.get("insecure") for o in options)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_installed_tritonclient_accepts_the_options(certs, protocol):
    tls = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    with DeepfakeClient("localhost:1", protocol=protocol, tls=tls) as client:
        if protocol == "http":
            client._transport._client()  # built lazily, per thread; it loads the files
        assert client.tls == tls


# Errors: handshake failures are TlsError, not retried, exit code 3

# Messages of grpcio 1.85 against tritonserver 2.51, seen in test_client_tls.py's setting.
UNTRUSTED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:18001: Tls handshake failed "
             "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
             "CERTIFICATE_VERIFY_FAILED: self signed certificate in certificate chain: OK")
CLOSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:18001: Socket closed"
TLS_TO_PLAIN = ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:18000: "
                "Handshake read failed (Socket closed)")
REFUSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Connection refused"


def unavailable(message: str) -> InferenceServerException:
    return InferenceServerException(msg=message, status="StatusCode.UNAVAILABLE")


@pytest.mark.parametrize(
    "message, tls, error_class, text",
    [
        (UNTRUSTED, True, TlsError, "certificate is not trusted: give the CA"),
        (TLS_TO_PLAIN, True, TlsError, "that the port serves TLS"),
        (CLOSED, True, TlsError, "requires a client certificate"),  # mutual TLS, no or refused certificate
        (CLOSED, False, ServerUnavailableError, "grpcs://"),  # plain text to a TLS port
        (REFUSED, True, ServerUnavailableError, "Connection refused"),  # nobody there: retried as before
    ],
)
def test_grpc_connection_failures(message, tls, error_class, text):
    error = from_triton_exception(unavailable(message), "deepfake_detector", tls=tls)
    assert type(error) is error_class
    assert text in error.message and message in error.message
    assert error.status == "StatusCode.UNAVAILABLE"


def test_ssl_errors_of_the_http_clients_are_tls_errors():
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert isinstance(from_transport_exception(verify, "h:443", 5.0), TlsError)
    assert "not trusted" in from_transport_exception(verify, "h:443", 5.0).message
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    assert isinstance(from_transport_exception(alert, "h:443", 5.0), TlsError)
    refused = from_transport_exception(ConnectionRefusedError(111, "refused"), "h:443", 5.0)
    assert type(refused) is ServerUnavailableError


def test_tls_errors_are_not_retried():
    calls = []

    def handshake():
        calls.append(1)
        raise TlsError("untrusted")

    with pytest.raises(TlsError):
        call_with_retry(handshake, RetryPolicy(max_attempts=4, initial_backoff_s=0), sleep=lambda _: None)
    assert len(calls) == 1
    assert exit_code_for_error(TlsError("untrusted")) is ExitCode.UNAVAILABLE


# CLI flags


def test_cli_tls_flags_build_the_tls_config(certs):
    args = cli.build_parser().parse_args(
        ["image", "x.jpg", "--url", "localhost:1", "--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert),
         "--tls-key", str(certs.client_key)]
    )
    with cli.open_client(args) as client:
        assert client.tls == TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    args = cli.build_parser().parse_args(["health", "--url", "localhost:1", "--tls-ca", str(certs.ca)])
    with cli.open_client(args) as client:
        assert client.tls == TlsConfig(ca=certs.ca)


def test_cli_without_tls_flags_follows_the_scheme():
    args = cli.build_parser().parse_args(["health", "--url", "grpcs://triton:8001"])
    assert cli.tls_config(args) is None
    with cli.open_client(args) as client:
        assert client.tls == TlsConfig()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tls-ca", "{tmp}/nope.pem"], "cannot read the TLS CA file"),
        (["--tls-cert", "{cert}"], "both cert and key"),
        (["--tls-ca", "{ca}", "--url", "grpc://localhost:1"], "plain-text URL"),
    ],
)
def test_cli_bad_tls_options_exit_4(certs, tmp_path, capsys, flags, message):
    flags = [f.format(tmp=tmp_path, cert=certs.client_cert, ca=certs.ca) for f in flags]
    assert main(["health", *flags]) == ExitCode.INVALID_INPUT
    assert message in capsys.readouterr().err


# Real handshakes: the HTTP transports against a local HTTPS server (Triton's HTTP has no TLS: a proxy's job)


class _Live(BaseHTTPRequestHandler):
    def do_GET(self):  # /v2/health/live and everything else: 200, empty
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(context: ssl.SSLContext | None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Live)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def https_servers(certs):
    """Ports of a TLS server, a mutual-TLS server (client certificates of the test CA) and a plain one."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certs.server_cert, certs.server_key)
    mutual = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mutual.load_cert_chain(certs.server_cert, certs.server_key)
    mutual.verify_mode = ssl.CERT_REQUIRED
    mutual.load_verify_locations(certs.ca)
    servers = {name: _serve(context) for name, context in (("tls", tls), ("mutual", mutual), ("plain", None))}
    yield {name: server.server_address[1] for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _http_live(url: str, tls, asynchronous: bool) -> bool:
    kwargs = dict(protocol="http", tls=tls, timeout_s=30, retry=NO_RETRY)
    if not asynchronous:
        with DeepfakeClient(url, **kwargs) as client:
            return client._transport.server_live()

    async def run():
        async with AsyncDeepfakeClient(url, **kwargs) as client:
            return await asyncio.to_thread(client.sync._transport.server_live)

    return asyncio.run(run())


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_https_with_the_ca(certs, https_servers, asynchronous):
    port = https_servers["tls"]
    assert _http_live(f"localhost:{port}", TlsConfig(ca=certs.ca), asynchronous)
    assert _http_live(f"https://127.0.0.1:{port}", TlsConfig(ca=certs.ca), asynchronous)  # IP in the certificate


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_https_without_the_ca_is_a_tls_error(https_servers, asynchronous):
    with pytest.raises(TlsError, match="not trusted"):
        _http_live(f"https://localhost:{https_servers['tls']}", None, asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_https_trusting_another_ca_is_a_tls_error(other_certs, https_servers, asynchronous):
    with pytest.raises(TlsError, match="not trusted"):
        _http_live(f"localhost:{https_servers['tls']}", TlsConfig(ca=other_certs.ca), asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_https_mutual_tls_with_the_client_certificate(certs, https_servers, asynchronous):
    tls = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    assert _http_live(f"localhost:{https_servers['mutual']}", tls, asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_https_mutual_tls_without_a_client_certificate_is_refused(certs, https_servers, asynchronous):
    # TLS 1.3: the server checks the client's certificate after the client's handshake is done. The
    # sync client then reads the alert or an EOF (TlsError either way); aiohttp reads the alert
    # (TlsError) or, more often, only a connection reset, indistinguishable from a server going away.
    refused = (TlsError, ServerUnavailableError) if asynchronous else TlsError
    with pytest.raises(refused):
        _http_live(f"localhost:{https_servers['mutual']}", TlsConfig(ca=certs.ca), asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_tls_to_a_plain_port_is_a_tls_error(certs, https_servers, asynchronous):
    with pytest.raises(TlsError, match="wrong version number"):
        _http_live(f"localhost:{https_servers['plain']}", TlsConfig(ca=certs.ca), asynchronous)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_plain_http_to_a_tls_port_is_server_unavailable(https_servers, asynchronous):
    with pytest.raises(ServerUnavailableError, match=f"localhost:{https_servers['tls']}"):
        _http_live(f"http://localhost:{https_servers['tls']}", None, asynchronous)


# The local test server passes TLS flags through


class _Started(Exception):
    pass


def test_local_server_appends_extra_args_and_keeps_its_defaults(tmp_path, monkeypatch, certs):
    from deepfake_dev import local_server

    (tmp_path / "deepfake_detector").mkdir()
    (tmp_path / "deepfake_detector" / "config.pbtxt").write_text("")
    commands = []

    def popen(command, **kwargs):
        commands.append(command)
        raise _Started

    monkeypatch.setattr(local_server.subprocess, "Popen", popen)
    for extra in ((), certs.triton_args(mutual=True)):
        server = local_server.LocalTritonServer(tmp_path, local_server.Ports.free(), extra_args=extra)
        with pytest.raises(_Started):
            server.start()
        server.stop()
    default, with_tls = commands
    assert not any("ssl" in arg for arg in default)
    assert with_tls[len(default) :] == certs.triton_args(mutual=True)
    flag_names = [arg.split("=")[0] for arg in default]  # values differ: each server has its own work folder
    assert [arg.split("=")[0] for arg in with_tls[: len(default)]] == flag_names
    with pytest.raises(TypeError, match="sequence of flags"):
        local_server.LocalTritonServer(tmp_path, extra_args="--grpc-use-ssl=true")
