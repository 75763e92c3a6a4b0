"""Request and response bodies of the gateway API (they make its OpenAPI schema).

Limits on lengths and counts are part of the schema, so oversized or hostile
input is refused with a 422 problem before any domain code runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from vaultwatch.catalog import BackupMode, JobKind
from vaultwatch.catalog.agent_reports import JobReport, ReportedBackupSet, ReportedSnapshot
from vaultwatch.engine.errors import PolicyError
from vaultwatch.engine.retention import DOCUMENT_KEYS, RetentionPolicy
from vaultwatch.job_states import JobState


def _storable(value: str) -> str:
    """Refuse what no database column can hold: NUL, and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _text_time(value: Any) -> Any:
    """Times arrive as RFC 3339 text, as the schema says; pydantic would take a number as epoch seconds."""
    if not isinstance(value, str):
        raise ValueError("must be a date-time string such as 2024-05-01T12:00:00Z")
    return value


def _plausible_time(value: datetime) -> datetime:
    """Times from agents' clocks, within a range every engine and time zone can store."""
    if not 1970 <= value.year <= 9000:
        raise ValueError("must be a time between the years 1970 and 9000")
    return value


_STORABLE = AfterValidator(_storable)
#: "No NUL" in the schema of every text field (lone surrogates are not Unicode, so no JSON a
#: validator reads can hold them; ``_storable`` refuses them all the same).
_NO_NUL = Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
Str64 = Annotated[str, StringConstraints(min_length=1, max_length=64), _STORABLE, _NO_NUL]
Str100 = Annotated[str, StringConstraints(min_length=1, max_length=100), _STORABLE, _NO_NUL]
Str200 = Annotated[str, StringConstraints(min_length=1, max_length=200), _STORABLE, _NO_NUL]
Str500 = Annotated[str, StringConstraints(max_length=500), _STORABLE, _NO_NUL]
Text = Annotated[str, StringConstraints(min_length=1, max_length=255), _STORABLE, _NO_NUL]
Path = Annotated[str, StringConstraints(min_length=1, max_length=4096), _STORABLE, _NO_NUL]
Message = Annotated[str, StringConstraints(max_length=4096), _STORABLE, _NO_NUL]


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema has it: a number without a fraction (``5`` or ``5.0``).

    Pydantic would also take ``false`` as 0 and ``"5"`` as 5; the schema does not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


# Numbers and booleans are as the published schema says (integer, number, boolean):
# pydantic would otherwise take ``false`` as 0, ``1`` as true and ``"5"`` as 5.
_INTEGER = BeforeValidator(_json_integer)
#: Counts and sizes stop at the largest integer every JSON parser reads exactly (2**53 - 1):
#: above it a validator working in doubles cannot tell the limit from the number past it.
Count = Annotated[int, Field(ge=0, le=2**53 - 1), _INTEGER]
Int31 = Annotated[int, Field(ge=0, le=2**31 - 1), _INTEGER]
Flag = Annotated[bool, Field(strict=True)]
HexId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Time = Annotated[
    AwareDatetime,
    BeforeValidator(_text_time),
    AfterValidator(_plausible_time),
    Field(json_schema_extra={"pattern": "^(?:19[7-9][0-9]|[2-8][0-9]{3}|9000)-"}),
]


class Strict(BaseModel):
    """Unknown fields are refused, so a typo in an agent's report is not silently lost."""

    model_config = ConfigDict(extra="forbid")


class EnrollRequest(Strict):
    """An installer redeeming its enrollment token."""

    token: Str200
    hostname: Text
    agent_version: Str64
    platform: Str200


class TenantOut(BaseModel):
    """The tenant an agent belongs to."""

    id: uuid.UUID
    name: str


class EnrollResponse(BaseModel):
    """The new agent's id and credential (shown this once; store it, it is not kept in clear)."""

    agent_id: uuid.UUID
    credential: str
    tenant: TenantOut
    server_time: datetime


class CredentialOut(BaseModel):
    """A rotated-in agent credential (shown this once); the old one works until this is used."""

    agent_id: uuid.UUID
    credential: str
    created_at: datetime


class ObjectOut(BaseModel):
    """One vault object."""

    name: str
    size: int


class ObjectList(BaseModel):
    """One page of a listing, sorted by name; pass ``next_cursor`` back for the next page."""

    objects: list[ObjectOut]
    next_cursor: str | None


class PutResponse(BaseModel):
    """What was stored."""

    name: str
    size: int


def _policy_document(value: Any) -> dict[str, Any]:
    """A retention policy document in the engine's grammar, normalised.

    A count written ``5.0`` is the integer JSON Schema says it is.
    """
    counts = {
        name: int(rule) if isinstance(rule, float) and rule.is_integer() else rule
        for name, rule in value.items()
    }
    try:
        return RetentionPolicy.from_document(counts).to_document()
    except PolicyError as exc:
        raise ValueError(str(exc)) from None


_COUNT_RULES = DOCUMENT_KEYS[1:]
_WITHIN = "".join(f"(?:[1-9][0-9]*{unit})?" for unit in ("y", "mo", "w", "d", "h"))
#: The policy document as the schema states it. ``within`` is published in its usual form
#: (units in this order, no zeros); the engine also reads spaces, capitals and any order.
RETENTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Keep rules (counts: -1 is unlimited); at least one must keep something",
    "properties": {
        "within": {
            "anyOf": [
                {"type": "string", "minLength": 2, "pattern": f"^{_WITHIN}$"},
                {"type": "null"},
            ]
        },
        **{name: {"type": "integer", "minimum": -1} for name in _COUNT_RULES},
    },
    "additionalProperties": False,
    "anyOf": [
        {"required": ["within"], "properties": {"within": {"type": "string"}}},
        *(
            {"required": [name], "properties": {name: {"not": {"const": 0}}}}
            for name in _COUNT_RULES
        ),
    ],
}
RetentionDocument = Annotated[
    dict[str, Any], AfterValidator(_policy_document), WithJsonSchema(RETENTION_SCHEMA)
]


