"""Who calls: an API key's role and scope, and the core actor a call acts as.

The caller never asserts an actor (as the ``lapor`` command's ``--actor`` does): it is derived
from the key. The workflow's roles (``workflows/sp4n-lapor.yaml``: ``admin``, ``agency``,
``reporter``, ``system``) then decide, in the core, which signals each may send:

============== ===================== ==========================================================
key role       acts as               may
============== ===================== ==========================================================
channel        ``channel:<key id>``  start cases; signal as ``reporter`` with the case's
               / ``reporter``        reporter token (a web form, the app, SMS 1708, bots)
admin_nasional ``admin:nasional``    start, signal (verify, hold, archive...), read every case,
                                     read reporters' identities (``IDENTITY_READERS``)
agency         ``agency:<code>``     read and signal only cases disposed to ``<code>``
supervisor     ``supervisor:<id>``   read every case (KemenPAN-RB's oversight); the core
                                     refuses its signals (``wrong_role``)
ombudsman      ``ombudsman:ri``      read every case; no signal of the shipped workflow
auditor        ``auditor:<id>``      read every case and history; no signal
============== ===================== ==========================================================

``system`` is never an API role (``engine.sql.apikeys.check_role``), so no caller can act as the
engine's own clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.events import Actor
from engine.faces.api.problems import ApiProblem
from engine.sql.apikeys import ApiKey

__all__ = [
    "METRICS_ROLES",
    "READ_ROLES",
    "START_ROLES",
    "Principal",
    "require_role",
]

START_ROLES = frozenset({"channel", "admin_nasional"})
READ_ROLES = frozenset({"admin_nasional", "agency", "supervisor", "ombudsman", "auditor"})
METRICS_ROLES = frozenset({"admin_nasional", "supervisor"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its key (never the key's secret) and what it acts as."""

    key: ApiKey

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def agency(self) -> str | None:
        """The one agency whose cases an agency key reaches; ``None``: every case."""
        return self.key.scope if self.key.role == "agency" else None

    @property
    def sees_raw_text(self) -> bool:
        """Whether complaint text is shown as written even for an anonymous or confidential
        report: only to Admin Nasional, who may read the identity itself; everyone else sees
        NIK, phone numbers and e-mail addresses masked (``engine.domain.masking``)."""
        return self.key.role == "admin_nasional"

    def starter(self) -> Actor:
        """The actor recorded on a start: which channel (or Admin Nasional) filed it."""
        if self.key.role == "admin_nasional":
            return Actor("admin", "nasional")
        return Actor("channel", self.key.id)

    def signaller(self) -> Actor:
        """The actor a signal is sent as; a channel speaks for the reporter, who proves it with
        the case's reporter token (checked by the runtime)."""
        role = self.key.role
        if role == "channel":
            return Actor("reporter")
        if role == "admin_nasional":
            return Actor("admin", "nasional")
        if role == "agency":
            return Actor("agency", self.key.scope or "")
        if role == "ombudsman":
            return Actor("ombudsman", "ri")
        return Actor(role, self.key.id)

    def reader(self) -> Actor:
        """The actor an identity read is asked as (the runtime checks ``IDENTITY_READERS``)."""
        return self.signaller() if self.key.role != "channel" else Actor("channel", self.key.id)

    def may_see(self, case_agency: str | None) -> bool:
        """Whether this caller may see a case disposed to ``case_agency`` at all."""
        return self.agency is None or case_agency == self.agency


def require_role(principal: Principal, allowed: frozenset[str], what: str) -> None:
    """A 403 ``forbidden`` unless ``principal``'s role is among ``allowed``."""
    if principal.role not in allowed:
        raise ApiProblem(
            403,
            "forbidden",
            f"a key of role {principal.role!r} may not {what}; roles that may: "
            f"{', '.join(sorted(allowed))}",
        )
