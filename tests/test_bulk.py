"""The process section a bulk import runs in: no cyclic GC, a short GIL switch interval, and
both restored when the last of any overlapping sections ends."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from gaas.core.bulk import BULK_SWITCH_INTERVAL, bulk_section


def test_a_section_pauses_collection_and_restores_it():
    before = sys.getswitchinterval()
    assert gc.isenabled()
    with bulk_section():
        assert not gc.isenabled()
        assert sys.getswitchinterval() == pytest.approx(BULK_SWITCH_INTERVAL)
    assert gc.isenabled()
    assert sys.getswitchinterval() == before


def test_overlapping_sections_restore_only_when_the_last_ends():
    first_in, first_may_leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with bulk_section():
            first_in.set()
            first_may_leave.wait(5)
            seen.append(gc.isenabled())

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with bulk_section():
        pass
    still_paused = not gc.isenabled()  # the first section is still running
    first_may_leave.set()
    thread.join(5)
    assert still_paused and seen == [False]
    assert gc.isenabled()


def test_a_failing_section_restores_too():
    try:
        with bulk_section():
            raise RuntimeError("the import failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_a_process_that_had_collection_off_keeps_it_off():
    gc.disable()
    try:
        with bulk_section():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
