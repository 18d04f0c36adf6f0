"""The self-signed pair for local HTTP/3: what it covers and how it is kept."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from hyperlinkr.certs import CERT_FILE_NAME, KEY_FILE_NAME, main, make_self_signed


def test_the_certificate_names_localhost_and_the_loopback_addresses(
    tmp_path: Path,
) -> None:
    pair = make_self_signed(tmp_path)
    cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert cert.issuer == cert.subject


def test_the_pair_loads_as_a_server_certificate_and_its_key(tmp_path: Path) -> None:
    pair = make_self_signed(tmp_path)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
        pair.cert_file, pair.key_file
    )


def test_the_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    pair = make_self_signed(tmp_path)
    assert stat.S_IMODE(pair.key_file.stat().st_mode) == 0o600


def test_a_second_run_replaces_the_pair(tmp_path: Path) -> None:
    first = make_self_signed(tmp_path).cert_file.read_bytes()
    second = make_self_signed(tmp_path).cert_file.read_bytes()
    assert first != second


def test_the_command_writes_both_files_into_a_new_directory(tmp_path: Path) -> None:
    target = tmp_path / "tls" / "local"
    assert main([str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == [CERT_FILE_NAME, KEY_FILE_NAME]


def test_a_validity_under_one_day_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        make_self_signed(tmp_path, valid_days=0)
