"""The in-process scale mode: every party answers, every receipt is verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from detente.exercise.inprocess import UN_MEMBER_STATES, party_ids, run_scale


def test_the_directory_holds_193_states_and_regional_bodies() -> None:
    assert len(set(UN_MEMBER_STATES)) == 193
    ids = party_ids(200)
    assert ids[0] == "UN-ODA" and len(set(ids)) == 200
    with pytest.raises(ValueError, match="between 2 and"):
        party_ids(1)


def test_ping_and_notification_rounds_in_one_process(tmp_path: Path) -> None:
    result = run_scale(tmp_path, 6)
    assert result.pongs == 5  # every other party's officer answered the ping
    assert result.acks == 5  # and acknowledged the notification
    # ping, pong, notification, ack: four deliveries per party, each receipt verified
    assert result.receipts_verified == 4 * 5
    assert result.peak_rss_mb > 0
