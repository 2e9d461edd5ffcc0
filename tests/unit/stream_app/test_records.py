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
