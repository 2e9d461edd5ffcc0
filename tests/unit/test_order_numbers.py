import pytest

from billstream_core.order_numbers import InvalidOrderNumber, new_order_number, validate_order_number


def test_generated_numbers_are_unique_and_sort_by_time() -> None:
    earlier = [new_order_number(now_ms=1_700_000_000_000) for _ in range(200)]
    later = new_order_number(now_ms=1_700_000_000_001)
    assert len(set(earlier)) == 200
    assert all(number < later for number in earlier)
    assert all(len(number) == 26 for number in earlier)


@pytest.mark.parametrize("good", ["ORD-1", "2026/11/22:0001", "a", "A" * 128])
def test_caller_numbers_are_accepted_when_valid(good: str) -> None:
    assert validate_order_number(good) == good


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "x" * 129, "semi;colon", "ünïcode"])
def test_caller_numbers_are_refused_when_invalid(bad: str) -> None:
    with pytest.raises(InvalidOrderNumber):
        validate_order_number(bad)
