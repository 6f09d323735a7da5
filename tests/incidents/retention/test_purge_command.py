"""`manage.py purge`: a dry run that says what would go, a real run with progress and a summary, and an
interrupted run that leaves whole batches done and the rest for the next."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from incidents.ingest import pipeline
from incidents.ingest.normalize import normalize_native_event
from incidents.models import ErrorEvent, EventReceipt, PurgeRun, RetentionPolicy
from tests.support import database_url_for_processes, native_event

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.sqlite_too]

ROOT = Path(__file__).resolve().parents[3]


def store_old(source, *, days_ago: int, count: int) -> None:
    at = timezone.now() - timedelta(days=days_ago)
    events = [normalize_native_event(native_event(), received_at=at) for _ in range(count)]
    pipeline.events_store(source=source, events=events, received_at=at)


def test_a_dry_run_prints_each_policy_with_counts_and_sizes_and_removes_nothing(source, capsys):
    store_old(source, days_ago=40, count=4)

    call_command("purge", "--dry-run")

    out = capsys.readouterr().out
    assert "Retention: events 30 days" in out
    assert "event receipts past retention" in out
    receipts = next(line for line in out.splitlines() if "event receipts" in line)
    assert "4 rows" in receipts
    assert "Dry run: nothing was removed." in out
    assert ErrorEvent.objects.count() == 4 and not PurgeRun.objects.exists()


def test_a_run_shows_progress_and_a_summary(source, capsys):
    store_old(source, days_ago=40, count=4)

    call_command("purge")

    captured = capsys.readouterr()
    assert "rows" in captured.err and "100%" in captured.err  # tqdm's bar: done, with its rate
    assert "Purge finished: " in captured.out and "event_receipts: 4" in captured.out
    assert ErrorEvent.objects.count() == 0
    assert PurgeRun.objects.get().status == PurgeRun.Status.FINISHED


def test_it_refuses_a_negative_pause_naming_the_option():
    with pytest.raises(Exception, match="--pause must be 0 or more"):
        call_command("purge", "--pause", "-1")


@pytest.mark.live
def test_an_interrupted_run_keeps_its_whole_batches_and_the_next_run_finishes(source):
    RetentionPolicy.objects.filter(pk=1).update(event_days=7)
    store_old(source, days_ago=10, count=40)  # rows on every database: 10 days is the longest retention here
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_processes(),
        "RETENTION_BATCH_ROWS": "1",
        "RETENTION_BATCH_PAUSE_SECONDS": "0.1",
    }
    command = [sys.executable, "manage.py", "purge"]
    purging = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_progress(purging)
        purging.send_signal(signal.SIGINT)
        out, err = purging.communicate(timeout=60)
    finally:
        purging.kill()

    assert purging.returncode == 130, err
    assert "interrupted: the batches done stay done" in err
    assert "Purge interrupted" in out
    # Batches of one row: events go row by row on SQLite, receipts on both (events as a partition on PostgreSQL).
    left = EventReceipt.objects.count()
    assert 0 < left < 40
    record = PurgeRun.objects.get()
    assert record.status == PurgeRun.Status.INTERRUPTED and record.removed["event_receipts"] == 40 - left

    finished = subprocess.run(
        [*command, "--no-progress", "--pause", "0"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert (ErrorEvent.objects.count(), EventReceipt.objects.count()) == (0, 0)


def _wait_for_progress(process: subprocess.Popen) -> None:
    """Read the progress bar until it shows the receipts step under way (each redraw is a line: text mode
    turns tqdm's carriage returns into newlines)."""
    line = ""
    while True:
        char = process.stderr.read(1)
        assert char, f"purge ended before the receipts step: {line}"
        if char == "\n":
            if "event_receipts" in line:
                return
            line = ""
        else:
            line += char
