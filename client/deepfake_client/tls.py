"""TLS options: which CA to trust and, for mutual TLS, which client certificate to present.

Triton terminates TLS on its gRPC port only (`--grpc-use-ssl`); an HTTP port is TLS
only behind a proxy. Files are checked when the client is built, so a typo is an
InvalidInputError there rather than a failed handshake on the first request.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import InvalidInputError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TlsConfig:
    """TLS to the server.

    ca: PEM file of the CA certificate(s) that signed the server's certificate; None
    trusts the default roots (gRPC: those bundled with grpcio, or
    $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH; HTTP: the system's store).
    cert, key: PEM client certificate (chain) and its unencrypted private key, for a
    server that requires mutual TLS; both or neither.
    """

    ca: PathLike | None = None
    cert: PathLike | None = None
    key: PathLike | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise InvalidInputError("TLS client certificate and key go together: give both cert and key, or neither")
        for name in ("ca", "cert", "key"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context from these files; InvalidInputError when one is unreadable or not PEM."""
        for role, path in (("CA", self.ca), ("client certificate", self.cert), ("client key", self.key)):
            if path is not None:
                _check_readable(role, path)
        try:
            context = ssl.create_default_context(cafile=None if self.ca is None else str(self.ca))
        except ssl.SSLError as exc:
            raise InvalidInputError(f"the TLS CA file {self.ca} holds no PEM certificate: {exc}") from exc
        if self.cert is not None:
            try:
                # An empty password: an encrypted key fails here instead of prompting on the terminal.
                context.load_cert_chain(str(self.cert), str(self.key), password="")
            except ssl.SSLError as exc:
                raise InvalidInputError(
                    f"TLS client certificate {self.cert} and key {self.key} are not a matching PEM certificate "
                    f"and unencrypted private key: {exc}"
                ) from exc
        return context

    def check(self) -> TlsConfig:
        """This config once its files are known to be usable (no connection is made)."""
        self.ssl_context()
        return self


def _check_readable(role: str, path: Path) -> None:
    try:
        with open(path, "rb") as stream:
            empty = not stream.read(1)
    except OSError as exc:
        raise InvalidInputError(f"cannot read the TLS {role} file {path}: {exc.strerror or exc}") from exc
    if empty:
        raise InvalidInputError(f"the TLS {role} file {path} is empty")
