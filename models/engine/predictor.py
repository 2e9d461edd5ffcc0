"""The OCR engine: decoded pages in, lines (text, confidence, quad) in reading order out.

One object per worker process: it loads the weights named by the manifest (checking their
sha256) and batches line crops across all pages of a call by width. Timings per stage come
back with every page. On the ONNX backends it never imports torch: a CPU worker is spared
its 600+ MB (the export, made once per model version, runs in a child process).
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from billstream_core.settings import LimitSettings
from models.detection.config import STRIDE_MULTIPLE, DetectorConfig
from models.detection.postprocess import BoxCalibration, DetectedLine, boxes_from_map
from models.documents import decode_document
from models.engine.cpu_slot import CpuSlot, default_slot_path
from models.engine.line_floor import floor_for, readable
from models.engine.orientation import upright
from models.engine.reread import RereadConfig, reread
from models.engine.runners import OnnxRunner, Runner
from models.engine.skew import level, unlevel
from models.export import onnx_paths
from models.fields.extractor import KeyField, KeyFieldExtractor
from models.intake import decode_image
from models.manifest import (
    BACKENDS,
    DECODERS,
    MODEL_NAME,
    WEIGHTS_DIR,
    WeightsError,
    model_version,
    resolve_serving,
    serving_profile,
)
from models.pdf_text import PageText
from models.preprocess import (
    PreprocessConfig,
    batch_by_width,
    crop_quad,
    pad_to_multiple,
    prepare_page,
    resize_to_height,
)
from models.recognition.char_lm import CharNgramLM
from models.recognition.charset import Charset
from models.recognition.ctc import BeamConfig, beam_decode, compiled_search, greedy_decode
from models.recognition.lexicon import WordCheck
from models.spec import check_weight_files, load_field_extractor, load_language_model, load_word_check, read_spec


@dataclass(frozen=True)
class RecognizedLine:
    text: str
    confidence: float
    quad: np.ndarray  # 4x2, page pixels, clockwise from top-left

    def box(self) -> list[float]:
        return [round(float(v), 1) for v in self.quad.reshape(-1)]


@dataclass
class PageResult:
    lines: list[RecognizedLine]
    timings_ms: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    fields: dict[str, KeyField] = field(default_factory=dict)  # company, date, address, total where found
    rotation: int = 0  # degrees the page was turned clockwise to read it; boxes are on the turned page
    source: str = "ocr"  # or pdf-text: the lines are the PDF's own text
    skew: float = 0.0  # degrees the page was then turned clockwise to level its lines
    level_matrix: np.ndarray | None = None  # 2x3, the page as it came → the levelled page it was read on
    read_size: tuple[int, int] = (0, 0)  # (width, height) of the page as read: the key fields' frame

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines if line.text)


@dataclass(frozen=True)
class EngineOptions:
    backend: str = "torch"
    device: str = "cpu"
    half: bool = False  # fp16 on CUDA
    threads: int | None = None
    preprocess: PreprocessConfig = PreprocessConfig()
    detect_threshold: float = 0.3
    detect_min_score: float = 0.5
    line_batch: int = 64
    detect_batch: int = 1  # pages per detector call, padded to one tensor (a GPU wants many; a CPU gains nothing)
    decode_beside_network: bool = False  # recognizer batches run on their own thread while lines are decoded
    decoder: str = "auto"  # auto: beam search with the LM when the manifest ships one, else greedy
    reread: bool = True  # read doubtful lines again, stretched, as the manifest's reread entry says
    word_check: bool = True  # beam only: out-of-lexicon words checked against the lexicon (models.recognition.lexicon)
    compiled_beam: bool = True  # the numba beam search; False: the Python reference (same readings, ~3x the time)
    line_floor: bool = True  # drop lines read below the manifest's confidence floor (models.engine.line_floor)
    orientation: bool = True  # turn pages upright (quarter turns) before reading them
    level: bool = True  # turn a page whose lines lean a few degrees level (see models.engine.skew)
    cpu_slot: Path | None = None  # a lock file: network calls on the CPU take turns with other processes holding it
    memory_arena: bool = True  # ONNX Runtime's CPU arena: ~15% faster, ~400 MB more once warm


GPU_DETECT_BATCH = 16  # a worker's largest micro-batch of bills


def cuda_available() -> bool:
    """Whether torch sees a GPU, asking torch only where an NVIDIA device node exists."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    import torch

    return bool(torch.cuda.is_available())


