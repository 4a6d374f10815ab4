"""Throwaway certificates for TLS tests: a CA, a server certificate for localhost, a client certificate.

Made with the `openssl` command line (the `cryptography` package is not a dependency):
EC P-256 keys, valid for two days, nothing written outside the given folder.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# `openssl req` needs a config file; this one is complete, so the system's openssl.cnf is never read.
_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXTENSIONS = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = {usage}
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def triton_args(self, mutual: bool) -> list[str]:
        """tritonserver's gRPC TLS flags, as docker/serving/entrypoint.py passes them."""
        args = ["--grpc-use-ssl=true", f"--grpc-server-cert={self.server_cert}", f"--grpc-server-key={self.server_key}"]
        if mutual:
            args += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={self.ca}"]
        return args


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the TLS tests need the `openssl` command line")
    result = subprocess.run([openssl, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr}")


def _key_and_request(folder: Path, name: str, cn: str, *extra: str) -> tuple[Path, Path]:
    config = folder / f"{name}.cnf"
    config.write_text(_REQ_CONFIG.format(cn=cn))
    key, out = folder / f"{name}.key", folder / f"{name}.{'crt' if extra else 'csr'}"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(out), "-config", str(config), *extra)
    return key, out


def _signed_leaf(folder: Path, name: str, usage: str, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    key, request = _key_and_request(folder, name, "localhost")
    extensions = folder / f"{name}.ext"
    extensions.write_text(_LEAF_EXTENSIONS.format(usage=usage))
    cert = folder / f"{name}.crt"
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "2", "-out", str(cert), "-extfile", str(extensions))
    return cert, key


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _key_and_request(folder, "ca", "deepfake test CA", "-x509", "-days", "2", "-extensions", "ca")
    server_cert, server_key = _signed_leaf(folder, "server", "serverAuth", ca_cert, ca_key)
    client_cert, client_key = _signed_leaf(folder, "client", "clientAuth", ca_cert, ca_key)
    return Certificates(ca_cert, server_cert, server_key, client_cert, client_key)