class BackupSetIn(Strict):
    """A backup set as the agent's configuration defines it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={  # a scheduled set needs its schedule
            "anyOf": [
                {"properties": {"mode": {"not": {"const": BackupMode.SCHEDULED.value}}}},
                {"required": ["schedule"], "properties": {"schedule": {"type": "string"}}},
            ]
        },
    )

    name: Str200
    paths: Annotated[list[Path], Field(min_length=1, max_length=1000)]
    mode: BackupMode
    rpo_seconds: Annotated[int, Field(gt=0, le=10 * 365 * 86400), _INTEGER]
    schedule: Str100 | None = None
    excludes: Annotated[list[Path], Field(max_length=1000)] = []
    retention: RetentionDocument | None = None
    """Retention the agent's configuration asks the service to add (it can only keep more)."""

    def to_domain(self) -> ReportedBackupSet:
        """The catalog's form."""
        return ReportedBackupSet(
            name=self.name,
            paths=list(self.paths),
            mode=self.mode,
            rpo_seconds=self.rpo_seconds,
            schedule=self.schedule,
            excludes=list(self.excludes),
            retention=dict(self.retention) if self.retention is not None else None,
        )


class HeartbeatRequest(Strict):
    """The agent's periodic sign of life and facts."""

    agent_version: Str64
    hostname: Text
    platform: Str200
    free_disk_bytes: Count | None = None
    gateways: Annotated[
        dict[Str500, Flag],
        Field(max_length=32),
        WithJsonSchema(  # pydantic would state the key rules as patternProperties
            {
                "type": "object",
                "maxProperties": 32,
                "propertyNames": {"maxLength": 500, "pattern": "^[^\\x00]*$"},
                "additionalProperties": {"type": "boolean"},
            }
        ),
    ] = {}
    backup_sets: Annotated[list[BackupSetIn], Field(max_length=200)] = []


class HeartbeatResponse(BaseModel):
    """The server's clock (agents warn about skew) and how many backup sets it now knows."""

    server_time: datetime
    backup_sets: int


class SnapshotIn(Strict):
    """The summary of the snapshot a backup committed."""

    id: HexId
    hostname: Text
    paths: Annotated[list[Path], Field(max_length=1000)]
    started_at: Time
    finished_at: Time
    tags: Annotated[list[Str200], Field(max_length=100)] = []
    files_total: Count = 0
    bytes_total: Count = 0
    files_new: Count = 0
    files_changed: Count = 0
    bytes_added: Count = 0
    bytes_stored: Count | None = None
    """What the new content took in packs, compressed and encrypted (older agents omit it)."""

    def to_domain(self) -> ReportedSnapshot:
        """The catalog's form."""
        return ReportedSnapshot(
            vault_snapshot_id=self.id,
            hostname=self.hostname,
            paths=list(self.paths),
            started_at=self.started_at,
            finished_at=self.finished_at,
            tags=list(self.tags),
            files_total=self.files_total,
            bytes_total=self.bytes_total,
            files_new=self.files_new,
            files_changed=self.files_changed,
            bytes_added=self.bytes_added,
            bytes_stored=self.bytes_stored,
        )


class JobError(Strict):
    """One error of a job: which path and what went wrong."""

    path: Message = ""
    message: Message


ErrorItem = Message | JobError


class JobReportIn(Strict):
    """A job's state and progress; send the whole picture each time (the report is idempotent)."""

    backup_set: Str200 | None = None
    kind: JobKind
    state: JobState
    bytes_done: Count = 0
    bytes_total: Count | None = None
    files_done: Count = 0
    files_total: Count | None = None
    rate: Annotated[float, Field(strict=True, ge=0, le=1e15, allow_inf_nan=False)] | None = None
    eta_seconds: Int31 | None = None
    errors: Annotated[list[ErrorItem], Field(max_length=1000)] = []
    error_count: Int31 | None = None
    snapshot: SnapshotIn | None = None
    phase: Str200 | None = None
    current_file: Path | None = None
    resumed_bytes: Count | None = None

    def to_domain(self) -> JobReport:
        """The catalog's form; errors become ``path: message`` lines."""
        messages = [
            e if isinstance(e, str) else (f"{e.path}: {e.message}" if e.path else e.message)
            for e in self.errors
        ]
        return JobReport(
            kind=self.kind,
            state=self.state,
            backup_set=self.backup_set,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            files_done=self.files_done,
            files_total=self.files_total,
            rate=self.rate,
            eta_seconds=self.eta_seconds,
            errors=messages,
            error_count=self.error_count,
            snapshot=self.snapshot.to_domain() if self.snapshot else None,
            phase=self.phase,
            current_file=self.current_file,
            resumed_bytes=self.resumed_bytes,
        )


class JobResponse(BaseModel):
    """The job as recorded; ``catalog_state`` equals ``state`` (kept for older agents)."""

    job_uid: uuid.UUID
    state: str
    catalog_state: str
    created: bool
    snapshot_recorded: bool


class Problem(BaseModel):
    """An RFC 7807 problem document (every error response)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    """Liveness and what this process serves."""

    status: str
    roles: list[str]
    version: str
