"""The states of a job, one list for every side that speaks of them.

The agent runs a job and reports its state, the gateway accepts it, the
catalog stores it as sent and the SOC watches it: all of them use these
members, so a state cannot be spelled two ways. The values are stored in
catalogs and sent by deployed agents: never change one, add a new member
(and a catalog migration for the CHECK constraint) for a new state.
"""

from __future__ import annotations

import enum


@enum.unique
class JobState(enum.StrEnum):
    """A job's life: queued -> running -> one of the final states.

    `interrupted` means the agent restarted; `waiting_for_network` means it
    lost its gateways and is retrying. Either way the job resumes from its
    journal, so it is not a failure yet. `partial` is final: the snapshot was
    written but some files could not be read (`error_count` says how many).
    `unchanged` is final and good: nothing changed since the set's last
    snapshot, so no identical one was written.
    """

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_NETWORK = "waiting_for_network"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCHANGED = "unchanged"

    @property
    def is_final(self) -> bool:
        """True once the job will never change again."""
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.PARTIAL,
        JobState.UNCHANGED,
        JobState.FAILED,
        JobState.CANCELLED,
    }
)
