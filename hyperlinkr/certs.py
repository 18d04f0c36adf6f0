"""A self-signed TLS certificate for running HTTP/3 locally.

QUIC has no plaintext mode, so the h3 role cannot start without a
certificate and key. For production use a certificate from a real CA;
for a laptop, a test or CI, `make_self_signed(directory)` writes
`cert.pem` and `key.pem` valid for `localhost`, `127.0.0.1` and `::1`.
A client trusts it by loading `cert.pem` as its only CA
(`QuicConfiguration.load_verify_locations(cafile=...)`, `curl --cacert`),
which is why the certificate is its own issuer and marked as a CA.

    python -m hyperlinkr.certs DIR

The key is an ECDSA P-256 key: aioquic and every HTTP/3 client accept
it, and it is generated in milliseconds, unlike an RSA key.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CERT_FILE_NAME", "KEY_FILE_NAME", "CertPair", "make_self_signed"]

CERT_FILE_NAME = "cert.pem"
KEY_FILE_NAME = "key.pem"
DEFAULT_VALID_DAYS = 365
_DNS_NAMES = ("localhost",)
_IP_ADDRESSES = ("127.0.0.1", "::1")
# Tolerates a client clock a little behind ours.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CertPair:
    """Where `make_self_signed` wrote the certificate and its key."""

    cert_file: Path
    key_file: Path


def make_self_signed(directory: Path, valid_days: int = DEFAULT_VALID_DAYS) -> CertPair:
    """Write `cert.pem` and `key.pem` into `directory` (created if missing)."""
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, got {valid_days}")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(key, valid_days)
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / CERT_FILE_NAME, directory / KEY_FILE_NAME)
    pair.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pair.key_file, _key_pem(key))
    return pair


def _certificate(key: ec.EllipticCurvePrivateKey, valid_days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )
    for extension, critical in _extensions(key):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


def _extensions(
    key: ec.EllipticCurvePrivateKey,
) -> list[tuple[x509.ExtensionType, bool]]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in _DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _IP_ADDRESSES]
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return [
        (x509.SubjectAlternativeName(names), False),
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (key_id, False),
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: the key is never readable by others,
    # not even for the moment between writing and a later chmod.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hyperlinkr.certs",
        description="Write a self-signed cert.pem and key.pem for localhost.",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--days", type=int, default=DEFAULT_VALID_DAYS)
    args = parser.parse_args(argv)
    try:
        pair = make_self_signed(args.directory, args.days)
    except (OSError, ValueError) as exc:
        print(f"cannot write the certificate: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {pair.cert_file} and {pair.key_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
