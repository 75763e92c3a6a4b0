"""Protection timelines: snapshot ticks and the intervals in which a set's RPO was breached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.soc.test_status import RPO, build_fleet
from vaultwatch.catalog import Catalog
from vaultwatch.catalog.errors import ValidationError
from vaultwatch.catalog.models import BackupSet
from vaultwatch.soc.timeline import breach_gaps, merge_intervals, protection_timelines

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_gaps_start_one_rpo_after_each_snapshot_and_end_at_the_next() -> None:
    snaps = [T0 + 2 * H, T0 + 2.5 * H, T0 + 6 * H]
    gaps = breach_gaps(T0, snaps, H, T0, T0 + 10 * H)
    assert gaps == [(T0 + H, T0 + 2 * H), (T0 + 3.5 * H, T0 + 6 * H), (T0 + 7 * H, T0 + 10 * H)]
    # Clipped to the window; nothing breached when snapshots come often enough.
    assert breach_gaps(T0, snaps, H, T0 + 4 * H, T0 + 5 * H) == [(T0 + 4 * H, T0 + 5 * H)]
    assert breach_gaps(T0, [T0 + 0.5 * H], H, T0, T0 + 1.2 * H) == []


def test_overlapping_gaps_merge() -> None:
    merged = merge_intervals([(T0 + 3 * H, T0 + 4 * H), (T0, T0 + H), (T0 + 0.5 * H, T0 + 2 * H)])
    assert merged == [(T0, T0 + 2 * H), (T0 + 3 * H, T0 + 4 * H)]


def test_timelines_of_a_fleet_are_scoped_and_paused_sets_never_breach(catalog: Catalog) -> None:
    fleet = build_fleet(catalog)
    with catalog.session() as session:
        session.execute(
            update(BackupSet)
            .where(BackupSet.id == fleet.sets["c-breached"])
            .values(created_at=fleet.now - timedelta(days=2))
        )
    with catalog.session(tenant_id=fleet.acme) as session:
        lines = {t.hostname: t for t in protection_timelines(session, now=fleet.now)}
    assert "z-globex" not in lines and "a-protected" in lines
    assert len(lines["a-protected"].snapshots) == 1 and lines["a-protected"].gaps == []
    breached = lines["c-breached"]
    # Snapshot 2 h ago with a 1 h RPO: breached from 1 h ago until now, and before the snapshot.
    assert breached.gaps[-1] == (fleet.now - timedelta(seconds=7200 - RPO), fleet.now)
    assert breached.breached_seconds == pytest.approx(
        timedelta(hours=24).total_seconds() - 7200 + RPO
    )
    assert lines["h-paused"].gaps == [] and not lines["h-paused"].sets[0].enabled
    assert lines["g-no-sets"].sets == []
    with catalog.session() as session:
        (one,) = protection_timelines(session, [fleet.agents["z-globex"]], now=fleet.now)
        assert one.hostname == "z-globex"
        assert protection_timelines(session, [], now=fleet.now) == []
        with pytest.raises(ValidationError):
            protection_timelines(session, window=timedelta(days=90))
