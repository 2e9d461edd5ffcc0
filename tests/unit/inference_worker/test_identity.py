"""The worker's default identity: the lowest free slot, taken again after a crash."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from billstream_core.errors import SettingsError
from inference_worker.identity import claim_slot, explicit_slot


def test_side_by_side_workers_get_distinct_slots_and_a_freed_slot_is_reused(tmp_path: Path) -> None:
    first, second = claim_slot(tmp_path, "host"), claim_slot(tmp_path, "host")
    assert (first.instance_id, second.instance_id) == ("host-w0", "host-w1")
    first.release()
    assert claim_slot(tmp_path, "host").instance_id == "host-w0"  # the restart of the first
    assert claim_slot(tmp_path, "other").instance_id == "other-w0"  # slots are per host name


def test_a_killed_holder_leaves_its_slot_to_the_restart(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from inference_worker.identity import claim_slot; "
        f"s = claim_slot(Path({str(tmp_path)!r}), 'host'); print(s.instance_id, flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "host-w0"
        assert claim_slot(tmp_path, "host").instance_id == "host-w1"  # held by the live child
    finally:
        holder.kill()
        holder.wait(10)
    assert claim_slot(tmp_path, "host").instance_id == "host-w0"


def test_an_explicit_id_is_used_as_given_and_an_unusable_directory_says_what_to_do(tmp_path: Path) -> None:
    assert explicit_slot("pod-7").instance_id == "pod-7"
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="--instance-id"):
        claim_slot(blocker / "slots", "host")
