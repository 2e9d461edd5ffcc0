"""The systems people use today, behind the same Reader interface as our engine.

RapidOCR (``rapidocr_onnxruntime``, PP-OCRv4 ONNX models inside the wheel) and Tesseract 5
(Debian ``tesseract-ocr``), each pinned to the thread count the benchmark gives.
"""
from __future__ import annotations

import csv
import io
import os
import subprocess

import cv2
import numpy as np


class RapidOcrReader:
    def __init__(self, threads: int) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        self.name = "RapidOCR 1.4.4 (PP-OCRv4)"

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        result, _ = self.engine(image)
        return [(text, np.asarray(box, np.float32)) for box, text, _ in (result or [])]

    def read_crops(self, crops: list[np.ndarray]) -> list[str]:
        texts = []
        for crop in crops:
            result, _ = self.engine(cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR), use_det=False, use_cls=False, use_rec=True)
            texts.append(result[0][0] if result else "")
        return texts


class TesseractReader:
    def __init__(self, threads: int) -> None:
        self.env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
        version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split()[1]
        self.name = f"Tesseract {version}"

    def _run(self, data: bytes, psm: int, tsv: bool) -> str:
        args = ["tesseract", "stdin", "stdout", "--psm", str(psm), "-l", "eng"] + (["tsv"] if tsv else [])
        return subprocess.run(args, input=data, capture_output=True, env=self.env, check=True).stdout.decode("utf-8", "replace")

    def read_page(self, data: bytes) -> list[tuple[str, np.ndarray]]:
        rows = csv.DictReader(io.StringIO(self._run(data, 4, True)), delimiter="\t", quoting=csv.QUOTE_NONE)
        lines: dict[tuple[str, str, str], list[dict[str, str]]] = {}
        for row in rows:
            if row.get("level") == "5" and (row.get("text") or "").strip():
                lines.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(row)
        out = []
        for words in lines.values():
            x0 = min(int(w["left"]) for w in words)
            y0 = min(int(w["top"]) for w in words)
            x1 = max(int(w["left"]) + int(w["width"]) for w in words)
            y1 = max(int(w["top"]) + int(w["height"]) for w in words)
            quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            out.append((" ".join(w["text"] for w in words), quad))
        return out

    def read_crops(self, crops: list[np.ndarray]) -> list[str]:
        texts = []
        for crop in crops:
            ok, png = cv2.imencode(".png", crop)
            texts.append(" ".join(self._run(png.tobytes(), 7, False).split()) if ok else "")
        return texts
