"""One exception hierarchy with user-facing messages.

Every error carries a message saying what failed and, where one exists, a hint saying how
to fix it. The CLI maps the class to an exit code; the webhook turns any of them into a
deny with the message as its reason.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2


class ModelsignError(Exception):
    """Base class: a user-facing failure with an optional fix hint."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(ModelsignError):
    """The command line or an input argument is wrong."""


class ReferenceFormatError(UsageError):
    """An artifact reference could not be parsed."""


class KeyFormatError(ModelsignError):
    """A key file is missing, corrupt or of an unsupported type."""


class PasswordError(ModelsignError):
    """A private key could not be decrypted with the given password (or none was given)."""


class FormatError(ModelsignError):
    """A manifest, payload, bundle or signature file is malformed."""


class TooLargeError(FormatError):
    """Content is larger than modelsign reads for its kind (a signature payload, a manifest...)."""


class RegistryError(ModelsignError):
    """A registry or local store could not serve a request."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class NotFoundError(RegistryError):
    """The registry answered 404 for a manifest, tag or blob."""


class AuthenticationError(RegistryError):
    """The registry refused our credentials (401/403)."""


class VerificationError(ModelsignError):
    """A signature or integrity check failed: the artifact is not trusted."""

    exit_code = EXIT_VERIFICATION_FAILED
