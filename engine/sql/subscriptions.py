"""The ``webhook_subscriptions`` table: agencies' Standard Webhooks endpoints.

The secret (``whsec_...``) is returned once, when the subscription is made; the table keeps it
sealed by the identity key ring (``KeyRing.seal`` bound to the subscription's id), because the
delivery process must read it back to sign. A copy of the database alone signs nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select

from engine.domain.errors import LaporError
from engine.runtime.errors import IntegrityViolationError
from engine.runtime.identity import KeyRing, SealedIdentity
from engine.runtime.posting import check_url
from engine.runtime.standard_webhooks import Subscription, new_secret
from engine.sql import store
from engine.sql.tables import webhook_subscriptions

__all__ = ["SubscriptionStore"]

_URL_MAX = 2000


def _bound(subscription_id: str) -> str:
    return f"subscription:{subscription_id}"


class SubscriptionStore:
    """Subscriptions of a migrated database; ``ring`` seals and opens their secrets."""

    def __init__(self, engine: Engine, ring: KeyRing) -> None:
        self.engine = engine
        self._ring = ring

    def create(self, agency: str, url: str, now: datetime) -> Subscription:
        """A new subscription of ``agency`` to ``url`` (http or https), with a fresh secret."""
        check_url(url)
        if len(url) > _URL_MAX:
            raise LaporError(f"a webhook URL is at most {_URL_MAX} characters")
        subscription = Subscription("sub_" + secrets.token_hex(8), agency, url, new_secret(), now)
        sealed = self._ring.seal(_bound(subscription.id), {"secret": subscription.secret})
        row = {
            "id": subscription.id,
            "agency": agency,
            "url": url,
            "secret_sealed": sealed.to_text(),
            "created_us": store.epoch_us(now),
        }
        try:
            store.transact(
                self.engine,
                lambda conn: conn.execute(insert(webhook_subscriptions).values(row)),
                action="store a webhook subscription",
            )
        except IntegrityViolationError:  # a 64-bit id drawn twice: draw again
            return self.create(agency, url, now)
        return subscription

    def all(self, agency: str | None = None) -> list[Subscription]:
        """Every subscription (of ``agency`` only, when given), oldest first."""
        table = webhook_subscriptions
        query = select(table).order_by(table.c.created_us, table.c.id)
        if agency is not None:
            query = query.where(table.c.agency == agency)
        rows = store.read(
            self.engine, lambda conn: conn.execute(query).all(), action="list subscriptions"
        )
        return [self._subscription(row) for row in rows]

    def for_agency(self, agency: str) -> list[Subscription]:
        """``agency``'s subscriptions, with their secrets: what delivery signs with."""
        return self.all(agency)

    def delete(self, subscription_id: str, agency: str | None = None) -> bool:
        """Remove a subscription (only ``agency``'s, when given); whether one was removed."""
        table = webhook_subscriptions
        stmt = delete(table).where(table.c.id == subscription_id)
        if agency is not None:
            stmt = stmt.where(table.c.agency == agency)
        removed = store.transact(
            self.engine, lambda conn: conn.execute(stmt).rowcount, action="delete a subscription"
        )
        return bool(removed)

    def rewrap(self) -> int:
        """Wrap every secret's data key not yet under the ring's active key with it (after a
        rotation, as ``lapor identity rewrap`` does for identities); how many. Until then an
        old key cannot leave the ring without breaking the subscriptions it sealed."""
        table = webhook_subscriptions

        def work(conn: Connection) -> int:
            moved = 0
            for row in conn.execute(select(table.c.id, table.c.secret_sealed)).all():
                sealed = SealedIdentity.from_text(row.secret_sealed)
                if sealed.key_id == self._ring.active:
                    continue
                rewrapped = self._ring.rewrap(_bound(row.id), sealed)
                conn.execute(
                    table.update()
                    .where(table.c.id == row.id)
                    .values(secret_sealed=rewrapped.to_text())
                )
                moved += 1
            return moved

        return store.transact(self.engine, work, action="rewrap subscription secrets")

    def _subscription(self, row: Row[Any]) -> Subscription:
        opened = self._ring.open_text(_bound(row.id), row.secret_sealed)
        return Subscription(
            row.id, row.agency, row.url, str(opened["secret"]), store.from_epoch_us(row.created_us)
        )
