from stream_app import records


def result(**overrides: object) -> dict:
    base = {"order_number": "A", "status": "RECOGNIZED", "error_code": None, "cached": False,
            "submitted_at_ms": 1, "completed_at_ms": 2, "page_text": "TOTAL 1.00"}
    return base | overrides


def test_only_image_facts_are_cacheable() -> None:
    assert records.cacheable(result())
    assert records.cacheable(result(status="FAILED", error_code="CORRUPT_IMAGE"))
    assert not records.cacheable(result(status="FAILED", error_code="STORAGE_UNAVAILABLE"))
    assert not records.cacheable(result(status="FAILED", error_code="INTERNAL"))


def test_cached_copy_is_for_the_new_order_and_says_so() -> None:
    copy = records.cached_copy(result(), "B", 123)
    assert (copy["order_number"], copy["cached"], copy["submitted_at_ms"]) == ("B", True, 123)
    assert copy["page_text"] == "TOTAL 1.00" and copy["completed_at_ms"] > 2


def test_waiters_are_added_once_and_never_the_lead() -> None:
    entry = records.new_entry("LEAD", "v1")
    assert records.add_waiter(entry, "W1", b"event-bytes")
    assert not records.add_waiter(entry, "W1", b"event-bytes")  # a replay
    assert not records.add_waiter(entry, "LEAD", b"x")
    assert [w["order"] for w in entry["waiters"]] == ["W1"]
    assert records.waiter_event(entry["waiters"][0]) == b"event-bytes"


def test_answered_orders_age_out_after_the_order_memory_instead_of_growing_forever() -> None:
    entry = records.new_entry("LEAD", "v1", now_ms=1_000)
    records.mark_answered(entry, ["W1", "W2"], memory_ms=5_000, now_ms=4_000)
    assert entry["answered"] == {"LEAD": 1_000, "W1": 4_000, "W2": 4_000}
    records.mark_answered(entry, ["R"], memory_ms=5_000, now_ms=8_000)  # LEAD is 7 s old: forgotten
    assert entry["answered"] == {"W1": 4_000, "W2": 4_000, "R": 8_000}
    assert not records.add_waiter(entry, "R", b"x") and records.add_waiter(entry, "LEAD", b"x")


def test_an_answered_list_written_before_times_counts_as_answered_now() -> None:
    legacy = {"state": "done", "answered": ["A", "B"]}
    records.mark_answered(legacy, ["C"], memory_ms=5_000, now_ms=10_000)
    assert legacy["answered"] == {"A": 10_000, "B": 10_000, "C": 10_000}
    records.mark_answered(legacy, [], memory_ms=5_000, now_ms=16_000)
    assert legacy["answered"] == {}


def test_first_hop_answers_a_new_order_for_a_recognised_image_and_drops_its_repeat() -> None:
    assert records.first_hop(None, "S", "v1", recognised=True) == "answer"
    known = records.remember_order(None, "S", "v1", answered=True)
    assert records.first_hop(known, "S", "v1", recognised=True) == "drop"  # the same order sent again


def test_first_hop_forwards_what_the_image_hop_has_seen_or_must_decide() -> None:
    assert records.first_hop(None, "S", "v1", recognised=False) == "forward"  # new or in-flight image
    forwarded = records.remember_order(None, "S", "v1", answered=False)
    # the image hop keeps this pair's dedupe: answering here could answer the order twice
    assert records.first_hop(forwarded, "S", "v1", recognised=True) == "forward"
    # the same order number with another image, or the same image under a newer model
    assert records.first_hop(forwarded, "OTHER", "v1", recognised=True) == "answer"
    assert records.first_hop(records.remember_order(None, "S", "v0", answered=True), "S", "v1", recognised=False) == "forward"


def test_remember_order_keeps_every_image_and_leaves_the_original_alone() -> None:
    first = records.remember_order(None, "S1", "v1", answered=False)
    both = records.remember_order(first, "S2", "v1", answered=True)
    assert set(first) == {"S1"} and set(both) == {"S1", "S2"} and both["S2"]["answered"] is True


def test_orders_last_seen_before_the_cutoff_are_forgotten() -> None:
    orders = {
        "OLD": records.remember_order(None, "S", "v1", answered=True, now_ms=1_000),
        "MIXED": records.remember_order(records.remember_order(None, "S", "v1", answered=True, now_ms=1_000),
                                        "T", "v1", answered=False, now_ms=9_000),
        "NEW": records.remember_order(None, "S", "v1", answered=True, now_ms=9_000),
        "UNSTAMPED": {"S": {"model_version": "v1", "answered": True}},
    }
    assert {order for order, known in orders.items() if records.last_seen_before(known, cutoff_ms=5_000)} == {"OLD"}
