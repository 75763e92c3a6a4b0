"""Errors the catalog's domain functions raise, each with its HTTP status."""

from vaultwatch.errors import VaultwatchError


class CatalogError(VaultwatchError):
    """Something the catalog refused to do."""


class CatalogSchemaError(CatalogError):
    """The database schema is not at the revision this code expects."""

    http_status = 503


class ValidationError(CatalogError):
    """An argument is malformed (empty name, negative duration ...)."""

    http_status = 400


class TenantExistsError(CatalogError):
    """A tenant with this name (ignoring case and spacing) already exists."""

    http_status = 409


class TenantNotFoundError(CatalogError):
    """No tenant has this id."""

    http_status = 404


class TenantScopeError(CatalogError):
    """Code working for one tenant tried to write another tenant's row."""

    http_status = 403


class EnrollmentError(CatalogError):
    """An enrollment token was refused."""

    http_status = 401


class EnrollmentTokenUnknownError(EnrollmentError):
    """No enrollment token matches what was presented."""

    http_status = 401


class EnrollmentTokenUsedError(EnrollmentError):
    """The enrollment token has already enrolled a server; tokens are single use."""

    http_status = 409


class EnrollmentTokenExpiredError(EnrollmentError):
    """The enrollment token's lifetime is over."""

    http_status = 410


class InvalidCredentialError(CatalogError):
    """An agent credential is unknown, revoked, or belongs to a retired agent."""

    http_status = 401


class AgentNotFoundError(CatalogError):
    """No agent has this id (in the caller's tenant)."""

    http_status = 404


class EnrollmentTokenRevokedError(EnrollmentError):
    """The enrollment token was revoked before it was used."""

    http_status = 410


class EnrollmentTokenNotFoundError(CatalogError):
    """No enrollment token has this id or prefix (in the caller's tenant)."""

    http_status = 404


class TenantSuspendedError(CatalogError):
    """The tenant is suspended: its agents may read their vault but not add to it."""

    http_status = 403


class TenantDeletedError(CatalogError):
    """The tenant was deleted: nothing may act for it until it is undeleted."""

    http_status = 403


class TenantStateError(CatalogError):
    """The tenant is not in a state that allows this (resume an active one, undelete a purged one)."""

    http_status = 409


class AgentRetiredError(CatalogError):
    """The agent is retired: it cannot be given credentials again."""

    http_status = 409
