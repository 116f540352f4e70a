"""The runtime configuration: what a good file gives, and what a bad one is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbmdm.runtime.config import (
    REFERENCE_SYSTEMS,
    ConfigError,
    CredentialSetting,
    load_config,
    load_delivery,
)

GOOD = """\
store: state/runtime.db
nodes:
  ccb: {system: "runtime_world:ccb_system"}
  bridge:
    listen: "127.0.0.1:8400"
    accept: {ccb: {user: ccb, password_env: TEST_CCB_PASSWORD}}
  mdm: {url: "https://mdm.example.com", credential: {token_env: TEST_MDM_TOKEN}}
delivery: {lease_s: 2, batch: 20}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runtime.yaml"
    path.write_text(text)
    return path


def test_a_good_configuration(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.store == str(tmp_path / "state" / "runtime.db")  # relative to the file
    assert config.hosted() == ["ccb", "bridge"]
    assert config.nodes["bridge"].address() == ("127.0.0.1", 8400)
    settings = config.delivery.settings()
    assert (settings.lease_s, settings.batch, settings.max_attempts) == (2, 20, 4)


@pytest.mark.parametrize("system", ["ccb", "mdm"])
def test_a_reference_simulator_named_by_its_former_module_still_loads(
    tmp_path: Path, system: str
) -> None:
    text = GOOD.replace('"runtime_world:ccb_system"', f'"ccbmdm.runtime.sim.{system}:connect"')
    config = load_config(write(tmp_path, text))
    assert config.nodes["ccb"].system == REFERENCE_SYSTEMS[system]


def test_a_simulator_takes_the_delivery_settings_of_a_file(tmp_path: Path) -> None:
    """A runtime configuration's delivery: (the rest is not the simulator's), or a file that
    holds only them; a bad value is named with the file and the setting."""
    settings = load_delivery(write(tmp_path, GOOD)).settings()
    assert (settings.lease_s, settings.batch, settings.retry_window_s) == (2, 20, 3600)
    only = write(tmp_path, "delivery: {retry_window_s: 60, backoff_cap_s: 5}\n")
    assert load_delivery(only).settings().retry_window_s == 60
    bad = write(tmp_path, "delivery: {retry_window_s: -1}\n")
    with pytest.raises(ConfigError, match=r"runtime.yaml: delivery.retry_window_s: .*0"):
        load_delivery(bad)


def test_a_postgresql_store_is_taken_as_given_with_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PG_HOST", "db.example.com")
    text = GOOD.replace("state/runtime.db", "postgresql://ccbmdm@${TEST_PG_HOST}/ccbmdm")
    assert load_config(write(tmp_path, text)).store == "postgresql://ccbmdm@db.example.com/ccbmdm"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("  mdm: {url", "  nope: {url"), "nodes.nope"),
        (("delivery: {lease_s: 2, batch: 20}", "delivery: {lease_s: 0}"), "delivery.lease_s"),
        (('"runtime_world:ccb_system"', '"runtime_world"'), "system must be module:factory"),
        (("127.0.0.1:8400", "localhost"), "listen must be host:port"),
        (('{url: "https://mdm.example.com"', '{url: "ftp://mdm"'), "must start with http"),
        (("ccb: {system", "ccb: {colour: red, system"), "nodes.ccb.colour"),
        (('  ccb: {system: "runtime_world:ccb_system"}\n', ""), "missing: ['ccb']"),
        (("{token_env: TEST_MDM_TOKEN}", "{user: mdm}"), "user with password_env"),
        (
            (
                "accept: {ccb: {user: ccb, password_env: TEST_CCB_PASSWORD}}",
                "accept: {ccb: {token_env: T}, mdm: {token_env: T}}",
            ),
            "each partner needs a credential of its own",
        ),
        (
            (
                "accept: {ccb: {user: ccb, password_env: TEST_CCB_PASSWORD}}",
                "accept: {bridge: {token_env: TEST_BRIDGE_TOKEN}}",
            ),
            "nodes.bridge.accept.bridge: bridge posts nothing to bridge; only ccb and mdm may",
        ),
        (
            (
                'ccb: {system: "runtime_world:ccb_system"}',
                'ccb: {system: "runtime_world:ccb_system", accept: {mdm: {token_env: T}}}',
            ),
            "nodes.ccb.accept.mdm: mdm posts nothing to ccb; only bridge may",
        ),
    ],
)
def test_a_bad_setting_is_named(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)


def test_a_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("delivery: {lease_s: 2", "delivery: {lease_s: [2"))
    with pytest.raises(ConfigError, match=rf"^{path}:8:\d+: not valid YAML"):
        load_config(path)


def test_secrets_come_from_the_environment_and_are_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setting = CredentialSetting(user="ccb", password_env="TEST_CCB_PASSWORD")
    with pytest.raises(ConfigError, match="TEST_CCB_PASSWORD is not set"):
        setting.resolve("nodes.bridge.accept.ccb")
    monkeypatch.setenv("TEST_CCB_PASSWORD", "s3cret-value")
    credential = setting.resolve("nodes.bridge.accept.ccb")
    assert credential.password == "s3cret-value"
    assert "s3cret-value" not in repr(credential)
