"""The one settings object, loaded from flags, environment, config file and defaults.

Precedence (docs/configuration.md): command-line flag > environment (``DLQCTL_*``) > config file
(``$DLQCTL_CONFIG``, else ``~/.config/dlqctl/config.toml``; top-level values plus the
selected ``[profiles.NAME]`` table) > defaults. Each layer is read on its own so that
``dlqctl config`` can say where every effective value came from.
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from dlqctl.core.errors import ConfigError
from dlqctl.core.secrets import Scrubber, build_scrubber, is_secret_property, mask_dsn

ENV_PREFIX = "DLQCTL_"
DEFAULT_CONFIG_PATH = Path("~/.config/dlqctl/config.toml")

KafkaProperties = dict[str, str]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _librdkafka_value(value: Any) -> str:
    """librdkafka takes every property as text; JSON true/false must become "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("property values must be strings, numbers or booleans")


class Settings(BaseSettings):
    """Effective settings of one dlqctl invocation."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: SecretStr | None = Field(
        default=None, description="libpq URI or key=value DSN; unset: libpq's PG* variables"
    )
    kafka_bootstrap_servers: str | None = Field(default=None, description="Kafka bootstrap servers")
    kafka_config: KafkaProperties = Field(
        default_factory=dict, description="librdkafka properties for every client"
    )
    kafka_producer_config: KafkaProperties = Field(
        default_factory=dict, description="librdkafka properties added for the producer"
    )
    kafka_consumer_config: KafkaProperties = Field(
        default_factory=dict, description="librdkafka properties added for consumers"
    )
    kafka_delivery_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds replay waits for acknowledgements"
    )
    topic_map: dict[str, str] = Field(
        default_factory=dict, description="consumer -> topic used by replay"
    )
    actor: str = Field(
        default_factory=_default_actor, min_length=1, description="who acts, for the audit log"
    )
    consumer_retry_backoff: tuple[float, ...] = Field(
        default=(0.0, 1.0, 2.0),
        max_length=100,
        description="embedded consumer: seconds before each handler retry (one retry each)",
    )
    consumer_commit_interval: float = Field(
        default=5.0, gt=0, le=300, description="embedded consumer: seconds between commits"
    )
    debug: bool = Field(default=False, description="show tracebacks")

    @field_validator("consumer_retry_backoff")
    @classmethod
    def _backoff_in_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 <= d <= 3600 for d in value):
            raise ValueError("each wait must be between 0 and 3600 seconds")
        return value

    @field_validator(
        "kafka_config", "kafka_producer_config", "kafka_consumer_config", mode="before"
    )
    @classmethod
    def _properties_as_text(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): _librdkafka_value(v) for k, v in value.items()}
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges the layers itself, to know each value's source.
        return (init_settings,)

    @property
    def dsn(self) -> str:
        """The connection string handed to libpq verbatim ("" lets PG* variables apply)."""
        return self.database_url.get_secret_value() if self.database_url else ""

    def producer_config(self) -> dict[str, str]:
        return self._client_config(self.kafka_producer_config)

    def consumer_config(self) -> dict[str, str]:
        return self._client_config(self.kafka_consumer_config)

    def _client_config(self, side: Mapping[str, str]) -> dict[str, str]:
        config = {**self.kafka_config, **side}
        if self.kafka_bootstrap_servers:
            config["bootstrap.servers"] = self.kafka_bootstrap_servers
        return config

    def scrubber(self) -> Scrubber:
        """A scrubber of every secret value these settings hold."""
        return build_scrubber(
            self.dsn or None,
            (self.kafka_config, self.kafka_producer_config, self.kafka_consumer_config),
            os.environ,
        )


FIELD_NAMES = tuple(Settings.model_fields)


def env_var(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus, for each field, where its value came from."""

    settings: Settings
    sources: dict[str, str]
    config_path: Path | None
    profile: str | None
    scrubber: Scrubber = field(default_factory=Scrubber)

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value with secrets masked, source) for every setting."""
        rows = []
        for name in FIELD_NAMES:
            value = getattr(self.settings, name)
            rows.append((name, _masked(name, value, self.scrubber), self.sources[name]))
        return rows


def _masked(name: str, value: Any, scrubber: Scrubber) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return scrubber(mask_dsn(value.get_secret_value()))
    if isinstance(value, dict):
        shown = {k: ("***" if is_secret_property(k) else v) for k, v in value.items()}
        return json.dumps(shown, sort_keys=True)
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return scrubber(str(value))


def config_file_path(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The config file to read and whether it was named explicitly (then it must exist)."""
    explicit = environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return Path(explicit).expanduser(), True
    return DEFAULT_CONFIG_PATH.expanduser(), False


