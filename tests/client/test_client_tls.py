"""The SDK and CLI against the real Triton server with gRPC TLS on (mutual TLS, as
docker/serving/entrypoint.py starts it with DEEPFAKE_GRPC_TLS=mutual).

One server shows all: with the CA and a client certificate the astronaut is judged;
without the CA, plain text, without a client certificate, or with one from another
CA, the connection fails with a clear typed error. Certificates: tls_certificates.py
(openssl command line). Generous client timeouts throughout: Triton 2.51 can crash
when a gRPC client abandons a request in flight (see test_client_integration.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tls_certificates import Certificates, make_certificates

from deepfake_client import (
    NO_RETRY,
    AsyncDeepfakeClient,
    DeepfakeClient,
    ServerUnavailableError,
    TlsConfig,
    TlsError,
)
from deepfake_client.cli import ExitCode, main
from deepfake_dev import samples

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::deepfake_client.UntrainedModelsWarning")]

TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(cpu_repository, certs, tmp_path_factory):
    from deepfake_dev.local_server import LocalTritonServer, Ports

    log = tmp_path_factory.mktemp("triton-tls") / "tritonserver.log"
    server = LocalTritonServer(cpu_repository, Ports.free(), log_path=log, extra_args=certs.triton_args(mutual=True))
    server.start(timeout_s=900)  # readiness is polled over HTTP, which stays plain
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client_tls(certs) -> TlsConfig:
    return TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)


def test_the_server_runs_with_tls_flags(tls_server, certs):
    assert f"--grpc-server-cert={certs.server_cert}" in tls_server.extra_args
    assert "--grpc-use-ssl-mutual=true" in tls_server.extra_args
    assert tls_server.is_running()


def test_with_the_ca_and_client_certificate_the_astronaut_is_judged(tls_server, client_tls, sample_media):
    with DeepfakeClient(tls_server.grpc_url, tls=client_tls, timeout_s=TIMEOUT_S) as client:
        assert repr(client).startswith(f"DeepfakeClient(grpcs://{tls_server.grpc_url}")
        health = client.health()
        result = client.detect(sample_media / samples.FACE_IMAGE)
    assert health.ready and health.server_version
    assert len(result.faces) == 1
    assert result.faces[0].detector_score > 0.99
    assert 0.0 <= result.fake_probability <= 1.0


def test_the_asyncio_client_over_tls(tls_server, client_tls, sample_media):
    async def run():
        async with AsyncDeepfakeClient(f"grpcs://{tls_server.grpc_url}", tls=client_tls, timeout_s=TIMEOUT_S) as c:
            return await c.detect(sample_media / samples.FACE_IMAGE)

    assert len(asyncio.run(run()).faces) == 1


def test_without_the_ca_the_handshake_fails(tls_server, sample_media):
    # grpcs:// trusts the default roots, which never signed the test CA.
    with DeepfakeClient(f"grpcs://{tls_server.grpc_url}", timeout_s=TIMEOUT_S) as client:
        with pytest.raises(TlsError, match="certificate is not trusted.*CERTIFICATE_VERIFY_FAILED"):
            client.detect(sample_media / samples.FACE_IMAGE)
        with pytest.raises(TlsError):
            client.health()  # a TLS failure is not reported as "not live": it would hide the cause


def test_without_the_ca_the_asyncio_handshake_fails(tls_server):
    async def run():
        async with AsyncDeepfakeClient(f"grpcs://{tls_server.grpc_url}", timeout_s=TIMEOUT_S) as client:
            await client.health()

    with pytest.raises(TlsError, match="not trusted"):
        asyncio.run(run())


def test_plain_grpc_to_the_tls_port_fails_clearly(tls_server, sample_media):
    with DeepfakeClient(tls_server.grpc_url, retry=NO_RETRY, timeout_s=TIMEOUT_S) as client:
        assert client.tls is None
        with pytest.raises(ServerUnavailableError, match="closed the connection.*serves TLS.*grpcs://"):
            client.detect(sample_media / samples.FACE_IMAGE)


def test_mutual_tls_refuses_a_client_without_certificate(tls_server, certs, sample_media):
    with DeepfakeClient(tls_server.grpc_url, tls=TlsConfig(ca=certs.ca), timeout_s=TIMEOUT_S) as client:
        with pytest.raises(TlsError, match="requires a client certificate"):
            client.detect(sample_media / samples.FACE_IMAGE)


def test_mutual_tls_refuses_a_certificate_from_another_ca(tls_server, certs, tmp_path, sample_media):
    stranger = make_certificates(tmp_path)
    tls = TlsConfig(ca=certs.ca, cert=stranger.client_cert, key=stranger.client_key)
    with DeepfakeClient(tls_server.grpc_url, tls=tls, timeout_s=TIMEOUT_S) as client:
        with pytest.raises(TlsError, match="refused the one given"):
            client.detect(sample_media / samples.FACE_IMAGE)


def test_http_stays_plain(tls_server):
    with DeepfakeClient(tls_server.http_url, protocol="http", timeout_s=TIMEOUT_S) as client:
        assert client.health().ready


def test_cli_over_tls(tls_server, certs, sample_media, capsys):
    image = str(sample_media / samples.FACE_IMAGE)
    flags = ["--url", tls_server.grpc_url, "--timeout", str(TIMEOUT_S), "--json", "--tls-ca", str(certs.ca)]
    client_certificate = ["--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]

    code = main(["image", image, *flags, *client_certificate])
    out = json.loads(capsys.readouterr().out)
    assert code in (ExitCode.REAL, ExitCode.FAKE)
    assert len(out["faces"]) == 1

    assert main(["image", image, *flags]) == ExitCode.UNAVAILABLE  # no client certificate
    assert "requires a client certificate" in capsys.readouterr().err
