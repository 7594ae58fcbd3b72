from __future__ import annotations

from pathlib import Path

import pytest

from dlqctl.core.errors import ConfigError
from dlqctl.core.settings import load_settings

CONFIG = """
database_url = "postgresql://file-user:file-pw@filehost/filedb"
kafka_bootstrap_servers = "file-broker:9092"
actor = "file-actor"

[kafka]
"security.protocol" = "SASL_SSL"
"sasl.password" = "file-kafka-secret"
"socket.timeout.ms" = 10000

[kafka.producer]
"linger.ms" = 5

[topics]
orders = "orders.v1"

[profiles.prod]
database_url = "postgresql://prod@prodhost/proddb"
kafka_delivery_timeout = 12

[profiles.prod.kafka]
"sasl.username" = "prod-user"

[profiles.prod.topics]
payments = "payments.v2"
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("DLQCTL_CONFIG", str(path))
    return path


def test_defaults_without_any_source() -> None:
    loaded = load_settings()
    assert loaded.settings.database_url is None
    assert loaded.settings.dsn == ""
    assert loaded.settings.kafka_delivery_timeout == 30
    assert set(loaded.sources.values()) == {"default"}


def test_file_values_and_sources(config_file: Path) -> None:
    loaded = load_settings()
    s = loaded.settings
    assert s.dsn == "postgresql://file-user:file-pw@filehost/filedb"
    assert s.kafka_config == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "file-kafka-secret",
        "socket.timeout.ms": "10000",
    }
    assert s.producer_config()["linger.ms"] == "5"
    assert s.producer_config()["bootstrap.servers"] == "file-broker:9092"
    assert "linger.ms" not in s.consumer_config()
    assert s.topic_map == {"orders": "orders.v1"}
    assert loaded.sources["actor"] == f"file {config_file}"
    assert loaded.sources["kafka_delivery_timeout"] == "default"


def test_profile_overrides_and_extends_top_level(config_file: Path) -> None:
    loaded = load_settings({"profile": "prod"})
    s = loaded.settings
    assert s.dsn == "postgresql://prod@prodhost/proddb"
    assert s.kafka_delivery_timeout == 12
    assert s.kafka_config["sasl.username"] == "prod-user"
    assert s.kafka_config["security.protocol"] == "SASL_SSL"
    assert s.topic_map == {"orders": "orders.v1", "payments": "payments.v2"}
    assert loaded.sources["database_url"] == f"file {config_file} [profiles.prod]"


def test_profile_from_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQCTL_PROFILE", "prod")
    assert load_settings().profile == "prod"


def test_precedence_flag_over_env_over_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLQCTL_DATABASE_URL", "postgresql://env@envhost/envdb")
    monkeypatch.setenv("DLQCTL_ACTOR", "env-actor")
    monkeypatch.setenv("DLQCTL_TOPIC_MAP", '{"orders": "from-env"}')
    monkeypatch.setenv("DLQCTL_KAFKA_CONFIG", '{"enable.idempotence": true}')
    loaded = load_settings({"database_url": "postgresql://flag@flaghost/flagdb"})
    s = loaded.settings
    assert s.dsn == "postgresql://flag@flaghost/flagdb"
    assert loaded.sources["database_url"] == "flag"
    assert s.actor == "env-actor"
    assert loaded.sources["actor"] == "DLQCTL_ACTOR"
    assert s.topic_map == {"orders": "from-env"}
    assert s.kafka_config == {"enable.idempotence": "true"}  # env replaces the file's table


def test_unknown_profile(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="profile 'staging' not found.*known: prod"):
        load_settings({"profile": "staging"})


def test_missing_explicit_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQCTL_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("database_url = ", "not valid TOML"),
        ("databse_url = 'x'", "unknown setting 'databse_url'"),
        ("kafka = 'x'", r"\[kafka\] must be a table"),
        ("kafka_delivery_timeout = -1", "kafka_delivery_timeout .*greater than 0"),
        ("[topics]\norders = 5", "topic_map"),
    ],
)
def test_bad_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, match: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(content)
    monkeypatch.setenv("DLQCTL_CONFIG", str(path))
    with pytest.raises(ConfigError, match=match):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("DLQCTL_KAFKA_CONFIG", "{not json", "DLQCTL_KAFKA_CONFIG is not valid"),
        ("DLQCTL_TOPIC_MAP", "[1, 2]", "topic_map"),
        ("DLQCTL_KAFKA_DELIVERY_TIMEOUT", "soon", "kafka_delivery_timeout"),
        ("DLQCTL_KAFKA_PRODUCER_CONFIG", '{"a": [1]}', "kafka_producer_config"),
    ],
)
def test_bad_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, match: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        load_settings()


def test_describe_masks_secrets(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DLQCTL_KAFKA_CONSUMER_CONFIG", '{"sasl.oauthbearer.client.secret": "oauth-s3cret"}'
    )
    described = repr(load_settings().describe())
    assert "file-pw" not in described
    assert "file-kafka-secret" not in described
    assert "oauth-s3cret" not in described
    assert "filehost" in described and "SASL_SSL" in described


def test_validation_error_never_echoes_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQCTL_KAFKA_CONFIG", '{"sasl.password": {"nested": "hunter22"}}')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter22" not in str(caught.value)
