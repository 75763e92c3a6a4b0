"""The drill-down's query: the alarm with its journal, root cause, symptoms and people's names."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from vaultwatch.catalog import Catalog, Role, audit
from vaultwatch.catalog.soc_models import Alarm, Severity
from vaultwatch.catalog.users import create_user
from vaultwatch.soc import alarms
from vaultwatch.soc.alarm_detail import actor_names, alarm_detail
from vaultwatch.soc.alarms import AlarmNotFoundError
from vaultwatch.soc.events import Event


def test_the_detail_holds_journal_root_symptoms_and_names(catalog: Catalog) -> None:
    with catalog.session() as session:
        user = create_user(
            session,
            email="dana@soc.example",
            display_name="Dana",
            role=Role.SOC_OPERATOR,
            password="correct horse battery",
            actor="system:test",
        )
        actor = audit.user_actor(user.id)
        alarms.raise_events(
            session,
            [
                Event("site-a", "site.power", "site a on battery", Severity.CRITICAL),
                Event("gw1", "gateway.down", "gw1 down", Severity.MAJOR),
                Event("gw2", "gateway.down", "gw2 down", Severity.MAJOR),
            ],
        )
    with catalog.session() as session:
        ids = {a.node: a.id for a in session.scalars(select(Alarm))}
        root, symptom, other = ids["site-a"], ids["gw1"], ids["gw2"]
        session.execute(
            update(Alarm).where(Alarm.id.in_([symptom, other])).values(suppressed_by=root)
        )
        alarms.acknowledge(session, root, actor)
        alarms.add_note(session, root, "system:escalation", "paged the on-call")
    with catalog.session() as session:
        detail = alarm_detail(session, root)
        assert detail.alarm.id == root and detail.root is None
        assert [e.action for e in detail.journal] == ["acknowledge", "note"]
        assert sorted(a.id for a in detail.symptoms) == sorted([symptom, other])
        assert detail.symptom_total == 2
        assert detail.actors == {actor: "dana@soc.example"}
        child = alarm_detail(session, symptom)
        assert child.root is not None and child.root.id == root and child.symptoms == []
        with pytest.raises(AlarmNotFoundError):
            alarm_detail(session, 999_999)


def test_only_known_users_get_a_name(catalog: Catalog) -> None:
    with catalog.session() as session:
        names = actor_names(
            session,
            ["system:login", "user:not-a-uuid", "user:00000000-0000-0000-0000-000000000009", ""],
        )
    assert names == {}
