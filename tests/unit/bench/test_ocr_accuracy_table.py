"""The accuracy benchmark's table, with systems that report different metrics."""
from __future__ import annotations

from bench.ocr_accuracy import results_table


def test_a_peer_without_key_fields_gets_dashes_and_speed_is_against_the_first_row() -> None:
    ours = {"word_f1_ci": 0.92, "page_cer": 0.033, "key_f1": 0.8, "seconds_mean": 1.0}
    peer = {"word_f1_ci": 0.66, "page_cer": 0.07, "seconds_mean": 4.0}
    header, rule, first, second = results_table({"billstream": ours, "RapidOCR": peer})
    assert header == "| system | word_f1_ci | page_cer | key_f1 | seconds_mean | pages/s vs first |"
    assert rule.count("|---") == 6
    assert first == "| billstream | 0.920 | 0.033 | 0.800 | 1.000 | 1.00x |"
    assert second == "| RapidOCR | 0.660 | 0.070 | — | 4.000 | 0.25x |"
