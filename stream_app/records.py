"""Pure helpers of the stream app: cache keys, cached copies, what may be cached.

No Faust here, so the rules are unit-testable on their own.
"""
from __future__ import annotations

import base64
from typing import Any

from billstream_core.clock import now_ms as clock_ms

# failures that say nothing about the image itself: never answered from cache
TRANSIENT_CODES = frozenset({"STORAGE_UNAVAILABLE", "INTERNAL"})


def cacheable(result: dict[str, Any]) -> bool:
    return result["status"] == "RECOGNIZED" or result.get("error_code") not in TRANSIENT_CODES


def cached_copy(result: dict[str, Any], order_number: str, submitted_at_ms: int | None) -> dict[str, Any]:
    """The recognised image's result, answered for another order that sent the same bytes."""
    return result | {"order_number": order_number, "cached": True, "submitted_at_ms": submitted_at_ms,
                     "completed_at_ms": clock_ms()}


def new_entry(lead: str, model_version: str, *, now_ms: int | None = None) -> dict[str, Any]:
    """An image's index entry. ``answered`` maps each order the image hop has led, queued or
    answered to when (epoch ms): its dedupe of an order number sent again."""
    return {"state": "inflight", "model_version": model_version, "lead": lead, "waiters": [],
            "answered": {lead: clock_ms() if now_ms is None else now_ms}, "result": None}


def answered_orders(entry: dict[str, Any], now_ms: int | None = None) -> dict[str, int]:
    """The entry's answered orders as order → epoch ms; a list (entries written before they
    carried times) counts as answered now, so it ages out like the rest."""
    answered = entry["answered"]
    if isinstance(answered, dict):
        return answered
    at = clock_ms() if now_ms is None else now_ms
    return dict.fromkeys(answered, at)


def mark_answered(entry: dict[str, Any], orders: list[str], *, memory_ms: int, now_ms: int | None = None) -> None:
    """Add ``orders`` and drop those answered longer than ``memory_ms`` ago: the first hop
    forgets an order number as long after (the orders changelog's retention), so a hot
    image's entry holds one window of orders, not every order that ever sent it."""
    now = clock_ms() if now_ms is None else now_ms
    kept = {order: at for order, at in answered_orders(entry, now).items() if at >= now - memory_ms}
    entry["answered"] = kept | dict.fromkeys(orders, now)


def add_waiter(entry: dict[str, Any], order_number: str, event: bytes) -> bool:
    """Remember an order waiting on this image's inference; False when already known (replay)."""
    if order_number in entry["answered"] or any(w["order"] == order_number for w in entry["waiters"]):
        return False
    entry["waiters"].append({"order": order_number, "event": base64.b64encode(event).decode()})
    return True


def waiter_event(waiter: dict[str, str]) -> bytes:
    return base64.b64decode(waiter["event"])


def first_hop(known: dict[str, Any] | None, sha256: str, model_version: str, recognised: bool) -> str:
    """What the first hop does with a submission: ``"answer"`` it from cache, ``"forward"`` it
    to the image-keyed hop, or ``"drop"`` it as a repeat of an order already answered.

    ``known`` is what this hop remembers of the order number: the images it came with (None:
    never seen). An (order, image) pair the image hop has seen goes back there whatever the
    cache holds, since that hop keeps the pair's dedupe (answered orders, waiters); answering
    it here could give the order a second result.
    """
    seen = (known or {}).get(sha256)
    if seen is not None and seen["model_version"] == model_version:
        return "drop" if seen["answered"] else "forward"
    return "answer" if recognised else "forward"


def remember_order(known: dict[str, Any] | None, sha256: str, model_version: str, *, answered: bool,
                   now_ms: int | None = None) -> dict[str, Any]:
    """``known`` with this image added (a new dict: the original may be the committed state)."""
    at = clock_ms() if now_ms is None else now_ms
    return dict(known or {}) | {sha256: {"model_version": model_version, "answered": answered, "at": at}}


def last_seen_before(known: dict[str, Any], cutoff_ms: int) -> bool:
    """Whether an order was last seen before ``cutoff_ms``: the router then forgets it, as
    the orders changelog's retention does on the broker, so a long-running router holds what
    a restart restores. Entries written before they carried a time are kept."""
    return all(isinstance(seen, dict) and seen.get("at", cutoff_ms) < cutoff_ms for seen in known.values())
