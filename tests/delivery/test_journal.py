"""The SQLite journal: idempotent appends, leases between processes, states and schedules."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from _support.records import identified_record

from llmring_usage.delivery.journal import Journal
from llmring_usage.errors import ConfigurationError
from llmring_usage.record import Receipt, UsageRecord

LEASE_S = 30.0


def make_record() -> UsageRecord:
    return identified_record("journal")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "j" / "usage.db"


@pytest.fixture
def journal(path: Path):
    opened = Journal(path)
    yield opened
    opened.close()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


class TestAppend:
    """Records are written once, as pending."""

    def test_append_is_idempotent_per_record_id(self, journal):
        """The same record appended twice is one row; the second append writes nothing."""
        record = make_record()
        assert journal.append([record]) == 1
        assert journal.append([record]) == 0
        assert journal.counts().pending == 1

    def test_body_round_trips(self, journal):
        """A claimed record equals the one appended."""
        record = make_record()
        journal.append([record])
        (claimed,) = journal.claim(10, lease_s=LEASE_S)
        assert claimed.record == record and claimed.attempts == 1 and not claimed.check_needed

    def test_unwritable_path_is_a_configuration_error(self, tmp_path):
        """A journal path under a regular file raises ConfigurationError, not sqlite3.Error."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ConfigurationError, match="journal"):
            Journal(blocker / "usage.db")


class TestLeases:
    """A claimed row belongs to one journal object until released or its holder dies."""

    def test_leased_rows_are_not_claimed_twice(self, journal, path):
        """A second journal on the same file (another process) gets nothing while the lease holds."""
        journal.append([make_record() for _ in range(3)])
        other = Journal(path)
        try:
            assert len(journal.claim(10, lease_s=LEASE_S)) == 3
            assert other.claim(10, lease_s=LEASE_S) == []
        finally:
            other.close()

    def test_claim_marks_outcome_unknown_until_released(self, journal):
        """An attempt under way is check_needed; a release without unknown outcome clears it."""
        record = make_record()
        journal.append([record])
        journal.claim(10, lease_s=LEASE_S)
        assert journal.counts().check_needed == 1
        journal.release(record.record_id, next_attempt_at=0, error="refused", outcome_unknown=False)
        assert journal.counts().check_needed == 0
        (again,) = journal.claim(10, lease_s=LEASE_S)
        assert again.attempts == 2 and not again.check_needed

    def test_unknown_outcome_survives_release(self, journal):
        """A release after a lost answer keeps check_needed, so the server is asked first."""
        record = make_record()
        journal.append([record])
        journal.claim(10, lease_s=LEASE_S)
        journal.release(record.record_id, next_attempt_at=0, error="cut", outcome_unknown=True)
        (again,) = journal.claim(10, lease_s=LEASE_S)
        assert again.check_needed
        assert journal.get(record.record_id)["error"] == "cut"

    def test_lease_of_a_dead_process_is_void(self, journal, path):
        """Rows leased by a pid that no longer runs are claimable at once, as check_needed."""
        record = make_record()
        journal.append([record], lease_s=LEASE_S)
        with journal._transaction() as db:
            db.execute("UPDATE records SET lease_pid = ?", (dead_pid(),))
        other = Journal(path)
        try:
            (claimed,) = other.claim(10, lease_s=LEASE_S)
        finally:
            other.close()
        assert claimed.record.record_id == record.record_id and claimed.check_needed

    def test_release_all_frees_only_own_leases(self, journal, path):
        """release_all gives back this journal object's leases, not another's."""
        journal.append([make_record() for _ in range(4)])
        other = Journal(path)
        try:
            mine = journal.claim(2, lease_s=LEASE_S)
            theirs = other.claim(2, lease_s=LEASE_S)
            assert len(mine) == len(theirs) == 2
            journal.release_all()
            reclaimed = other.claim(10, lease_s=LEASE_S)
        finally:
            other.close()
        assert {c.record.record_id for c in reclaimed} == {c.record.record_id for c in mine}


class TestStates:
    """Delivered and rejected rows are kept, with receipt or reason; schedules can be reset."""

    def test_delivered_keeps_the_receipt(self, journal):
        """mark_delivered stores the server's log id and cost and clears the lease."""
        record = make_record()
        journal.append([record], lease_s=LEASE_S)
        journal.mark_delivered([Receipt(record.record_id, "log-1", 0.5, "2026-01-01T00:00:00")])
        row = journal.get(record.record_id)
        assert (row["state"], row["log_id"], row["server_cost"], row["check_needed"]) == (
            "delivered",
            "log-1",
            0.5,
            0,
        )
        assert journal.counts().delivered == 1 and journal.counts().pending == 0

    def test_rejected_keeps_the_reason(self, journal):
        """mark_rejected keeps the record with the server's reason, never to be sent again."""
        record = make_record()
        journal.append([record])
        journal.mark_rejected(record.record_id, "HTTP 422: bad")
        assert journal.get(record.record_id)["error"] == "HTTP 422: bad"
        assert journal.claim(10, lease_s=LEASE_S, ignore_schedule=True) == []
        assert journal.counts().rejected == 1

    def test_backoff_schedule_and_reschedule_now(self, journal):
        """A record released for later is not due; reschedule_now makes it due at once."""
        record = make_record()
        journal.append([record])
        journal.claim(1, lease_s=LEASE_S)
        later = time.time() + 60
        journal.release(record.record_id, next_attempt_at=later, error="500", outcome_unknown=False)
        assert journal.claim(1, lease_s=LEASE_S) == []
        assert journal.next_due_at() == pytest.approx(later)
        journal.reschedule_now()
        assert len(journal.claim(1, lease_s=LEASE_S)) == 1

    def test_next_due_at_is_none_when_nothing_pends(self, journal):
        """An empty journal has no due time."""
        assert journal.next_due_at() is None
