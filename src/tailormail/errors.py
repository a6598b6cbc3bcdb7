"""The exception tree of tailormail.

Every error the library raises on purpose derives from ``TailormailError``;
the adapters (``api/``, ``cli/``) map these classes to HTTP status codes and
exit codes in one place each, so the core never speaks HTTP::

    TailormailError
    ├── ConfigError            a setting or workspace file is wrong
    ├── ValidationError        input data is malformed (names field and place)
    │   └── PayloadTooLarge    a message is over its size limit
    │       └── BatchTooLarge  a whole request is over its size limit
    ├── NotFound               a named object does not exist
    ├── AuthError              a key is missing, unknown or revoked
    │   └── ScopeError         a key exists but may not do this
    └── StoreError             the database refused an operation
"""

from __future__ import annotations


class TailormailError(Exception):
    """Base class of every error raised on purpose by tailormail."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(TailormailError):
    """A setting, environment variable or workspace file is wrong."""

    code = "config_error"


class ValidationError(TailormailError):
    """Input data is malformed; the message names the field and where it is."""

    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        line: int | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.index = index
        self.line = line
        self.source = source


class PayloadTooLarge(ValidationError):
    """A message or a batch is larger than the configured limit."""

    code = "payload_too_large"


class BatchTooLarge(PayloadTooLarge):
    """A whole request (a batch) is larger than the configured limit."""


class NotFound(TailormailError):
    """A named object (profile, segment, key, template...) does not exist."""

    code = "not_found"


class AuthError(TailormailError):
    """An API key is missing, unknown or revoked."""

    code = "unauthorized"


class ScopeError(AuthError):
    """An API key is valid but its scope does not allow this operation."""

    code = "forbidden"


class StoreError(TailormailError):
    """The database refused an operation in a way the caller can act on."""

    code = "store_error"
