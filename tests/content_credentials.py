"""C2PA test images signed at test time with self-made certificate chains (ES256, P-256).

Two chains, each a root CA and a signing certificate: the tests trust the first root (a trust
anchor given to ProvenanceReader) and not the second. The c2pa library's Builder signs; nothing
is written outside the folder a test gives. The keys live only as long as the test session.

(A plain module with a unique name, imported by the tests: pytest puts tests/ on sys.path.)
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATOR = "test-generator"
GENERATED = (("c2pa.created", IPTC + "trainedAlgorithmicMedia"),)  # made by generative AI
AI_EDITED = (("c2pa.created", IPTC + "digitalCapture"), ("c2pa.edited", IPTC + "compositeWithTrainedAlgorithmicMedia"))
CAPTURED = (("c2pa.created", IPTC + "digitalCapture"),)  # a camera's, no AI


@dataclass(frozen=True)
class Chain:
    root_pem: str  # the root CA certificate: a trust anchor when trusted
    chain_pem: str  # the signing certificate, then its root
    key_pem: str  # the signing certificate's private key
    signer: str  # the signing certificate's common name


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Deepfake Tests")])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if not ca:  # C2PA signing certificates need an extended key usage it accepts
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_chain(name: str) -> Chain:
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate(f"{name} Root CA", root_key, f"{name} Root CA", root_key, ca=True)
    leaf = _certificate(f"{name} Signer", leaf_key, f"{name} Root CA", root_key, ca=False)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM).decode("ascii")  # noqa: E731
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode("ascii")
    return Chain(root_pem=pem(root), chain_pem=pem(leaf) + pem(root), key_pem=key, signer=f"{name} Signer")


def sign(image: bytes, chain: Chain, *, actions: tuple[tuple[str, str | None], ...] = GENERATED,
         mime: str = "image/jpeg") -> bytes:
    """The image with a manifest whose c2pa.actions declare these (action, digital source type)."""
    entries = [{"action": action, **({"digitalSourceType": source} if source else {})} for action, source in actions]
    manifest = {
        "claim_generator_info": [{"name": GENERATOR, "version": "1.0"}],
        "title": "test image",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": entries}}],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.chain_pem.encode(), chain.key_pem.encode(), None)
    signer = c2pa.Signer.from_info(info)
    with signer, c2pa.Builder(manifest) as builder:
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(image), out)
    return out.getvalue()


def tamper(signed: bytes) -> bytes:
    """One byte of the JPEG's entropy-coded data changed after signing (still a decodable JPEG)."""
    data = bytearray(signed)
    for position in range(len(data) - 64, len(data) // 2, -1):
        if data[position] not in (0x00, 0xFF, 0xFE) and data[position - 1] != 0xFF:
            data[position] ^= 0x01
            return bytes(data)
    raise ValueError("no byte to change")


def break_manifest(signed: bytes) -> bytes:
    """The manifest store's JUMBF box type garbled: the image still decodes, the library cannot read the manifest."""
    data = bytearray(signed)
    data[signed.index(b"jumb")] ^= 0xFF
    return bytes(data)


def jpeg(width: int = 160, height: int = 120, colour: tuple[int, int, int] = (200, 150, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass(frozen=True)
class Samples:
    trust_anchor: str  # PEM: trust only the first chain's root
    trusted_signer: str
    valid: bytes  # trusted signer, declared AI-generated
    untrusted: bytes  # signed by the second chain, declared AI-edited
    tampered: bytes  # `valid` with one byte changed
    plain: bytes  # no manifest
    unreadable: bytes  # `valid` with its manifest store garbled

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / f"{name}.jpg" for name in ("valid", "untrusted", "tampered", "plain", "unreadable")}
        for name, path in paths.items():
            path.write_bytes(getattr(self, name))
        return paths


def make_samples(image: bytes | None = None) -> Samples:
    """The five provenance cases, from `image` (a JPEG; default: a plain colour)."""
    image = image or jpeg()
    trusted, other = make_chain("Trusted Test"), make_chain("Unknown Test")
    valid = sign(image, trusted)
    return Samples(
        trust_anchor=trusted.root_pem,
        trusted_signer=trusted.signer,
        valid=valid,
        untrusted=sign(image, other, actions=AI_EDITED),
        tampered=tamper(valid),
        plain=image,
        unreadable=break_manifest(valid),
    )
