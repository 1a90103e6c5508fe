"""The reconciler: Gemini's batches compared with ours, at lane start and every
VISIONQ_BATCH_RECONCILE_S.

Every Gemini batch whose display name carries our prefix names our row (prefix + id):

- row ``creating`` → adopted (the create landed; its answer was lost or its worker died);
- row ``pending``/``running`` under that name → refreshed (its updateTime);
- a row that is ``lost``, ``stalled``, ``closed`` or holds another name (a double create)
  → an orphan: cancelled while live (VISIONQ_BATCH_ORPHANS=cancel; ``adopt`` takes a batch
  declared lost back when its jobs still wait for one), deleted once ended
  (VISIONQ_BATCH_DELETE_DONE);
- no row at all → not known to be ours: left alone, logged once per batch (another
  deployment with the same prefix and key, e.g. dev or staging run with production's key,
  must not have its batches cancelled: give each its own VISIONQ_BATCH_NAME_PREFIX).

Rows Gemini does not list: a ``pending``/``running`` one whose get answers 404 is ``lost``;
a ``creating`` one is ``lost`` once its submitter's claim and VISIONQ_BATCH_CREATE_GRACE_S
passed. A lost batch's jobs are re-sent (a new batch, or the sync lane near the deadline).
Another deployment sharing the Gemini project must use another VISIONQ_BATCH_NAME_PREFIX.
A listed batch whose row was recorded under another identity (the key rotated in the same
project) is taken over: followed by this lane from then on. Rows this key cannot see are
worker/batch_foreign.py's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from visionq.models.gemini_batches import (
    LIVE_STATES,
    BatchRow,
    GeminiBatchState,
    accept,
    batch_id_of,
    get_row,
    live_batches,
    observe,
    readopt,
    take_over,
)
from visionq.models.settings import Settings
from visionq.models.tables import utcnow
from visionq.worker.batch_api import RemoteBatch
from visionq.worker.batch_release import FOLLOWED, NOT_FOUND, add_counts, give_up, resent
from visionq.worker.errors import GeminiCallError

log = logging.getLogger(__name__)


class BatchApi(Protocol):
    """What the watchdog and the reconciler use of worker/batch_api.GeminiBatches."""

    def get(self, name: str) -> RemoteBatch: ...

    def list_all(self) -> Iterator[RemoteBatch]: ...

    def cancel(self, name: str) -> None: ...

    def delete(self, name: str) -> None: ...


class Reconciler:
    """See the module docstring; ``run_once`` is one full comparison."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        batches: BatchApi,
        settings: Settings,
        identity: str,
    ) -> None:
        self._sessions = sessions
        self._batches = batches
        self._settings = settings
        self._identity = identity
        # Batches with our prefix and no row, already logged (once per batch).
        self._unknown: set[str] = set()

    def run_once(self) -> dict[str, int]:
        """Compare once: ``adopted``, ``orphans_cancelled``, ``lost``, ``refreshed`` (and
        ``orphans_deleted``, ``readopted``). Raises GeminiCallError when Gemini cannot be
        listed (nothing is decided on a partial view)."""
        counts = dict.fromkeys(("adopted", "orphans_cancelled", "lost", "refreshed"), 0)
        ours = self._ours(self._batches.list_all())
        now = utcnow()
        with self._sessions() as session:
            rows = {row.id: row for row in live_batches(session, self._identity)}
            others = [get_row(session, batch_id) for batch_id in set(ours) - set(rows)]
        for row in others:
            if row is not None:
                rows[row.id] = self._taken_over(row, counts)
        for batch_id, remotes in ours.items():
            for remote in remotes:
                self._match(rows.get(batch_id), remote, counts)
        listed = {remote.name for remotes in ours.values() for remote in remotes}
        for row in rows.values():
            if row.id in ours or row.state not in LIVE_STATES:
                continue
            if row.state == GeminiBatchState.CREATING:
                self._unconfirmed(row, now, counts)
            elif row.gemini_name not in listed and self._gone(row):
                self._lose(row, now, "Gemini no longer has this batch (404, not listed)", counts)
        log.info("batch reconcile: %s", counts)
        return counts

    def _taken_over(self, row: BatchRow, counts: dict[str, int]) -> BatchRow:
        """A listed batch recorded under another identity: this key sees it, so it is the
        same Gemini project under a rotated key (or endpoint alias): this lane follows it
        from now on."""
        if row.identity == self._identity or row.state == GeminiBatchState.CLOSED:
            return row
        with self._sessions.begin() as session:
            if not take_over(session, row.id, identity=self._identity):
                return row
        log.warning("batch %s (%s) was recorded under another Gemini key or endpoint "
                    "(identity %s…); this key lists it: followed from now on", row.id,
                    row.gemini_name, row.identity[:8])  # fmt: skip
        add_counts(counts, {"taken_over": 1})
        return dataclasses.replace(row, identity=self._identity)

    def match_creating(self, rows: Iterable[BatchRow]) -> dict[str, int]:
        """Settle batches whose create was never confirmed: adopted when Gemini lists their
        display name, ``lost`` (jobs re-sent) once the claim and the grace passed."""
        waiting = list(rows)
        if not waiting:
            return {}
        ours = self._ours(self._batches.list_all())
        counts: dict[str, int] = {}
        now = utcnow()
        for row in waiting:
            remotes = ours.get(row.id)
            if remotes:
                self._match(row, remotes[0], counts)
                for double in remotes[1:]:
                    self._match(row, double, counts)
            else:
                self._unconfirmed(row, now, counts)
        return counts

    def _ours(self, remotes: Iterable[RemoteBatch]) -> dict[str, list[RemoteBatch]]:
        """Gemini's batches named by us, by our id (the oldest first: a double create's
        first batch is adopted, the others are orphans)."""
        found: dict[str, list[RemoteBatch]] = {}
        prefix = self._settings.batch_name_prefix
        for remote in remotes:
            batch_id = batch_id_of(prefix, remote.display_name)
            if batch_id is not None:
                found.setdefault(batch_id, []).append(remote)
        for batches in found.values():
            batches.sort(key=lambda remote: (_created(remote), remote.name))
        return found

    def _match(self, row: BatchRow | None, remote: RemoteBatch, counts: dict[str, int]) -> None:
        if row is not None and row.state == GeminiBatchState.CREATING:
            with self._sessions.begin() as session:
                adopted = accept(session, row.id, gemini_name=remote.name, input_file=None)
            if adopted:
                log.warning("Gemini batch %s adopted for %s (its create was not confirmed)",
                            remote.name, row.id)  # fmt: skip
                add_counts(counts, {"adopted": 1})
                return
            with self._sessions() as session:
                row = get_row(session, row.id)
        if row is not None and row.state in FOLLOWED and row.gemini_name == remote.name:
            with self._sessions.begin() as session:
                # The list carries no batchStats: the stored ones are kept, so only a new
                # updateTime counts as progress.
                observe(session, row.id, gemini_state=remote.state,
                        update_time=remote.update_time, stats=row.stats,
                        output_file=remote.responses_file)  # fmt: skip
            add_counts(counts, {"refreshed": 1})
            return
        if row is not None and row.gemini_name == remote.name and row.state not in (
            GeminiBatchState.CLOSED, GeminiBatchState.LOST, GeminiBatchState.STALLED,
        ):  # fmt: skip
            return  # ended at Gemini, results being stored: the poller's
        self._orphan(row, remote, counts)

    def _orphan(self, row: BatchRow | None, remote: RemoteBatch, counts: dict[str, int]) -> None:
        """A Gemini batch of ours no live row owns: cancel it while live, delete it once
        ended (or adopt it back when allowed and its jobs still wait). One with no row at
        all is left alone (it may be another deployment's)."""
        if row is None:
            add_counts(counts, {"unknown": 1})
            if remote.name not in self._unknown:
                self._unknown.add(remote.name)
                log.warning(
                    "Gemini batch %s (%s) carries this deployment's prefix %r but no batch "
                    "row of ours names it: left alone. Another deployment (dev, staging) "
                    "may share this Gemini project and prefix: give each deployment its own "
                    "VISIONQ_BATCH_NAME_PREFIX. If it is a stray of this deployment (a "
                    "database restored from backup), cancel it yourself.",
                    remote.name, remote.display_name, self._settings.batch_name_prefix,
                )  # fmt: skip
            return
        if remote.live and row is not None and self._settings.batch_orphans == "adopt":
            with self._sessions.begin() as session:
                taken = readopt(session, row.id, gemini_name=remote.name)
            if taken:
                log.warning("Gemini batch %s re-adopted for %s with %d jobs", remote.name,
                            row.id, len(taken))  # fmt: skip
                add_counts(counts, {"readopted": 1})
                return
        try:
            if remote.live:
                self._batches.cancel(remote.name)
                log.warning("orphan Gemini batch %s (%s) cancelled", remote.name,
                            remote.display_name)  # fmt: skip
                add_counts(counts, {"orphans_cancelled": 1})
            elif self._settings.batch_delete_done:
                self._batches.delete(remote.name)
                add_counts(counts, {"orphans_deleted": 1})
        except GeminiCallError as exc:
            log.warning("orphan Gemini batch %s not cancelled/deleted (%s); tried again at "
                        "the next reconcile", remote.name, exc.message)  # fmt: skip
            add_counts(counts, {"orphan_errors": 1})

    def _unconfirmed(self, row: BatchRow, now: datetime, counts: dict[str, int]) -> None:
        """A ``creating`` row Gemini does not list: lost once claim and grace passed."""
        since = row.claim_expires_at or row.created_at
        if now < since + timedelta(seconds=self._settings.batch_create_grace_s):
            return
        why = (f"Gemini has no batch named {self._settings.batch_name_prefix}{row.id}: its "
               "create never landed; sent again")  # fmt: skip
        self._lose(row, now, why, counts)

    def _gone(self, row: BatchRow) -> bool:
        """A live row missing from Gemini's list: gone when its get answers 404."""
        assert row.gemini_name is not None
        try:
            self._batches.get(row.gemini_name)
        except GeminiCallError as exc:
            if exc.http_status == NOT_FOUND:
                return True
            raise
        return False

    def _lose(self, row: BatchRow, now: datetime, why: str, counts: dict[str, int]) -> None:
        with self._sessions.begin() as session:
            released = give_up(session, row, GeminiBatchState.LOST, now=now, reason=why,
                               error_class="BatchLost", settings=self._settings)  # fmt: skip
        if released is None:
            return
        log.warning("batch %s lost (%s): %d jobs re-sent", row.id, why, sum(released.values()))
        add_counts(counts, {"lost": 1, **resent(released)})


def _created(remote: RemoteBatch) -> float:
    return remote.create_time.timestamp() if remote.create_time else float("inf")
