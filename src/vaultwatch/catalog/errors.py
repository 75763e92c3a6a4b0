"""Errors the catalog's domain functions raise (the gateway's problem table maps them to HTTP)."""

from vaultwatch.errors import VaultwatchError


class CatalogError(VaultwatchError):
    """Something the catalog refused to do."""


class CatalogSchemaError(CatalogError):
    """The database schema is not at the revision this code expects."""


class ValidationError(CatalogError):
    """An argument is malformed (empty name, negative duration ...)."""


class TenantExistsError(CatalogError):
    """A tenant with this name (ignoring case and spacing) already exists."""


class TenantNotFoundError(CatalogError):
    """No tenant has this id."""


class TenantScopeError(CatalogError):
    """Code working for one tenant tried to write another tenant's row."""


class EnrollmentError(CatalogError):
    """An enrollment token was refused."""


class EnrollmentTokenUnknownError(EnrollmentError):
    """No enrollment token matches what was presented."""


class EnrollmentTokenUsedError(EnrollmentError):
    """The enrollment token has already enrolled a server; tokens are single use."""


class EnrollmentTokenExpiredError(EnrollmentError):
    """The enrollment token's lifetime is over."""


class InvalidCredentialError(CatalogError):
    """An agent credential is unknown, revoked, or belongs to a retired agent."""


class AgentNotFoundError(CatalogError):
    """No agent has this id (in the caller's tenant)."""


class EnrollmentTokenRevokedError(EnrollmentError):
    """The enrollment token was revoked before it was used."""


class EnrollmentTokenNotFoundError(CatalogError):
    """No enrollment token has this id or prefix (in the caller's tenant)."""


class TenantSuspendedError(CatalogError):
    """The tenant is suspended: its agents may read their vault but not add to it."""


class TenantDeletedError(CatalogError):
    """The tenant was deleted: nothing may act for it until it is undeleted."""


class TenantStateError(CatalogError):
    """The tenant is not in a state that allows this (resume an active one, undelete a purged one)."""


class AgentRetiredError(CatalogError):
    """The agent is retired: it cannot be given credentials again."""
