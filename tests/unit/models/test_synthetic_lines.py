"""Synthetic recognizer lines: shaped like the stored real crops, reproducible, in the charset."""
from __future__ import annotations

import numpy as np
import pytest

from models.recognition.charset import Charset
from models.training.recognition_data import STORE_HEIGHT
from models.training.synthetic_lines import find_fonts, synthetic_samples

TRANSCRIPTS = ["TOTAL RM 12.50", "THANK YOU PLEASE COME AGAIN", "GST REG NO: 001234567890"]


@pytest.fixture(scope="module")
def fonts():
    found = find_fonts()
    assert found, "no fonts under /usr/share/fonts (fonts-dejavu-core is part of the base system)"
    return found[:6]


def test_samples_are_stored_crops_with_charset_text(fonts) -> None:
    charset = Charset()
    samples = synthetic_samples(60, TRANSCRIPTS, charset, seed=5, fonts=fonts)
    assert len(samples) == 60
    for sample in samples:
        assert sample.image.dtype == np.uint8 and sample.image.shape[0] == STORE_HEIGHT
        assert sample.text and sample.text == charset.normalize(sample.text)
        # dark ink on a light ground (a light ground, and ink well below it: the faded
        # thermal prints of thin fonts, such as DejaVu ExtraLight where it is installed,
        # keep no pixel under 100), and wider for longer text
        ground = float(sample.image.mean())
        assert ground > 120 and ground - float(sample.image.min()) > 60
    long = [s for s in samples if len(s.text) >= 20]
    short = [s for s in samples if len(s.text) <= 4]
    assert long and short
    assert min(s.image.shape[1] for s in long) > max(s.image.shape[1] for s in short)


def test_same_seed_same_samples_other_seed_other_samples(fonts) -> None:
    charset = Charset()
    a = synthetic_samples(10, TRANSCRIPTS, charset, seed=11, fonts=fonts)
    b = synthetic_samples(10, TRANSCRIPTS, charset, seed=11, fonts=fonts)
    c = synthetic_samples(10, TRANSCRIPTS, charset, seed=12, fonts=fonts)
    assert [s.text for s in a] == [s.text for s in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert [s.text for s in a] != [s.text for s in c]
