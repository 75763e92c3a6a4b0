"""How the ``vaultwatch soc`` command reaches the service: over HTTPS, or on the server itself.

`SocClient` is what the command needs. `HttpSocClient` calls the API with an
API key (the key's role and tenant decide what it sees); `LocalSocClient`
opens a server's data directory and calls the domain functions directly as
the operator at the console. Both answer with the API's JSON documents, made
by the same schemas, so the command renders one form whichever it uses.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import TypeAdapter

from vaultwatch.catalog import Catalog, CatalogSession
from vaultwatch.catalog.db import database_now
from vaultwatch.catalog.soc_models import (
    CaseState,
    Incident,
    IncidentState,
    Severity,
    SupportCase,
)
from vaultwatch.errors import VaultwatchError
from vaultwatch.gateway.problems import status_of
from vaultwatch.protocol import API_PREFIX
from vaultwatch.server_config import ServerSettings, load_settings
from vaultwatch.soc import (
    alarm_list,
    alarms,
    cases,
    customer_updates,
    diagnostics,
    incidents,
    silences,
    status,
)
from vaultwatch.soc.api.cases import CaseEntryOut, CaseOut
from vaultwatch.soc.api.incidents import CustomerUpdateOut, IncidentOut, TimelineEntryOut
from vaultwatch.soc.api.schemas import AlarmOut, JournalEntryOut
from vaultwatch.soc.api.silences import SilenceOut

SERVER_ENV = "VAULTWATCH_SERVER"
API_KEY_ENV = "VAULTWATCH_API_KEY"
CA_CERT_ENV = "VAULTWATCH_CA_CERT"

Doc = dict[str, Any]
_T = TypeVar("_T")


class SocClientError(VaultwatchError):
    """The service could not be reached or refused the request; the message says which."""


class SocConnectionError(SocClientError):
    """No answer: refused, unresolvable, timed out, or the TLS handshake failed."""

    exit_code = 3


class SocAuthError(SocClientError):
    """The API key is missing, wrong, revoked or lacks the role."""

    exit_code = 4


class SocNotFoundError(SocClientError):
    """The thing asked for does not exist (or belongs to another tenant)."""

    exit_code = 5


class SocRequestError(SocClientError):
    """The request was refused as invalid."""

    exit_code = 2


class SocClient(Protocol):
    """What the command line asks of the service."""

    def status(self) -> Doc: ...
    def agents(
        self, *, state: str | None, tenant: uuid.UUID | None, limit: int, cursor: str | None
    ) -> Doc: ...
    def agent(self, agent_id: uuid.UUID) -> Doc: ...
    def jobs(self, *, running: bool, limit: int) -> list[Doc]: ...
    def job(self, job_id: uuid.UUID) -> Doc: ...
    def snapshots(self, backup_set_id: uuid.UUID, *, limit: int) -> list[Doc]: ...
    def nodes(self) -> list[Doc]: ...
    def alarms(
        self,
        *,
        min_severity: str | None,
        alert_group: str | None,
        node: str | None,
        tenant: uuid.UUID | None,
        include_cleared: bool,
        limit: int,
    ) -> list[Doc]: ...
    def ack(self, alarm_id: int) -> Doc: ...
    def unack(self, alarm_id: int) -> Doc: ...
    def clear(self, alarm_id: int, reason: str) -> Doc: ...
    def note(self, alarm_id: int, text: str) -> Doc: ...
    def assign(self, alarm_id: int, owner: str | None) -> Doc: ...
    def silence(self, matchers: list[dict[str, str]], duration: timedelta, comment: str) -> Doc: ...
    def silences(self, *, include_ended: bool, limit: int) -> list[Doc]: ...
    def unsilence(self, silence_id: int) -> Doc: ...
    def diagnose(self, kind: str, name: str, *, alarm_id: int | None) -> Doc: ...
    def incidents(self, *, state: str | None, limit: int) -> list[Doc]: ...
    def incident(self, incident_id: int) -> Doc: ...
    def incident_timeline(self, incident_id: int) -> list[Doc]: ...
    def open_incident(self, alarm_id: int, *, title: str | None) -> Doc: ...
    def ack_incident(self, incident_id: int, note: str) -> Doc: ...
    def resolve_incident(self, incident_id: int, note: str) -> Doc: ...
    def incident_updates(self, incident_id: int) -> list[Doc]: ...
    def publish_update(
        self, incident_id: int, update_id: int, *, text: str | None
    ) -> list[Doc]: ...
    def cases(self, *, state: str | None, limit: int) -> list[Doc]: ...
    def case(self, case_id: int) -> Doc: ...
    def escalate_case(self, case_id: int, reason: str) -> Doc: ...
    def case_note(self, case_id: int, text: str, *, internal: bool) -> Doc: ...
    def resolve_case(self, case_id: int, resolution: str) -> Doc: ...
    def close(self) -> None: ...


def _dump(value: Any, kind: type[_T]) -> Any:
    """The JSON form FastAPI renders for `value` of type `kind`."""
    return TypeAdapter(kind).dump_python(value, mode="json")


# -- over HTTP ---------------------------------------------------------------------------------


def _problem_detail(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("title") or response.reason_phrase)
    return response.reason_phrase


class HttpSocClient:
    """The SOC API over HTTPS with a bearer API key, verifying the server's certificate."""

    def __init__(
        self,
        server: str,
        api_key: str,
        *,
        ca_cert: Path | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not server.startswith(("https://", "http://")):
            raise SocRequestError(f"server URL {server!r} must start with https://")
        if not api_key:
            raise SocAuthError(f"no API key: use --api-key or set {API_KEY_ENV}")
        self.server = server.rstrip("/")
        verify: ssl.SSLContext | bool = True
        if ca_cert is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_cert))
            except (OSError, ssl.SSLError) as exc:
                raise SocRequestError(f"cannot use CA certificate {ca_cert}: {exc}") from None
        self._http = httpx.Client(
            base_url=self.server + API_PREFIX,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            verify=verify,
            timeout=timeout,
            transport=transport,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise self._connect_error(exc) from None
        except httpx.TimeoutException:
            raise SocConnectionError(f"{self.server} did not answer in time") from None
        except httpx.TransportError as exc:
            raise SocConnectionError(f"cannot talk to {self.server}: {exc}") from None
        if response.is_success:
            return response.json()
        detail = _problem_detail(response)
        code = response.status_code
        if code == 401:
            raise SocAuthError(f"the server refused the API key (401): {detail}")
        if code == 403:
            raise SocAuthError(f"not allowed for this API key (403): {detail}")
        if code == 404:
            raise SocNotFoundError(f"not found: {detail}")
        if code in (400, 409, 422):
            raise SocRequestError(f"refused ({code}): {detail}")
        raise SocClientError(f"the server failed ({code}): {detail}")

    def _connect_error(self, exc: httpx.ConnectError) -> SocConnectionError:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text:
            return SocConnectionError(
                f"TLS verification of {self.server} failed ({text}): "
                f"give the server's CA certificate with --ca-cert or {CA_CERT_ENV}"
            )
        if "refused" in text.lower():
            return SocConnectionError(
                f"connection to {self.server} refused: is the server running?"
            )
        return SocConnectionError(f"cannot connect to {self.server}: {text}")

    def status(self) -> Doc:
        doc: Doc = self._call("GET", "/status")
        return doc

    def agents(
        self, *, state: str | None, tenant: uuid.UUID | None, limit: int, cursor: str | None
    ) -> Doc:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if tenant:
            params["tenant"] = str(tenant)
        if cursor:
            params["cursor"] = cursor
        doc: Doc = self._call("GET", "/agents", params=params)
        return doc

    def agent(self, agent_id: uuid.UUID) -> Doc:
        doc: Doc = self._call("GET", f"/agents/{agent_id}")
        return doc

    def jobs(self, *, running: bool, limit: int) -> list[Doc]:
        docs: list[Doc] = self._call(
            "GET", "/jobs", params={"running": str(running).lower(), "limit": limit}
        )
        return docs

    def job(self, job_id: uuid.UUID) -> Doc:
        doc: Doc = self._call("GET", f"/jobs/{job_id}")
        return doc

    def snapshots(self, backup_set_id: uuid.UUID, *, limit: int) -> list[Doc]:
        docs: list[Doc] = self._call(
            "GET", f"/backup-sets/{backup_set_id}/snapshots", params={"limit": limit}
        )
        return docs

    def nodes(self) -> list[Doc]:
        docs: list[Doc] = self._call("GET", "/nodes")
        return docs

    def alarms(
        self,
        *,
        min_severity: str | None,
        alert_group: str | None,
        node: str | None,
        tenant: uuid.UUID | None,
        include_cleared: bool,
        limit: int,
    ) -> list[Doc]:
        params: dict[str, Any] = {"limit": limit, "include_cleared": str(include_cleared).lower()}
        for name, value in (
            ("min_severity", min_severity),
            ("alert_group", alert_group),
            ("node", node),
            ("tenant_id", str(tenant) if tenant else None),
        ):
            if value:
                params[name] = value
        page: Doc = self._call("GET", "/alarms", params=params)
        items: list[Doc] = page["items"]
        return items

    def ack(self, alarm_id: int) -> Doc:
        doc: Doc = self._call("POST", f"/alarms/{alarm_id}/ack")
        return doc

    def unack(self, alarm_id: int) -> Doc:
        doc: Doc = self._call("POST", f"/alarms/{alarm_id}/unack")
        return doc

    def clear(self, alarm_id: int, reason: str) -> Doc:
        doc: Doc = self._call("POST", f"/alarms/{alarm_id}/clear", json={"reason": reason})
        return doc

    def note(self, alarm_id: int, text: str) -> Doc:
        doc: Doc = self._call("POST", f"/alarms/{alarm_id}/notes", json={"text": text})
        return doc

    def assign(self, alarm_id: int, owner: str | None) -> Doc:
        doc: Doc = self._call("POST", f"/alarms/{alarm_id}/assign", json={"owner": owner})
        return doc

    def silence(self, matchers: list[dict[str, str]], duration: timedelta, comment: str) -> Doc:
        # It starts when the server receives it; the API takes the end as a time, from our clock.
        ends_at = datetime.now(UTC) + duration
        body = {"matchers": matchers, "comment": comment, "ends_at": ends_at.isoformat()}
        doc: Doc = self._call("POST", "/silences", json=body)
        return doc

    def silences(self, *, include_ended: bool, limit: int) -> list[Doc]:
        params = {"include_ended": str(include_ended).lower(), "limit": limit}
        docs: list[Doc] = self._call("GET", "/silences", params=params)
        return docs

    def unsilence(self, silence_id: int) -> Doc:
        doc: Doc = self._call("DELETE", f"/silences/{silence_id}")
        return doc

    def diagnose(self, kind: str, name: str, *, alarm_id: int | None) -> Doc:
        body = {"kind": kind, "name": name, "alarm_id": alarm_id}
        doc: Doc = self._call("POST", "/diagnostics", json=body)
        return doc

    def incidents(self, *, state: str | None, limit: int) -> list[Doc]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        page: Doc = self._call("GET", "/incidents", params=params)
        items: list[Doc] = page["items"]
        return items

    def incident(self, incident_id: int) -> Doc:
        doc: Doc = self._call("GET", f"/incidents/{incident_id}")
        return doc

    def incident_timeline(self, incident_id: int) -> list[Doc]:
        docs: list[Doc] = self._call("GET", f"/incidents/{incident_id}/timeline")
        return docs

    def open_incident(self, alarm_id: int, *, title: str | None) -> Doc:
        body: dict[str, Any] = {"alarm_id": alarm_id}
        if title is not None:
            body["title"] = title
        doc: Doc = self._call("POST", "/incidents", json=body)
        return doc

    def ack_incident(self, incident_id: int, note: str) -> Doc:
        doc: Doc = self._call("POST", f"/incidents/{incident_id}/ack", json={"note": note})
        return doc

    def resolve_incident(self, incident_id: int, note: str) -> Doc:
        doc: Doc = self._call("POST", f"/incidents/{incident_id}/resolve", json={"note": note})
        return doc

    def incident_updates(self, incident_id: int) -> list[Doc]:
        docs: list[Doc] = self._call("GET", f"/incidents/{incident_id}/updates")
        return docs

    def publish_update(self, incident_id: int, update_id: int, *, text: str | None) -> list[Doc]:
        body = {"text": text} if text is not None else {}
        docs: list[Doc] = self._call(
            "POST", f"/incidents/{incident_id}/updates/{update_id}/publish", json=body
        )
        return docs

    def cases(self, *, state: str | None, limit: int) -> list[Doc]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        page: Doc = self._call("GET", "/cases", params=params)
        items: list[Doc] = page["items"]
        return items

    def case(self, case_id: int) -> Doc:
        doc: Doc = self._call("GET", f"/cases/{case_id}")
        return doc

    def escalate_case(self, case_id: int, reason: str) -> Doc:
        doc: Doc = self._call("POST", f"/cases/{case_id}/escalate", json={"text": reason})
        return doc

    def case_note(self, case_id: int, text: str, *, internal: bool) -> Doc:
        body = {"text": text, "internal": internal}
        doc: Doc = self._call("POST", f"/cases/{case_id}/notes", json=body)
        return doc

    def resolve_case(self, case_id: int, resolution: str) -> Doc:
        doc: Doc = self._call("POST", f"/cases/{case_id}/resolve", json={"text": resolution})
        return doc

    def close(self) -> None:
        self._http.close()


# -- on the server -----------------------------------------------------------------------------


class LocalSocClient:
    """The service's own catalog, opened from a server data directory, as the console operator.

    Whoever can read the data directory (and so its secrets) is trusted with
    every tenant; actions are journaled and audited under `actor`.
    """

    def __init__(
        self,
        catalog: Catalog,
        actor: str,
        *,
        settings: ServerSettings | None = None,
        own_catalog: bool = False,
    ) -> None:
        self.catalog = catalog
        self.actor = actor
        self.settings = settings
        self._own = own_catalog

    @classmethod
    def open(cls, data_dir: Path, actor: str) -> LocalSocClient:
        """Open the data directory's catalog (its schema must be current)."""
        settings = load_settings(data_dir)
        catalog = Catalog(settings.catalog_url)
        try:
            catalog.check_schema()
        except BaseException:
            catalog.dispose()
            raise
        return cls(catalog, actor, settings=settings, own_catalog=True)

    @contextmanager
    def _session(self) -> Iterator[CatalogSession]:
        """A transaction whose refusals carry the same exit codes as the HTTP client's."""
        with _refusals(), self.catalog.session() as session:
            yield session

    def _settings(self) -> ServerSettings:
        if self.settings is None:
            raise SocRequestError("this needs the server's settings: open it with --data-dir")
        return self.settings

    def _extra(self) -> dict[str, Any]:
        return self.settings.extra if self.settings is not None else {}

    def status(self) -> Doc:
        with self._session() as session:
            doc: Doc = _dump(status.fleet_summary(session), status.FleetSummary)
            return doc

    def agents(
        self, *, state: str | None, tenant: uuid.UUID | None, limit: int, cursor: str | None
    ) -> Doc:
        wanted = _parse_state(state)
        with self._session() as session:
            page = status.list_agent_status(
                session, state=wanted, tenant_id=tenant, limit=limit, cursor=cursor
            )
            doc: Doc = _dump(page, status.AgentPage)
            return doc

    def agent(self, agent_id: uuid.UUID) -> Doc:
        with self._session() as session:
            doc: Doc = _dump(status.agent_status(session, agent_id), status.AgentStatus)
            return doc

    def jobs(self, *, running: bool, limit: int) -> list[Doc]:
        with self._session() as session:
            docs: list[Doc] = _dump(
                status.list_jobs(session, running=running, limit=limit), list[status.JobInfo]
            )
            return docs

    def job(self, job_id: uuid.UUID) -> Doc:
        with self._session() as session:
            doc: Doc = _dump(status.job_detail(session, job_id), status.JobInfo)
            return doc

    def snapshots(self, backup_set_id: uuid.UUID, *, limit: int) -> list[Doc]:
        with self._session() as session:
            rows = status.list_snapshots(session, backup_set_id, limit=limit)
            docs: list[Doc] = _dump(rows, list[status.SnapshotInfo])
            return docs

    def nodes(self) -> list[Doc]:
        with self._session() as session:
            docs: list[Doc] = _dump(status.list_nodes(session), list[status.NodeInfo])
            return docs

    def alarms(
        self,
        *,
        min_severity: str | None,
        alert_group: str | None,
        node: str | None,
        tenant: uuid.UUID | None,
        include_cleared: bool,
        limit: int,
    ) -> list[Doc]:
        flt = alarm_list.AlarmFilter(
            min_severity=_parse_severity(min_severity),
            alert_group=alert_group,
            node=node,
            tenant_id=tenant,
            include_cleared=include_cleared,
        )
        with self._session() as session:
            page = alarm_list.list_alarms(session, flt, limit=limit)
            return [AlarmOut.of(a).model_dump(mode="json") for a in page.items]

    def _alarm(self, action: Any) -> Doc:
        with self._session() as session:
            alarm = action(session)
            session.flush()
            return AlarmOut.of(alarm).model_dump(mode="json")

    def ack(self, alarm_id: int) -> Doc:
        return self._alarm(lambda s: alarms.acknowledge(s, alarm_id, self.actor))

    def unack(self, alarm_id: int) -> Doc:
        return self._alarm(
            lambda s: alarms.acknowledge(s, alarm_id, self.actor, acknowledged=False)
        )

    def clear(self, alarm_id: int, reason: str) -> Doc:
        return self._alarm(lambda s: alarms.clear(s, alarm_id, self.actor, reason))

    def note(self, alarm_id: int, text: str) -> Doc:
        with self._session() as session:
            entry = alarms.add_note(session, alarm_id, self.actor, text)
            session.flush()
            return JournalEntryOut.of(entry).model_dump(mode="json")

    def assign(self, alarm_id: int, owner: str | None) -> Doc:
        return self._alarm(lambda s: alarms.assign(s, alarm_id, self.actor, owner))

    def silence(self, matchers: list[dict[str, str]], duration: timedelta, comment: str) -> Doc:
        with self._session() as session:
            now = database_now(session)
            row = silences.create_silence(
                session,
                actor=self.actor,
                comment=comment,
                matchers=matchers,
                starts_at=now,
                ends_at=now + duration,
                now=now,
            )
            muted = silences.muted_count(session, row.id)
            return SilenceOut.of(row, now, muted).model_dump(mode="json")

    def silences(self, *, include_ended: bool, limit: int) -> list[Doc]:
        with self._session() as session:
            now = database_now(session)
            rows = silences.list_silences(
                session, now=now, include_ended=include_ended, limit=limit
            )
            return [
                SilenceOut.of(r, now, silences.muted_count(session, r.id)).model_dump(mode="json")
                for r in rows
            ]

    def unsilence(self, silence_id: int) -> Doc:
        with self._session() as session:
            now = database_now(session)
            row = silences.cancel_silence(session, silence_id, self.actor, now=now)
            muted = silences.muted_count(session, silence_id)
            return SilenceOut.of(row, now, muted).model_dump(mode="json")

    def diagnose(self, kind: str, name: str, *, alarm_id: int | None) -> Doc:
        settings = self._settings()
        with _refusals():
            report = diagnostics.diagnose(
                self.catalog, settings, kind, name, alarm_id=alarm_id, actor=self.actor
            )
        return report.to_dict()

    def _incident(self, session: CatalogSession, incident: Incident) -> Doc:
        session.flush()
        tenants = incidents.tenants_of(session, incident.id)
        return IncidentOut.of(incident, tenants).model_dump(mode="json")

    def incidents(self, *, state: str | None, limit: int) -> list[Doc]:
        wanted = _parse_enum(IncidentState, state)
        with self._session() as session:
            rows = incidents.list_incidents(session, state=wanted, limit=limit)
            return [self._incident(session, i) for i in rows]

    def incident(self, incident_id: int) -> Doc:
        with self._session() as session:
            return self._incident(session, incidents.get_incident(session, incident_id))

    def incident_timeline(self, incident_id: int) -> list[Doc]:
        with self._session() as session:
            incidents.get_incident(session, incident_id)
            return [
                TimelineEntryOut.of(e).model_dump(mode="json")
                for e in incidents.timeline(session, incident_id)
            ]

    def open_incident(self, alarm_id: int, *, title: str | None) -> Doc:
        with _refusals():
            rules = incidents.incident_rules(self._extra())
        with self._session() as session:
            incident = incidents.open_incident_for_alarm(
                session, alarm_id, actor=self.actor, title=title, rules=rules
            )
            return self._incident(session, incident)

    def ack_incident(self, incident_id: int, note: str) -> Doc:
        with self._session() as session:
            incident = incidents.acknowledge(session, incident_id, self.actor, note=note)
            return self._incident(session, incident)

    def resolve_incident(self, incident_id: int, note: str) -> Doc:
        with self._session() as session:
            incident = incidents.resolve(session, incident_id, self.actor, note=note)
            return self._incident(session, incident)

    def incident_updates(self, incident_id: int) -> list[Doc]:
        with self._session() as session:
            incidents.get_incident(session, incident_id)
            rows = customer_updates.updates_of(session, incident_id)
            return [CustomerUpdateOut.of(r).model_dump(mode="json") for r in rows]

    def publish_update(self, incident_id: int, update_id: int, *, text: str | None) -> list[Doc]:
        with _refusals():
            hooks = customer_updates.customer_webhooks(self._extra())
        with self._session() as session:
            rows = customer_updates.publish_update(
                session,
                update_id,
                actor=self.actor,
                incident_id=incident_id,
                text=text,
                webhooks=hooks,
            )
            session.flush()
            return [CustomerUpdateOut.of(r).model_dump(mode="json") for r in rows]

    def _case(self, session: CatalogSession, case: SupportCase) -> Doc:
        session.flush()
        history = cases.history(session, case.id)
        return CaseOut.of(case, history).model_dump(mode="json")

    def cases(self, *, state: str | None, limit: int) -> list[Doc]:
        wanted = _parse_enum(CaseState, state)
        with self._session() as session:
            rows = cases.list_cases(session, state=wanted, limit=limit)
            return [CaseOut.of(c).model_dump(mode="json") for c in rows]

    def case(self, case_id: int) -> Doc:
        with self._session() as session:
            return self._case(session, cases.get_case(session, case_id))

    def escalate_case(self, case_id: int, reason: str) -> Doc:
        with self._session() as session:
            return self._case(session, cases.escalate(session, case_id, self.actor, reason))

    def case_note(self, case_id: int, text: str, *, internal: bool) -> Doc:
        with self._session() as session:
            entry = cases.add_note(session, case_id, self.actor, text, internal=internal)
            session.flush()
            return CaseEntryOut.of(entry).model_dump(mode="json")

    def resolve_case(self, case_id: int, resolution: str) -> Doc:
        with self._session() as session:
            return self._case(session, cases.resolve(session, case_id, self.actor, resolution))

    def close(self) -> None:
        if self._own:
            self.catalog.dispose()


@contextmanager
def _refusals() -> Iterator[None]:
    """Domain refusals as client errors, with the same exit codes as the HTTP client's."""
    try:
        yield
    except SocClientError:
        raise
    except VaultwatchError as exc:
        raise _as_client_error(exc) from exc


_E = TypeVar("_E", bound=Enum)


def _parse_enum(kind: type[_E], text: str | None) -> _E | None:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        names = ", ".join(s.value for s in kind)
        raise SocRequestError(f"unknown state {text!r}: use one of {names}") from None


def _as_client_error(exc: VaultwatchError) -> SocClientError:
    status = status_of(exc)
    if status == 404:
        return SocNotFoundError(f"not found: {exc}")
    if status in (401, 403):
        return SocAuthError(str(exc))
    if status in (400, 409, 422):
        return SocRequestError(str(exc))
    return SocClientError(str(exc))


def _parse_state(text: str | None) -> status.ProtectionState | None:
    return _parse_enum(status.ProtectionState, text)


def _parse_severity(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise SocRequestError(str(exc)) from None


def connect(
    *,
    server: str | None,
    api_key: str | None,
    ca_cert: Path | None,
    data_dir: Path | None,
    actor: str,
) -> SocClient:
    """The client the options ask for: --data-dir on the server itself, else --server over HTTPS."""
    if server and data_dir:
        raise SocRequestError("give either --server or --data-dir, not both")
    if data_dir is not None:
        return LocalSocClient.open(data_dir, actor)
    if not server:
        raise SocRequestError(
            f"say where the service is: --server URL (or {SERVER_ENV}) with an API key, "
            "or --data-dir DIR on the server itself"
        )
    return HttpSocClient(server, api_key or "", ca_cert=ca_cert)
