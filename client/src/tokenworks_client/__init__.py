"""Python client for the Tokenworks API (sync ``Client`` and async ``AsyncClient``)."""

from ._async_client import AsyncClient
from ._common import __version__
from ._retry import RetryPolicy
from ._sync_client import Client
from .config import Config, ConfigError, load_config
from .errors import (
    APIError,
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    ErrorDetail,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TokenworksError,
    ValidationError,
    WaitTimeout,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "Config",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "ErrorDetail",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TokenworksError",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "load_config",
]
