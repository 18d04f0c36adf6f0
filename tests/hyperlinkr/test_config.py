"""Settings from the environment: defaults, validation, documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlinkr.config import SETTINGS_DOC, Settings, render_env_example
from hyperlinkr.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings.node_name == "hyperlinkr"
    assert settings.data_dir == Path("./data")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert 1 <= settings.workers <= 64
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.code_length == 7
    assert settings.max_body_bytes == 16384
    assert settings.l1_capacity_entries == 200_000
    assert settings.negative_ttl_s == 5.0
    assert settings.click_ring_records == 65536
    assert settings.write_ring_records == 4096
    assert settings.flush_interval_ms == 1000
    assert settings.recent_clicks == 50
    assert settings.default_redirect_status == 302
    assert settings.allowed_schemes == frozenset({"http", "https"})
    assert settings.allow_private_hosts is False
    assert settings.blocklist_file is None
    assert settings.own_hosts == frozenset({"127.0.0.1"})
    assert "bit.ly" in settings.shortener_hosts
    assert settings.lmdb_map_size_mb == 1024
    assert settings.lmdb_map_size_bytes == 1024 * 1024 * 1024
    assert settings.redis_url is None
    assert settings.access_log is False
    assert settings.log_level == "INFO"


def test_every_setting_is_read_from_its_variable(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "HYPERLINKR_NODE_NAME": "edge-1",
            "HYPERLINKR_DATA_DIR": str(tmp_path),
            "HYPERLINKR_HOST": "0.0.0.0",
            "HYPERLINKR_PORT": "9000",
            "HYPERLINKR_WORKERS": "3",
            "HYPERLINKR_PUBLIC_BASE_URL": "https://Sho.rt/",
            "HYPERLINKR_CODE_LENGTH": "9",
            "HYPERLINKR_MAX_BODY_BYTES": "4096",
            "HYPERLINKR_L1_CAPACITY_ENTRIES": "5000",
            "HYPERLINKR_NEGATIVE_TTL_S": "0.5",
            "HYPERLINKR_CLICK_RING_RECORDS": "1024",
            "HYPERLINKR_WRITE_RING_RECORDS": "256",
            "HYPERLINKR_FLUSH_INTERVAL_MS": "50",
            "HYPERLINKR_RECENT_CLICKS": "10",
            "HYPERLINKR_DEFAULT_REDIRECT_STATUS": "307",
            "HYPERLINKR_ALLOWED_SCHEMES": "HTTPS, ftp",
            "HYPERLINKR_ALLOW_PRIVATE_HOSTS": "yes",
            "HYPERLINKR_BLOCKLIST_FILE": str(tmp_path / "block.txt"),
            "HYPERLINKR_OWN_HOSTS": "Www.Sho.rt, bücher.de",
            "HYPERLINKR_SHORTENER_HOSTS": "bit.ly",
            "HYPERLINKR_LMDB_MAP_SIZE_MB": "64",
            "HYPERLINKR_ACCESS_LOG": "1",
            "HYPERLINKR_LOG_LEVEL": "debug",
        }
    )
    assert settings.node_name == "edge-1"
    assert settings.data_dir == tmp_path
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9000, 3)
    assert settings.public_base_url == "https://Sho.rt"
    assert settings.code_length == 9
    assert settings.max_body_bytes == 4096
    assert settings.l1_capacity_entries == 5000
    assert settings.negative_ttl_s == 0.5
    assert settings.click_ring_records == 1024
    assert settings.write_ring_records == 256
    assert settings.flush_interval_ms == 50
    assert settings.recent_clicks == 10
    assert settings.default_redirect_status == 307
    assert settings.allowed_schemes == frozenset({"https", "ftp"})
    assert settings.allow_private_hosts is True
    assert settings.blocklist_file == tmp_path / "block.txt"
    assert settings.own_hosts == frozenset({"sho.rt", "www.sho.rt", "xn--bcher-kva.de"})
    assert settings.shortener_hosts == frozenset({"bit.ly"})
    assert settings.lmdb_map_size_mb == 64
    assert settings.access_log is True
    assert settings.log_level == "DEBUG"


def test_plain_port_is_honoured_when_hyperlinkr_port_is_unset() -> None:
    assert Settings.from_env({"PORT": "5100"}).port == 5100
    assert Settings.from_env({"PORT": "5100"}).public_base_url.endswith(":5100")
    both = {"PORT": "5100", "HYPERLINKR_PORT": "6000"}
    assert Settings.from_env(both).port == 6000


def test_bad_plain_port_names_port() -> None:
    with pytest.raises(ConfigError, match=r"PORT='x'.*HYPERLINKR_PORT"):
        Settings.from_env({"PORT": "x"})


def test_default_base_url_brackets_an_ipv6_host() -> None:
    settings = Settings.from_env({"HYPERLINKR_HOST": "::1"})
    assert settings.public_base_url == "http://[::1]:8000"
    assert settings.own_hosts == frozenset({"::1"})


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NODE_NAME", "Upper"),
        ("NODE_NAME", "a" * 25),
        ("NODE_NAME", "has/slash"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "eighty"),
        ("WORKERS", "0"),
        ("WORKERS", "65"),
        ("PUBLIC_BASE_URL", "ftp://sho.rt"),
        ("PUBLIC_BASE_URL", "https://"),
        ("PUBLIC_BASE_URL", "sho.rt"),
        ("PUBLIC_BASE_URL", "https://sho.rt/?a=1"),
        ("PUBLIC_BASE_URL", "https://sho.rt/#x"),
        ("PUBLIC_BASE_URL", "https://sho.rt:99999"),
        ("CODE_LENGTH", "4"),
        ("CODE_LENGTH", "17"),
        ("CODE_LENGTH", "7.5"),
        ("MAX_BODY_BYTES", "-1"),
        ("L1_CAPACITY_ENTRIES", "ten"),
        ("NEGATIVE_TTL_S", "nan"),
        ("NEGATIVE_TTL_S", "-1"),
        ("NEGATIVE_TTL_S", "soon"),
        ("CLICK_RING_RECORDS", "1000"),
        ("WRITE_RING_RECORDS", "3000"),
        ("FLUSH_INTERVAL_MS", "0"),
        ("RECENT_CLICKS", "-5"),
        ("DEFAULT_REDIRECT_STATUS", "303"),
        ("DEFAULT_REDIRECT_STATUS", "200"),
        ("ALLOWED_SCHEMES", "http,javascript"),
        ("ALLOWED_SCHEMES", "http,1bad"),
        ("ALLOW_PRIVATE_HOSTS", "maybe"),
        ("OWN_HOSTS", "not a host"),
        ("SHORTENER_HOSTS", "bit.ly,bad/host"),
        ("LMDB_MAP_SIZE_MB", "0"),
        ("ACCESS_LOG", "2"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_name_variable_value_and_expectation(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({f"HYPERLINKR_{name}": value})
    message = str(caught.value)
    assert f"HYPERLINKR_{name}" in message
    assert "expected" in message


def test_redis_url_is_taken_and_checked() -> None:
    settings = Settings.from_env({"HYPERLINKR_REDIS_URL": "redis://localhost:6379/0"})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.redis_cluster is False
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"HYPERLINKR_REDIS_URL": "localhost:6379"})
    assert "redis://127.0.0.1:6379/0" in str(caught.value)


def test_empty_values_mean_default() -> None:
    settings = Settings.from_env({"HYPERLINKR_PORT": " ", "HYPERLINKR_REDIS_URL": ""})
    assert settings.port == 8000
    assert settings.redis_url is None


def test_describe_covers_every_field() -> None:
    names = {row[0] for row in Settings.describe()}
    fields = {f"HYPERLINKR_{field.upper()}" for field in Settings.__slots__}
    assert names == fields


def test_env_example_is_generated_from_the_table() -> None:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    assert text == render_env_example()
    for row in SETTINGS_DOC:
        assert f"# {row.env_name}={row.default}" in text


def test_http3_is_off_unless_a_port_is_set() -> None:
    settings = Settings.from_env({"HYPERLINKR_H3_PORT": "0"})
    assert (settings.h3_port, settings.tls_cert_file, settings.tls_key_file) == (
        None,
        None,
        None,
    )


def test_http3_reads_its_port_certificate_and_key(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "HYPERLINKR_H3_PORT": "8443",
            "HYPERLINKR_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
            "HYPERLINKR_TLS_KEY_FILE": str(tmp_path / "key.pem"),
        }
    )
    assert settings.h3_port == 8443
    assert settings.tls_cert_file == tmp_path / "cert.pem"
    assert settings.tls_key_file == tmp_path / "key.pem"


def test_http3_without_tls_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="HYPERLINKR_TLS_CERT_FILE") as caught:
        Settings.from_env({"HYPERLINKR_H3_PORT": "8443"})
    assert "make-cert" in str(caught.value)


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="set both"):
        Settings.from_env({"HYPERLINKR_TLS_CERT_FILE": "cert.pem"})


def test_the_redirect_fast_path_is_on_unless_turned_off() -> None:
    assert Settings.from_env({}).fast_path is True
    off = Settings.from_env({"HYPERLINKR_FAST_PATH": "false"})
    assert off.fast_path is False
