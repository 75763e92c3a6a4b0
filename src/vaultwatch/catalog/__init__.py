"""The catalog: the service's queryable state in SQL (SQLite embedded, PostgreSQL at scale).

Start with `Catalog(url)`, run `Catalog.upgrade()` once at startup, and do each
unit of work in `with catalog.session() as session:` (or
`catalog.session(tenant_id=...)` for work on behalf of one customer).
"""

from vaultwatch.catalog import soc_models as soc_models  # registers the SOC's tables
from vaultwatch.catalog.db import (
    Catalog,
    CatalogSession,
    database_now,
    downgrade,
    make_engine,
    upgrade,
)
from vaultwatch.catalog.models import (
    Agent,
    AgentCredential,
    AuditEntry,
    BackupMode,
    BackupSet,
    Base,
    EnrollmentToken,
    Heartbeat,
    Job,
    JobKind,
    JobState,
    Lease,
    Repository,
    Role,
    Snapshot,
    Tenant,
    User,
)

__all__ = [
    "Agent",
    "AgentCredential",
    "AuditEntry",
    "BackupMode",
    "BackupSet",
    "Base",
    "Catalog",
    "CatalogSession",
    "EnrollmentToken",
    "Heartbeat",
    "Job",
    "JobKind",
    "JobState",
    "Lease",
    "Repository",
    "Role",
    "Snapshot",
    "Tenant",
    "User",
    "database_now",
    "downgrade",
    "make_engine",
    "upgrade",
]
