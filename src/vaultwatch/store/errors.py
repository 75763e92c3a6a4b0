"""Errors a Store raises, each with the exit code the CLI returns for it.

The gateway's problem table, not this module, says what they are over HTTP.
"""

from vaultwatch.errors import VaultwatchError


class StoreError(VaultwatchError):
    """Something went wrong talking to the store."""


class ObjectNotFoundError(StoreError):
    """The named object does not exist."""


class ObjectExistsError(StoreError):
    """The named object exists and may not be overwritten."""


class InvalidObjectNameError(StoreError):
    """The object name is malformed or tries to leave the store."""


class StorePermissionError(StoreError):
    """The store refused access (file permissions, bucket policy, append-only credential)."""


class StoreFullError(StoreError):
    """No space left on the store."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached now; retrying later may succeed."""


class RepositoryNotFoundError(StoreError):
    """No repository at this location."""

    exit_code = 10


class InvalidStoreURLError(StoreError):
    """A repository URL or store setting cannot be understood."""