def onnx_export(weights_dir: Path, manifest: dict[str, Any] | None = None) -> dict[str, Path]:
    """The ONNX files of these weights (``manifest``: theirs, when already read), exported
    first (in a child process: the export needs torch, serving does not) when the cache lacks them."""
    paths = onnx_paths(manifest if manifest is not None else read_spec(weights_dir).manifest)
    if not all(path.exists() for path in paths.values()):
        result = subprocess.run([sys.executable, "-m", "models.export", "--weights", str(weights_dir)],
                                capture_output=True, text=True)
        if result.returncode != 0 or not all(path.exists() for path in paths.values()):
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise WeightsError(f"exporting the weights to ONNX failed: {' | '.join(tail)}")
    return paths


def serving_options(backend: str = "auto", device: str = "auto", threads: int | None = None,
                    decoder: str = "auto", cpu_slot: str = "off", memory_arena: bool = True) -> EngineOptions:
    """What a worker runs: the GPU through torch when there is one, ONNX Runtime int8 on CPU;
    ``cpu_slot``: ``auto`` takes turns with the other workers on this set of cores (see
    :mod:`models.engine.cpu_slot`), ``off`` never waits, anything else is a lock file's path."""
    cuda = cuda_available() if device == "auto" else False
    backend, device, _ = resolve_serving(backend, device, "auto", {}, cuda_available=cuda)
    if backend != "torch" and device != "cpu":
        raise WeightsError(f"backend {backend} runs on the CPU; use backend torch for device {device}")
    slot = None
    if device == "cpu" and cpu_slot != "off":
        slot = default_slot_path() if cpu_slot == "auto" else Path(cpu_slot)
    cuda = device.startswith("cuda")
    return EngineOptions(backend=backend, device=device, threads=threads, decoder=decoder, half=cuda,
                         detect_batch=GPU_DETECT_BATCH if cuda else 1, decode_beside_network=cuda,
                         cpu_slot=slot, memory_arena=memory_arena)


