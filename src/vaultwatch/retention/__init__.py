"""Retention in managed vaults, applied by the service without the customer's key.

Agents are append-only and the service holds no passphrase, so the service
cannot read snapshots, trees or index files. It reads instead the plaintext
reference manifest the agent writes with each snapshot (``manifests/<id>``:
the snapshot's time, host, set, paths and the packs it needs; see
docs/format.md), forgets the snapshots a set's policy does not keep, and
collects the packs that no kept snapshot's manifest names. Everything removed
goes to the vault's ``trash/`` first and is purged after a grace period; a
held snapshot (ransomware guard, legal hold) is never removed.

Garbage is the complement of the union of *every* kept snapshot's manifest,
so a manifest that under-claims (written by a compromised agent) can only
endanger the snapshot it describes, never an older one; an agent can only
add manifests, so the worst it can do to older history is bloat it.

- `policy`: which policy applies to a set (operator's or the default, plus
  what the agent's configuration adds) and the verdict for its snapshots.
- `vault`: the service's operations on a vault's objects (manifests, trash,
  the ``retention/state`` announcement).
- `run`: one retention run over one or every tenant's vault.
- `duty`: the leased duty that runs it on a schedule.
"""
