"""Errors a Store raises, each with the exit code and HTTP status it maps to."""

from vaultwatch.errors import VaultwatchError


class StoreError(VaultwatchError):
    """Something went wrong talking to the store."""


class ObjectNotFoundError(StoreError):
    """The named object does not exist."""

    http_status = 404


class ObjectExistsError(StoreError):
    """The named object exists and may not be overwritten."""

    http_status = 409


class InvalidObjectNameError(StoreError):
    """The object name is malformed or tries to leave the store."""

    http_status = 400


class StorePermissionError(StoreError):
    """The store refused access (file permissions, bucket policy, append-only credential)."""

    http_status = 403


class StoreFullError(StoreError):
    """No space left on the store."""

    http_status = 507


class StoreUnavailableError(StoreError):
    """The store cannot be reached now; retrying later may succeed."""

    http_status = 503


class RepositoryNotFoundError(StoreError):
    """No repository at this location."""

    exit_code = 10
    http_status = 404


class InvalidStoreURLError(StoreError):
    """A repository URL or store setting cannot be understood."""

    http_status = 400