def _file_table_to_fields(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Map one level of the config file (top level or a profile) to settings fields."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "profiles":
            continue
        if key == "kafka":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [kafka] must be a table of librdkafka properties")
            properties = {k: v for k, v in value.items() if k not in ("producer", "consumer")}
            values["kafka_config"] = properties
            for side in ("producer", "consumer"):
                if side in value:
                    values[f"kafka_{side}_config"] = value[side]
        elif key == "topics":
            values["topic_map"] = value
        elif key in FIELD_NAMES:
            values[key] = value
        else:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; known: {', '.join(FIELD_NAMES)}, "
                "[kafka], [kafka.producer], [kafka.consumer], [topics], [profiles.NAME]"
            )
    return values


def read_config_file(
    path: Path, must_exist: bool, profile: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config file's top-level values and the selected profile's values."""
    if not path.is_file():
        if must_exist:
            raise ConfigError(f"config file {path} (from {ENV_PREFIX}CONFIG) does not exist")
        if profile:
            raise ConfigError(f"profile {profile!r} selected but there is no config file {path}")
        return {}, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    top = _file_table_to_fields(data, str(path))
    if not profile:
        return top, {}
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or profile not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        raise ConfigError(
            f"profile {profile!r} not found in {path}" + (f"; known: {known}" if known else "")
        )
    return top, _file_table_to_fields(profiles[profile], f"{path} [profiles.{profile}]")


def _read_environment() -> dict[str, Any]:
    """``DLQCTL_*`` values from the process environment; dict settings are JSON objects."""
    try:
        return EnvSettingsSource(Settings)()
    except SettingsError as exc:
        bad = next((n for n in FIELD_NAMES if f'"{n}"' in str(exc)), None)
        name = env_var(bad) if bad else "a DLQCTL_ variable"
        shape = "a JSON list of seconds" if bad == "consumer_retry_backoff" else "a JSON object"
        raise ConfigError(f"{name} is not valid: it must be {shape}") from None


def load_settings(flags: Mapping[str, Any] | None = None) -> LoadedSettings:
    """Merge flag > environment > config file (profile over top level) > default."""
    environ = os.environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    profile = flags.pop("profile", None) or environ.get(f"{ENV_PREFIX}PROFILE") or None
    path, must_exist = config_file_path(environ)
    file_top, file_profile = read_config_file(path, must_exist, profile)
    env_values = _read_environment()

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (f"file {path}", file_top),
        (f"file {path} [profiles.{profile}]", file_profile),
        ("env", env_values),
        ("flag", flags),
    ]
    for label, layer in layers:
        for name, value in layer.items():
            if label.startswith("file") and name in merged and isinstance(value, dict):
                merged[name] = {**merged[name], **value}  # a profile adds to top-level tables
            else:
                merged[name] = value
            sources[name] = env_var(name) if label == "env" else label
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, sources)) from None
    for name in FIELD_NAMES:
        sources.setdefault(name, "default")
    return LoadedSettings(
        settings=settings,
        sources=sources,
        config_path=path if path.is_file() else None,
        profile=profile,
        scrubber=settings.scrubber(),
    )


def _describe_validation_error(exc: ValidationError, sources: Mapping[str, str]) -> str:
    """One line naming each bad setting and its source, never echoing the value."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "settings"
        where = sources.get(name, "default")
        parts.append(f"invalid setting {name} (from {where}): {error['msg']}")
    return "; ".join(parts)
