"""The line floor: lines read below it are dropped; it is chosen per decoder by page CER."""
from __future__ import annotations

import numpy as np

from models.engine.line_floor import floor_for, readable
from models.training.tune_line_floor import best_floor, floor_rows


def box(row: int) -> np.ndarray:
    top = 40.0 * row
    return np.array([[0, top], [300, top], [300, top + 30], [0, top + 30]], np.float32)


def test_each_decoder_has_its_own_floor_and_none_is_zero() -> None:
    entry = {"below": 0.6, "greedy": {"below": 0.8}}
    assert floor_for(entry, "beam") == 0.6
    assert floor_for(entry, "greedy") == 0.8
    assert floor_for({"below": 0.6}, "greedy") == 0.6  # no greedy entry: the one floor
    assert floor_for(None, "beam") == 0.0


def test_lines_read_empty_or_below_the_floor_are_dropped() -> None:
    readings = [("TOTAL 5.00", 0.99), ("*", 0.2), ("   ", 0.99), ("THANK YOU", 0.6)]
    kept = list(readable(["a", "b", "c", "d"], readings, floor=0.6))
    assert kept == [("a", "TOTAL 5.00", 0.99), ("d", "THANK YOU", 0.6)]
    assert [line for line, _, _ in readable("abcd", readings, floor=0.0)] == ["a", "b", "d"]


def test_the_floor_is_chosen_by_page_cer_not_by_word_f1() -> None:
    truth = [("TOTAL 5.00", box(0)), ("THANK YOU", box(1))]
    # a real line read with little confidence and every word wrong, and a mark that is not text
    lines = [("TOTAL 5.00", 0.99, box(0)), ("THANKY0U", 0.7, box(1)), ("WWWWWWWW", 0.2, box(2))]
    rows = floor_rows([(lines, truth)], floors=(0.0, 0.5, 0.8))
    by_floor = {row["below"]: row for row in rows}
    assert by_floor[0.5]["page_cer"] < by_floor[0.0]["page_cer"]  # the mark's characters are gone
    assert by_floor[0.5]["page_cer"] < by_floor[0.8]["page_cer"]  # the real line's characters are kept
    assert by_floor[0.8]["word_f1_ci"] > by_floor[0.5]["word_f1_ci"]  # word F1 would have dropped it
    assert by_floor[0.8]["dropped_share"] == round(2 / 3, 4)
    assert best_floor(rows)["below"] == 0.5
    tie = [{"below": 0.3, "page_cer": 0.02}, {"below": 0.1, "page_cer": 0.02}, {"below": 0.0, "page_cer": 0.03}]
    assert best_floor(tie)["below"] == 0.1
