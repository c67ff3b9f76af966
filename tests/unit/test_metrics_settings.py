"""Monitor settings, the published address and the CURVE key files."""

import os
import stat

import pytest

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.metrics.address import (
    ENV_VAR,
    MonitorAddress,
    default_port,
    find_address,
    publish_address,
)
from adaptive_snakemake.metrics.keys import ensure_keys, load_key_pair
from adaptive_snakemake.metrics.settings import MonitorSettings


@pytest.fixture(autouse=True)
def no_monitor_env():
    saved = {ENV_VAR: os.environ.pop(ENV_VAR, None)}
    yield
    for var, value in saved.items():
        os.environ.pop(var, None)
        if value is not None:
            os.environ[var] = value


def test_defaults_and_values():
    assert MonitorSettings.from_config(None) == MonitorSettings()
    settings = MonitorSettings.from_config({"enabled": False, "port": 25000, "stale_intervals": 5})
    assert settings.enabled is False and settings.port == 25000
    assert settings.stale_intervals == 5.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"prot": 1}, "unknown key 'prot'"),
        ({"enabled": "yes"}, "enabled: expected true or false"),
        ({"port": 80}, "port: expected a port number"),
        ({"port": True}, "port: expected a port number"),
        ({"stale_intervals": 0}, "stale_intervals: expected a positive number"),
        ({"max_record_bytes": 10**9}, "max_record_bytes"),
        ({"host": ""}, "host"),
        ([1], "expected a mapping"),
    ],
)
def test_mistakes_are_refused_naming_the_key(section, message):
    with pytest.raises(ConfigError, match=message) as info:
        MonitorSettings.from_config(section)
    assert "config/config.yaml: monitor:" in str(info.value)


def test_default_port_is_stable_per_directory_and_in_range(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert default_port(a) == default_port(a) == default_port(str(a) + "/")
    assert default_port(a) != default_port(b)
    assert all(20000 <= default_port(tmp_path / str(i)) < 40000 for i in range(200))


def test_keys_are_private_and_never_replaced(tmp_path):
    keys = ensure_keys(tmp_path)
    for directory in (keys.server_public.parent, keys.allowed_clients):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in (keys.server_secret, keys.client_secret, keys.server_public):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public, secret = load_key_pair(keys.client_secret)
    assert secret is not None
    assert load_key_pair(keys.allowed_clients / "client.key") == (public, None)
    before = keys.server_secret.read_bytes()
    ensure_keys(tmp_path)
    assert keys.server_secret.read_bytes() == before


def test_address_lookup_order(tmp_path):
    settings = MonitorSettings(host="127.0.0.1", port=23456)
    address = MonitorAddress.for_workflow(tmp_path, settings, ensure_keys(tmp_path))
    assert find_address(tmp_path) == MonitorAddress.disabled()  # nothing published yet
    publish_address(tmp_path, address)
    assert os.environ[ENV_VAR] == address.to_json()
    del os.environ[ENV_VAR]
    assert find_address(tmp_path) == address  # from .adaptive-snakemake/monitor.json
    os.environ[ENV_VAR] = "{not json"  # broken: the file still tells
    assert find_address(tmp_path) == address
    os.environ[ENV_VAR] = "off"
    assert find_address(tmp_path) == MonitorAddress.disabled()
    assert MonitorAddress.from_json(address.to_json()) == address
