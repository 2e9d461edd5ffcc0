"""Which receipts train, validate, or are held out for choosing decoding settings."""
from __future__ import annotations

from pathlib import Path

from models.training.receipts import Receipt, held_out_receipts, split_train_val


def _receipt(name: str, company: str) -> Receipt:
    return Receipt(name, Path(f"{name}.jpg"), (), company)


def test_a_fold_vendors_other_receipts_are_held_out_and_nowhere_else() -> None:
    receipts = [_receipt("a1", "ALPHA SDN BHD"), _receipt("a2", "Alpha Sdn. Bhd."), _receipt("b1", "BETA"),
                _receipt("c1", "GAMMA"), _receipt("c2", "GAMMA")]
    train, val = split_train_val(receipts, {"a1", "c1"})
    assert [r.name for r in train] == ["b1"] and [r.name for r in val] == ["a1", "c1"]
    assert [r.name for r in held_out_receipts(receipts, {"a1", "c1"})] == ["a2", "c2"]
    assert held_out_receipts(receipts, set()) == []  # no fold: everything trains
