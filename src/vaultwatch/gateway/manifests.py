"""Reference manifests as the gateway takes them from agents: checked, then stamped.

The service's retention trusts a manifest for what it claims about the
snapshot's own references (an agent can only hurt its own new snapshots
that way). Two rules keep a compromised agent from reaching further:

- A manifest is accepted only while its snapshot does not exist yet (agents
  write it first), so nobody can attach a manifest to an existing snapshot
  (say, an old one, claiming it needs nothing).
- A snapshot is accepted only once its manifest exists, so no writer (an
  old agent, a script, or malware holding an agent's credential) can leave
  a snapshot whose references are unknown and so stop the collection of
  the whole vault's garbage.
- The gateway stamps who uploaded it and when, by the server's clock: the
  service groups snapshots by the stamped agent, never by what the manifest
  says, and judges their age by the stamp when the claimed time is not
  plausible.
"""

from __future__ import annotations

from datetime import datetime

from vaultwatch.engine.errors import IntegrityError
from vaultwatch.engine.manifest import MANIFESTS, Manifest, Received, manifest_name
from vaultwatch.errors import VaultwatchError
from vaultwatch.store.base import Store

SNAPSHOTS = "snapshots/"


class ManifestRefusedError(VaultwatchError):
    """The manifest is malformed, or its snapshot already exists."""


class SnapshotWithoutManifestError(ManifestRefusedError):
    """A snapshot arrived before (or without) its reference manifest."""


def require_manifest(store: Store, name: str) -> None:
    """Refuse ``snapshots/<id>`` unless ``manifests/<id>`` is stored; other names pass."""
    if not name.startswith(SNAPSHOTS):
        return
    snapshot_id = name[len(SNAPSHOTS) :]
    if not store.exists(manifest_name(snapshot_id)):
        raise SnapshotWithoutManifestError(
            f"snapshot {snapshot_id[:8]} has no reference manifest: a managed vault takes "
            f"{manifest_name(snapshot_id)} first (vaultwatch writes it for every "
            "vw+https:// repository)"
        )


def snapshot_of(name: str) -> str | None:
    """The snapshot id a ``manifests/<id>`` name is for; None for other objects."""
    if not name.startswith(MANIFESTS):
        return None
    return name[len(MANIFESTS) :]


def stamp(data: bytes, name: str, *, agent_id: str, hostname: str, now: datetime) -> bytes:
    """The manifest to store: the agent's, validated, with the gateway's ``received`` stamp."""
    try:
        manifest = Manifest.from_json(data, name)
    except IntegrityError as exc:
        raise ManifestRefusedError(str(exc)) from None
    manifest.received = Received(agent_id, hostname, now)
    return manifest.to_json()