class OcrEngine:
    def __init__(self, detector: Runner, detector_config: DetectorConfig, recognizer: Runner,
                 charset: Charset, *, version: str, crop_margin: float = 0.08, max_line_width: int = 1024,
                 options: EngineOptions = EngineOptions(),
                 language_model: tuple[CharNgramLM, BeamConfig] | None = None,
                 box_calibration: BoxCalibration = BoxCalibration(),
                 reread_config: RereadConfig = RereadConfig(),
                 word_check: WordCheck | None = None,
                 fields: KeyFieldExtractor | None = None, line_floor: float = 0.0) -> None:
        self.detector = detector
        self.detector_config = detector_config
        self.recognizer = recognizer
        self.charset = charset
        self.version = version
        self.name = MODEL_NAME
        self.crop_margin = crop_margin
        self.max_line_width = max_line_width
        self.options = options
        self.box_calibration = box_calibration
        self.join_pieces = True  # join a row's overlapping boxes (off only to fit the calibration)
        self.fields = fields or KeyFieldExtractor(None)
        self.reread_config = reread_config if options.reread else RereadConfig()
        self.line_floor = line_floor if options.line_floor else 0.0
        self._network: ThreadPoolExecutor | None = None
        if options.decoder not in DECODERS:
            raise WeightsError(f"unknown decoder {options.decoder!r}; one of {', '.join(DECODERS)}")
        if options.decoder == "beam" and language_model is None:
            raise WeightsError("decoder 'beam' needs a language model in the manifest")
        self.language_model = language_model if options.decoder != "greedy" else None
        if self.language_model is not None and options.compiled_beam and (search := compiled_search()) is not None:
            search.prepare(self.language_model[0], charset.chars)  # compiled now, not at the first bill
        self.word_check = word_check if self.language_model is not None and options.word_check else None

    @classmethod
    def load(cls, weights_dir: Path = WEIGHTS_DIR, options: EngineOptions = EngineOptions()) -> OcrEngine:
        """Build both models from the manifest and load their checked weights (no network)."""
        if options.backend not in BACKENDS:
            raise WeightsError(f"unknown backend {options.backend!r}; one of {', '.join(BACKENDS)}")
        spec = read_spec(weights_dir)
        language_model = load_language_model(spec.manifest, weights_dir) if options.decoder != "greedy" else None
        word_check = load_word_check(spec.manifest, spec.charset, weights_dir) \
            if language_model is not None and options.word_check else None
        detector: Runner
        recognizer: Runner
        slot = CpuSlot(options.cpu_slot) if options.cpu_slot is not None and options.device == "cpu" else None
        if options.backend == "torch":
            import torch

            from models.engine.torch_runner import TorchRunner
            from models.networks import load_networks

            if options.threads:
                torch.set_num_threads(options.threads)
            networks = load_networks(weights_dir)
            detector = TorchRunner(networks.detector, options.device, options.half, slot)
            recognizer = TorchRunner(networks.recognizer, options.device, options.half, slot)
        else:
            check_weight_files(spec.manifest, weights_dir)
            paths = onnx_export(weights_dir, spec.manifest)
            detector = OnnxRunner(paths["detector"], options.threads, slot, memory_arena=options.memory_arena)
            recognizer = OnnxRunner(paths["recognizer_int8" if options.backend == "onnx-int8" else "recognizer"],
                                    options.threads, slot, memory_arena=options.memory_arena)
        return cls(detector, spec.detector_config, recognizer, spec.charset,
                   version=model_version(spec.manifest, serving_profile(
                       options.backend, "beam" if language_model is not None else "greedy",
                       half=options.half and options.backend == "torch" and options.device.startswith("cuda"),
                       reread=options.reread, orientation=options.orientation, level=options.level,
                       word_check=options.word_check or language_model is None, line_floor=options.line_floor)),
                   crop_margin=spec.recognizer_input.get("crop_margin", 0.08),
                   max_line_width=spec.recognizer_input.get("max_width", 1024), options=options,
                   language_model=language_model,
                   box_calibration=BoxCalibration.from_dict(
                       spec.manifest["detector"].get("postprocess", {}).get("calibration")),
                   reread_config=RereadConfig.from_dict(spec.manifest["recognizer"].get("reread"),
                                                       decoder="beam" if language_model is not None else "greedy"),
                   word_check=word_check, fields=load_field_extractor(spec.manifest, weights_dir),
                   line_floor=floor_for(spec.manifest["recognizer"].get("line_floor"),
                                        "beam" if language_model is not None else "greedy"))

    # -- stages ---------------------------------------------------------------------------

    def detect(self, page: np.ndarray) -> list[DetectedLine]:
        return self.detect_pages([page])[0]

    def detect_pages(self, pages: list[np.ndarray]) -> list[list[DetectedLine]]:
        """Lines of each page, ``options.detect_batch`` pages to a detector call: each page is
        scaled to the detector's width and the batch padded with paper to its tallest page,
        so a GPU runs one tensor instead of many small ones."""
        for page in pages:
            if page.ndim != 2 or page.dtype != np.uint8:
                raise ValueError(f"detect wants an 8-bit grayscale page, got {page.dtype} {page.shape}")
        width = self.detector_config.page_width
        out: list[list[DetectedLine]] = []
        step = max(1, self.options.detect_batch)
        for start in range(0, len(pages), step):
            chunk = pages[start:start + step]
            scales = [page.shape[1] / width for page in chunk]
            resized = [cv2.resize(page, (width, max(16, round(page.shape[0] / scale))),
                                  interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR)
                       for page, scale in zip(chunk, scales)]
            tallest = pad_to_multiple(max(resized, key=len), STRIDE_MULTIPLE).shape
            batch = np.full((len(chunk), 1, *tallest), 1.0, np.float32)
            for i, image in enumerate(resized):
                batch[i, 0, :image.shape[0], :image.shape[1]] = image.astype(np.float32) / 255.0
            logits = self.detector(batch)
            for i, (page, image, scale) in enumerate(zip(chunk, resized, scales)):
                prob = 1.0 / (1.0 + np.exp(-logits[i, 0, :image.shape[0], :width]))
                out.append(boxes_from_map(prob, scale=scale, threshold=self.options.detect_threshold,
                                          min_score=self.options.detect_min_score, page_shape=page.shape,
                                          calibration=self.box_calibration, join=self.join_pieces))
        return out

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence for each line image (any height; resized to 32 px here)."""
        lines = [resize_to_height(crop, 32, max_width=self.max_line_width) for crop in crops]
        return reread(lines, self.recognize_resized(lines), self.recognize_resized, self.reread_config,
                      self.max_line_width)

    def recognize_resized(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """One reading per line already resized to the input height (no reread). With
        ``decode_beside_network`` the network's batches are queued on one thread of their own
        and each is decoded here as it comes back, so a GPU is not left idle while the CPU
        runs the beam search (the network call releases the GIL)."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        groups = list(batch_by_width(lines, max_batch=self.options.line_batch))

        def network(array: np.ndarray) -> np.ndarray:
            return self.recognizer((array.astype(np.float32) / 255.0)[:, None])

        if self.options.decode_beside_network and len(groups) > 1:
            queued = [self._network_thread().submit(network, array) for _, array in groups]
            outputs: Iterator[np.ndarray] = (future.result() for future in queued)
        else:
            outputs = (network(array) for _, array in groups)
        for (indices, _), log_probs in zip(groups, outputs):
            widths = np.array([lines[i].shape[1] for i in indices])
            lengths = np.ceil(widths / 4).astype(int)
            if self.language_model is not None:
                decoded = beam_decode(log_probs, self.charset, *self.language_model, lengths=lengths,
                                      compiled=self.options.compiled_beam)
                if self.word_check is not None:
                    decoded = [(self.word_check.correct(text, log_probs[:length, row]), confidence)
                               for row, ((text, confidence), length) in enumerate(zip(decoded, lengths))]
            else:
                decoded = greedy_decode(log_probs, self.charset, lengths)
            for i, item in zip(indices, decoded):
                results[i] = item
        return results

    def _network_thread(self) -> ThreadPoolExecutor:
        if self._network is None:
            self._network = ThreadPoolExecutor(1, thread_name_prefix="recognizer-network")
        return self._network

    # -- whole pages ----------------------------------------------------------------------

    def read_pages(self, pages: list[np.ndarray],
                   text_layers: list[PageText | None] | None = None) -> list[PageResult]:
        """OCR a batch of decoded pages (grayscale or BGR uint8); line crops of all pages
        are recognised together, batched by width. A page with a text layer (a born-digital
        PDF's own lines) is not read: its lines are taken as they are, with confidence 1."""
        if text_layers is not None and len(text_layers) != len(pages):
            raise ValueError(f"{len(text_layers)} text layers for {len(pages)} pages")
        layers = text_layers or [None] * len(pages)
        prepared, detections, timings, rotations, levels = [], [], [], [], []
        t0 = time.perf_counter()
        grays = [page if layer is not None else prepare_page(page, self.options.preprocess)
                 for page, layer in zip(pages, layers)]
        t1 = time.perf_counter()
        to_read = [i for i, layer in enumerate(layers) if layer is None]
        first = dict(zip(to_read, self.detect_pages([grays[i] for i in to_read]) if to_read else []))
        t2 = time.perf_counter()
        shared = {"preprocess_ms": (t1 - t0) * 1000 / len(pages), "detect_ms": (t2 - t1) * 1000 / max(len(to_read), 1)}
        for index, layer in enumerate(layers):
            t1 = time.perf_counter()
            gray = grays[index]
            found: list[DetectedLine] = first.get(index, [])
            degrees = 0

            def detect(image: np.ndarray, page: np.ndarray = gray, lines: list[DetectedLine] = found
                       ) -> list[DetectedLine]:
                return lines if image is page else self.detect(image)  # the page as it came: detected above

            if layer is None and self.options.orientation:
                degrees, gray, found = upright(gray, detect, self.recognize_resized, self.crop_margin)
            levelled = None
            if layer is None and self.options.level:
                levelled = level(gray, found, self.detect)
                gray, found = levelled.page, levelled.lines
            detections.append(found)
            prepared.append(gray)
            rotations.append(degrees)
            levels.append(levelled)
            timings.append({"preprocess_ms": shared["preprocess_ms"],
                            "detect_ms": (time.perf_counter() - t1) * 1000 + (shared["detect_ms"] if layer is None else 0.0)})
        t0 = time.perf_counter()
        crops = [crop_quad(gray, line.quad, self.crop_margin)
                 for gray, found in zip(prepared, detections) for line in found]
        texts = self.recognize(crops) if crops else []
        per_line_ms = (time.perf_counter() - t0) * 1000 / max(len(crops), 1)
        results, cursor = [], 0
        for gray, found, timing, degrees, levelled, layer in zip(prepared, detections, timings, rotations, levels, layers):
            if layer is not None:
                degrees = layer.turned
                lines = [RecognizedLine(line.text, 1.0, line.quad) for line in layer.lines]
            else:
                lines = [RecognizedLine(text, confidence, line.quad) for line, text, confidence
                         in readable(found, texts[cursor:cursor + len(found)], self.line_floor)]
            cursor += len(found)
            timing["recognize_ms"] = per_line_ms * len(found)
            t0 = time.perf_counter()
            fields = self.fields.extract([(line.text, line.quad) for line in lines], (gray.shape[1], gray.shape[0]))
            timing["fields_ms"] = (time.perf_counter() - t0) * 1000
            warnings = [f"page turned {degrees} degrees clockwise to read it upright"] if degrees else []
            skew = 0.0
            if levelled is not None and levelled.matrix is not None:  # boxes back onto the page as it came
                skew = round(levelled.angle, 2)
                lines, fields = _unlevelled(lines, fields, levelled.matrix)
                warnings.append(f"page read turned {skew:.1f} degrees clockwise to level its lines; "
                                "boxes are on the page as it came")
            results.append(PageResult(lines, {k: round(v, 2) for k, v in timing.items()}, warnings, fields, degrees,
                                      "ocr" if layer is None else "pdf-text", skew,
                                      levelled.matrix if levelled is not None else None,
                                      (gray.shape[1], gray.shape[0])))
        return results

    def read_document_bytes(self, data: bytes, limits: LimitSettings = LimitSettings()) -> list[PageResult]:
        """An image (one page) or a PDF (its pages, within the limits), each page read."""
        t0 = time.perf_counter()
        document = decode_document(data, limits)
        decode_ms = (time.perf_counter() - t0) * 1000 / len(document.pages)
        results = self.read_pages([page.gray for page in document.pages], document.text_layers or None)
        for result, page in zip(results, document.pages):
            result.timings_ms = {"decode_ms": round(decode_ms, 2), **result.timings_ms}
            result.warnings[:0] = page.warnings
        return results

    def read_image_bytes(self, data: bytes, limits: LimitSettings = LimitSettings()) -> PageResult:
        """Decode (with the intake's limits and checks) and OCR one image."""
        t0 = time.perf_counter()
        decoded = decode_image(data, limits)
        decode_ms = (time.perf_counter() - t0) * 1000
        result = self.read_pages([decoded.gray])[0]
        result.timings_ms = {"decode_ms": round(decode_ms, 2), **result.timings_ms}
        result.warnings.extend(decoded.warnings)
        return result


def _unlevelled(lines: list[RecognizedLine], fields: dict[str, KeyField], matrix: np.ndarray
                ) -> tuple[list[RecognizedLine], dict[str, KeyField]]:
    """Lines and field boxes read on a levelled page, mapped back onto the page as it came."""
    back = [RecognizedLine(line.text, line.confidence, unlevel(line.quad, matrix)) for line in lines]
    moved = {name: dataclasses.replace(found, boxes=tuple(tuple(back[i].box()) for i in found.lines))
             for name, found in fields.items()}
    return back, moved
