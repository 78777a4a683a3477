"""While stages run, the collector's young generation is collected every STAGE_GC_THRESHOLD
allocations; the process's own thresholds come back when the last (outermost) stage ends,
also when it fails."""

from __future__ import annotations

import gc

import pytest

from connector.runtime.run import STAGE_GC_THRESHOLD, batch_collection


def test_thresholds_while_stages_run_and_after() -> None:
    before = gc.get_threshold()
    with batch_collection():
        assert gc.get_threshold() == (STAGE_GC_THRESHOLD, before[1], before[2])
        with batch_collection():  # a stage inside a stage (a backfill)
            assert gc.get_threshold()[0] == STAGE_GC_THRESHOLD
        assert gc.get_threshold()[0] == STAGE_GC_THRESHOLD  # the outer one still runs
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), batch_collection():
        raise RuntimeError("a failed stage")
    assert gc.get_threshold() == before
