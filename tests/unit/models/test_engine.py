"""The shipped weights: manifest checks, reading a rendered bill, ONNX parity."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from billstream_core.settings import LimitSettings
from models.detection.postprocess import BoxCalibration
from models.engine.predictor import EngineOptions, OcrEngine, serving_options
from models.engine.reread import RereadConfig
from models.intake import ImageRejected
from models.preprocess import crop_quad
from models.training.receipts import DATA_ROOT, load_receipts, read_val_fold
from models.weights_io import MANIFEST, WEIGHTS_DIR, WeightsError, file_sha256, read_manifest
from producers.samples import render_bill

BILL = ["GOLDEN MART SDN BHD", "NO 12 JALAN BESAR", "INVOICE NO: 10234", "DATE: 12/03/2018",
        "MILO 2 X 4.50 9.00", "BREAD 1 X 3.20 3.20", "TOTAL: 12.20", "CASH 20.00", "CHANGE 7.80", "THANK YOU"]


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.load(options=EngineOptions(threads=2))


def test_manifest_describes_every_shipped_file() -> None:
    manifest = read_manifest()
    for section in ("detector", "recognizer"):
        entry = manifest[section]
        path = WEIGHTS_DIR / entry["file"]
        assert file_sha256(path) == entry["sha256"]
        assert path.stat().st_size <= 25 * 1024 * 1024
        assert {"config", "input", "training", "metrics"} <= entry.keys()
    assert len(manifest["recognizer"]["charset"]) == 95


def test_engine_draws_boxes_with_the_manifests_calibration(engine: OcrEngine) -> None:
    fitted = BoxCalibration.from_dict(read_manifest()["detector"]["postprocess"]["calibration"])
    assert fitted != BoxCalibration() and engine.box_calibration == fitted


def test_greedy_decoding_rereads_with_its_own_entry(engine: OcrEngine) -> None:
    entry = read_manifest()["recognizer"]["reread"]
    greedy = OcrEngine.load(options=EngineOptions(threads=2, decoder="greedy"))
    assert engine.reread_config == RereadConfig.from_dict(entry)
    assert greedy.reread_config == RereadConfig.from_dict(entry["greedy"]) != engine.reread_config


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    target = copy / read_manifest()["recognizer"]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        OcrEngine.load(copy)


def test_tampered_weights_are_refused_on_the_onnx_path_too(tmp_path: Path) -> None:
    """The ONNX export is cached by model version; serving it still checks the weights it came from."""
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    target = copy / read_manifest()["detector"]["file"]
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="sha256"):
        OcrEngine.load(copy, EngineOptions(backend="onnx-int8"))


def test_a_cpu_worker_never_imports_torch() -> None:
    """torch costs a process 600+ MB; serving on ONNX Runtime needs none of it (the export,
    once per model version, runs in a child process)."""
    code = ("import sys\n"
            "from models.engine.predictor import OcrEngine, serving_options\n"
            "from inference_worker.handler import BillHandler\n"
            "from inference_worker.loop import InferenceWorker\n"
            "from producers.samples import render_bill\n"
            "engine = OcrEngine.load(options=serving_options('auto', 'cpu', 1, 'auto', 'off'))\n"
            "text = engine.read_image_bytes(render_bill(['TORCH FREE', 'TOTAL 1.00'])).text\n"
            "print(engine.options.backend, 'torch' in sys.modules, text)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-2000:]
    backend, torch_imported, text = done.stdout.strip().split(" ", 2)
    assert (backend, torch_imported) == ("onnx-int8", "False")
    assert "TOTAL" in text


def test_manifest_without_a_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["detector"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="detector"):
        OcrEngine.load(copy)
    assert MANIFEST.exists()


def test_shipped_weights_read_a_rendered_bill(engine: OcrEngine) -> None:
    result = engine.read_image_bytes(render_bill(BILL))
    texts = [line.text.upper() for line in result.lines]
    words = {w for t in texts for w in t.split()}
    expected = {w for line in BILL for w in line.split()}
    assert len(words & expected) >= 0.8 * len(expected), texts
    assert any("12.20" in t for t in texts) and any("TOTAL" in t for t in texts)
    # reading order: the header comes before the total, the total before the thanks
    order = " ".join(texts)
    assert order.index("MART") < order.index("TOTAL") < order.index("THANK")
    assert {"decode_ms", "detect_ms", "recognize_ms"} <= result.timings_ms.keys()
    assert all(0.0 <= line.confidence <= 1.0 for line in result.lines)


def test_several_pages_in_one_call_keep_their_own_lines(engine: OcrEngine) -> None:
    import cv2
    import numpy as np

    pages = [cv2.imdecode(np.frombuffer(render_bill(lines), np.uint8), cv2.IMREAD_GRAYSCALE)
             for lines in (["TOTAL 1.00"], ["CASH 5.00", "CHANGE 4.00"], [])]
    assert all(page is not None for page in pages)
    results = engine.read_pages(pages)  # type: ignore[arg-type]
    assert [len(r.lines) for r in results] == [1, 2, 0]
    assert "CHANGE" in results[1].text.upper()


def test_pages_detected_in_one_padded_batch_get_the_boxes_each_gets_alone() -> None:
    import cv2
    import numpy as np

    bills = (BILL, BILL[:3], BILL[4:] + BILL)  # three heights: the batch pads the short ones with paper
    pages = [np.asarray(cv2.imdecode(np.frombuffer(render_bill(lines), np.uint8), cv2.IMREAD_GRAYSCALE))
             for lines in bills]
    alone = OcrEngine.load(options=EngineOptions(backend="onnx", threads=2))
    batched = OcrEngine.load(options=EngineOptions(backend="onnx", threads=2, detect_batch=3))
    calls = 0
    network = batched.detector

    def counted(batch: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        return network(batch)

    batched.detector = counted  # type: ignore[assignment]
    together = batched.detect_pages(pages)
    assert calls == 1 and [len(lines) for lines in together] == [len(alone.detect(page)) for page in pages]
    for page, lines in zip(pages, together):
        for mine, its in zip(lines, alone.detect(page)):
            assert np.abs(mine.quad - its.quad).max() <= 1.0
    # read_pages detects the batch once; orientation and levelling reuse those boxes
    calls = 0
    results = batched.read_pages(pages)
    assert calls == 1 and [len(r.lines) for r in results] == [len(r.lines) for r in alone.read_pages(pages)]
    assert results[2].text == alone.read_pages(pages[2:])[0].text


def test_lines_decoded_beside_the_network_thread_read_the_same() -> None:
    import dataclasses
    import threading

    import cv2
    import numpy as np

    page = np.asarray(cv2.imdecode(np.frombuffer(render_bill(BILL), np.uint8), cv2.IMREAD_GRAYSCALE))
    options = EngineOptions(backend="onnx", threads=2, line_batch=3)  # several network batches
    engine = OcrEngine.load(options=options)
    crops = [crop_quad(page, line.quad, engine.crop_margin) for line in engine.detect(page)]
    plain = engine.recognize(crops)
    callers = set()
    network = engine.recognizer

    def recorded(batch: np.ndarray) -> np.ndarray:
        callers.add(threading.current_thread().name)
        return network(batch)

    engine.recognizer = recorded  # type: ignore[assignment]
    engine.options = dataclasses.replace(options, decode_beside_network=True)
    assert len(crops) > 3 and engine.recognize(crops) == plain
    assert callers and all(name.startswith("recognizer-network") for name in callers)
    assert serving_options("torch", "cuda", None, "auto").decode_beside_network
    assert not serving_options("onnx-int8", "cpu", 1, "auto").decode_beside_network


def test_a_gpu_worker_detects_a_whole_micro_batch_in_one_call_and_a_cpu_worker_page_by_page() -> None:
    from billstream_core.settings import WorkerSettings

    assert serving_options("torch", "cuda", None, "greedy").detect_batch == WorkerSettings().max_batch
    assert serving_options("onnx-int8", "cpu", 1, "auto").detect_batch == 1


def test_bad_bytes_are_typed_rejections(engine: OcrEngine) -> None:
    with pytest.raises(ImageRejected) as caught:
        engine.read_image_bytes(b"GIF89a....", LimitSettings())
    assert caught.value.code == "UNSUPPORTED_FORMAT"


def test_onnx_path_reads_the_validation_fold_like_torch(engine: OcrEngine) -> None:
    fold = read_val_fold()
    receipts = [r for r in load_receipts(DATA_ROOT / "receipts-dev") if r.name in fold]
    assert len(receipts) == len(fold), "the validation receipts must be readable from ../shared/data"
    onnx = OcrEngine.load(options=EngineOptions(backend="onnx", threads=2))
    differing = total = 0
    for receipt in receipts:
        data = receipt.image_path.read_bytes()
        a = [line.text for line in engine.read_image_bytes(data).lines]
        b = [line.text for line in onnx.read_image_bytes(data).lines]
        assert len(a) == len(b), receipt.name
        total += len(a)
        differing += sum(x != y for x, y in zip(a, b))
    assert differing <= 0.002 * total, f"{differing} of {total} lines differ"
