"""Training batches: every batch mixes real and synthetic lines, each real crop is used once
an epoch, and the batches are the same whether built here, in worker processes or threads."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.recognition.charset import Charset
from models.training.line_batches import LineBatches
from models.training.loader import JobBuilder
from models.training.receipts import GTLine, Receipt
from models.training.recognition_data import STORE_HEIGHT, LineSample, detected_samples, fits_line
from models.training.synthetic_lines import find_fonts


@pytest.fixture(scope="module")
def line_batches() -> LineBatches:
    fonts = find_fonts()[:4]
    assert fonts, "no fonts under /usr/share/fonts (fonts-dejavu-core is part of the base system)"
    rng = np.random.default_rng(3)
    real = [LineSample(rng.integers(0, 256, (STORE_HEIGHT, int(rng.integers(60, 400))), dtype=np.uint8),
                       f"ITEM {i} RM {i}.50") for i in range(50)]
    return LineBatches(real, Charset(), batch_size=8, synthetic=100, fonts=fonts, seed=9)


def test_each_batch_mixes_real_and_synthetic_and_each_real_crop_is_used_once(line_batches: LineBatches) -> None:
    jobs = line_batches.jobs(epoch=0)
    assert len(jobs) == line_batches.steps()
    assert all(job.real and job.synthetic for job in jobs)
    used = [i for job in jobs for i in job.real]
    assert sorted(used) == list(range(50))
    assert sum(job.synthetic for job in jobs) == 100
    assert line_batches.jobs(epoch=0) == jobs and line_batches.jobs(epoch=1) != jobs


def test_a_built_batch_holds_the_real_and_the_rendered_lines(line_batches: LineBatches) -> None:
    job = line_batches.jobs(epoch=0)[0]
    images, targets, texts, widths = line_batches.build(job)
    assert images.shape[0] == len(targets) == len(texts) == len(widths) == len(job.real) + job.synthetic
    assert images.shape[1] == 32 and images.shape[2] % 16 == 0 and widths.max() <= images.shape[2]
    assert texts[:len(job.real)] == [line_batches.real[i].text for i in job.real]
    assert [Charset().decode(t) for t in targets] == texts


@pytest.mark.parametrize("threads", [False, True])
def test_workers_build_the_same_batches_in_the_same_order(line_batches: LineBatches, threads: bool) -> None:
    jobs = line_batches.jobs(epoch=2)[:6]
    here = list(JobBuilder(line_batches.build, workers=0)(jobs))
    builder = JobBuilder(line_batches.build, workers=2, threads=threads)
    there = list(builder(jobs))
    again = list(builder(jobs[:3]))  # the same (persistent) workers, the next epoch's jobs
    assert len(here) == len(there) == 6 and len(again) == 3
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(here, again))
    for (a_images, a_targets, *_), (b_images, b_targets, *_) in zip(here, there):
        assert np.array_equal(a_images, b_images) and a_targets == b_targets


def test_width_jitter_squeezes_some_training_lines_by_the_range_given() -> None:
    import random

    from models.training.recognition_data import prepare

    sample = LineSample(np.full((STORE_HEIGHT, 600), 255, np.uint8), "TOTAL 12.50")
    plain = [prepare(sample, 32, 2048, random.Random(s), (1.0, 1.0)).shape[1] for s in range(60)]
    squeezed = [prepare(sample, 32, 2048, random.Random(s), (0.5, 0.5)).shape[1] for s in range(60)]
    halved = [s / p for p, s in zip(plain, squeezed) if s != p]
    assert 6 <= len(halved) <= 36  # about 30% of lines are jittered
    assert all(0.45 <= r <= 0.55 for r in halved)


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_a_detected_box_is_labelled_only_where_it_spans_the_annotated_lines_characters(tmp_path: Path) -> None:
    page = np.full((200, 400), 255, np.uint8)
    for row, (x0, x1) in enumerate(((20, 300), (20, 200))):
        cv2.rectangle(page, (x0, 30 + 60 * row), (x1, 50 + 60 * row), 0, -1)
    cv2.imwrite(str(tmp_path / "r.png"), page)
    lines = (GTLine(box(20, 30, 300, 50), "TOTAL 8.20"), GTLine(box(20, 90, 200, 110), "CASH"))
    receipt = Receipt("r", tmp_path / "r.png", lines, "ABC")
    loose = box(16, 28, 305, 53)  # a few pixels off: the same characters
    cut = box(60, 90, 200, 110)  # starts two heights into the line: its first letters are lost
    assert fits_line(loose, lines[0].quad) and not fits_line(cut, lines[1].quad)
    assert not fits_line(box(20, 40, 300, 60), lines[0].quad)  # half a line lower: another row
    samples = detected_samples([receipt], Charset(), lambda gray: [loose, cut])
    assert [s.text for s in samples] == ["TOTAL 8.20"]
    assert samples[0].image.shape[0] == STORE_HEIGHT
    # two boxes fitting one line (a split) give it no label: neither holds the whole text
    assert detected_samples([receipt], Charset(), lambda gray: [loose, loose + 2]) == []
