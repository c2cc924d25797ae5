"""Where the client finds the server and its token.

In order, the first that gives a value wins:

1. arguments (``Client(base_url=..., token=...)``, or the CLI's ``--url``/``--token``);
2. the environment: ``TOKENWORKS_URL``, ``TOKENWORKS_TOKEN``;
3. the config file: ``$TOKENWORKS_CONFIG``, else ``$XDG_CONFIG_HOME/tokenworks/config.toml``
   (``~/.config/tokenworks/config.toml``)::

       url = "https://tokenworks.example.cn"
       token = "tw_..."

       [profiles.guiyang-office]          # chosen with --profile or TOKENWORKS_PROFILE
       url = "https://tokenworks.example.cn"
       token = "tw_..."

Keep the file private (``chmod 600``): the token is a secret.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The configuration is missing a value or cannot be read."""


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None


def config_path() -> Path:
    explicit = os.environ.get("TOKENWORKS_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokenworks" / "config.toml"


def _file_values(profile: str | None) -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        if profile:
            raise ConfigError(f"profile {profile!r} asked for, but there is no {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not profile:
        return data
    profiles = data.get("profiles") or {}
    if profile not in profiles:
        raise ConfigError(f"no [profiles.{profile}] in {path}")
    return profiles[profile]


def load_config(
    *, url: str | None = None, token: str | None = None, profile: str | None = None
) -> Config:
    profile = profile or os.environ.get("TOKENWORKS_PROFILE") or None
    values = _file_values(profile)
    url = url or os.environ.get("TOKENWORKS_URL") or values.get("url")
    token = token or os.environ.get("TOKENWORKS_TOKEN") or values.get("token")
    if not url:
        raise ConfigError(
            f"no server address: pass --url, set TOKENWORKS_URL or put url in {config_path()}"
        )
    return Config(url=str(url), token=str(token) if token else None)
