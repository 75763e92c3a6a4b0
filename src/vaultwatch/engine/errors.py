"""Errors the engine raises; each carries the exit code the CLI returns for it, and nothing of HTTP."""

from vaultwatch.errors import VaultwatchError


class EngineError(VaultwatchError):
    """A failure of the backup engine."""


class WrongPassphraseError(EngineError):
    """No key slot opens with the given passphrase or escrow key."""

    exit_code = 12


class IntegrityError(EngineError):
    """Stored data failed authentication or its id does not match its content."""

    exit_code = 1


class SnapshotNotFoundError(EngineError):
    """No snapshot matches the given id prefix."""


class AmbiguousSnapshotError(EngineError):
    """An id prefix matches more than one snapshot."""


class RepositoryLockedError(EngineError):
    """Another process holds a lock that conflicts with the one asked for."""

    exit_code = 11


class RepositoryExistsError(EngineError):
    """init was asked to create a repository where one already exists."""


class UnsafePathError(EngineError):
    """A stored name would write outside the restore target."""


class KeySlotError(EngineError):
    """A key slot operation is not allowed (e.g. removing the last passphrase)."""


class PathNotFoundError(EngineError):
    """A path asked for does not exist in the snapshot."""


class PolicyError(EngineError):
    """A retention policy or one of its durations is invalid, or would keep nothing."""


class PruneRefusedError(EngineError):
    """Prune found missing or damaged data and stopped before changing anything."""


class CheckFailedError(EngineError):
    """check found errors (raised only by callers that want an exception, e.g. the CLI)."""


class InvalidSubsetError(EngineError):
    """A ``--read-data-subset`` value is neither ``n/t`` nor ``x%``."""


class LockLostError(EngineError):
    """The repository lock could not be refreshed for so long that others may soon call it stale.

    The operation stops before that moment: past it, a prune elsewhere may
    delete packs this operation relies on.
    """

    exit_code = 11


class CancelledError(EngineError):
    """The work was asked to stop; nothing half-written is left referenced."""

    exit_code = 130
