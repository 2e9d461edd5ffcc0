"""`billstream ocr IMAGE|DIR [--json] [--jsonl OUT]` and `billstream eval --split DIR [--fold val]`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from billstream_cli.formatting import format_fields
from billstream_core.errors import BillstreamError
from billstream_core.media import IMAGE_SUFFIXES, list_images
from billstream_core.settings import Settings
from models.manifest import BACKENDS, DECODERS


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ocr = sub.add_parser("ocr", help="recognise bill images with the local engine (no Kafka, no MinIO)")
    ocr.add_argument("path", type=Path, help="an image, or a directory of images")
    ocr.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    ocr.add_argument("--jsonl", type=Path, metavar="OUT", help="write one JSON object per image to OUT")
    ocr.add_argument("--threads", type=int, default=None, help="CPU threads")
    ocr.add_argument("--backend", choices=BACKENDS, default="onnx-int8")
    ocr.add_argument("--decoder", choices=DECODERS, default="auto", help="auto: beam search with the shipped LM")
    ocr.set_defaults(run=run_ocr)

    ev = sub.add_parser("eval", help="word P/R/F1, page CER, line accuracy and seconds on receipts with GT")
    ev.add_argument("--split", type=Path, required=True, help="directory of NAME.jpg + NAME.txt receipts")
    ev.add_argument("--fold", choices=["val", "all"], default="all", help="val: only the committed validation fold")
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--backend", choices=BACKENDS, default="onnx-int8")
    ev.add_argument("--decoder", choices=DECODERS, default="auto", help="auto: beam search with the shipped LM")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(run=run_eval)


def _images(path: Path) -> list[Path]:
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise BillstreamError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        return images
    if path.exists():
        return [path]
    raise BillstreamError(f"{path} does not exist")


def run_ocr(settings: Settings, args: argparse.Namespace) -> int:
    from models.bill import merge_pages
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.intake import ImageRejected

    engine = OcrEngine.load(options=EngineOptions(backend=args.backend, threads=args.threads, decoder=args.decoder))
    out = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None
    failed = 0
    try:
        for image in _images(args.path):
            started = time.perf_counter()
            record: dict[str, Any] = {"image": image.name}
            try:
                bill = merge_pages(engine.read_document_bytes(image.read_bytes(), settings.limits))
                record |= {"lines": [line | {"confidence": round(line["confidence"], 4)} for line in bill.lines],
                           "key_fields": {item["name"]: {k: v for k, v in item.items() if k != "name"}
                                          for item in bill.key_fields},
                           "page_rotations": bill.rotations, "text_source": bill.text_source,
                           "warnings": bill.warnings}
            except ImageRejected as exc:
                failed += 1
                record |= {"error_code": exc.code, "error": str(exc), "lines": []}
            except OSError as exc:
                failed += 1
                record |= {"error_code": "UNREADABLE_FILE", "error": f"cannot read {image}: {exc.strerror or exc}",
                           "lines": []}
            record["seconds"] = round(time.perf_counter() - started, 4)
            if out:
                out.write(json.dumps(record) + "\n")
            if args.json:
                print(json.dumps(record), flush=True)
            elif not out:
                print(f"== {image.name} ({record['seconds']:.2f}s)")
                print(record.get("error") or "\n".join(line["text"] for line in record["lines"]))
                if record.get("key_fields"):
                    print(format_fields({k: v["text"] for k, v in record["key_fields"].items()}))
    finally:
        if out:
            out.close()
    return 1 if failed else 0


def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    from models.engine.predictor import EngineOptions, OcrEngine
    from models.evaluation import EngineReader, evaluate
    from models.training.receipts import load_receipts, read_val_fold

    receipts = load_receipts(args.split)
    if args.fold == "val":
        fold = read_val_fold()
        receipts = [r for r in receipts if r.name in fold]
    if not receipts:
        raise BillstreamError(f"no receipts (NAME.jpg + NAME.txt) in {args.split} for fold {args.fold}")
    engine = OcrEngine.load(options=EngineOptions(backend=args.backend, threads=args.threads, decoder=args.decoder))
    progress = None if args.json else (lambda n, total: print(f"\r{n}/{total} pages", end="", file=sys.stderr))
    metrics = evaluate(EngineReader(engine), receipts, crop_margin=engine.crop_margin, progress=progress)
    if args.json:
        print(json.dumps(metrics | {"model_version": engine.version}))
    else:
        print(file=sys.stderr)
        print(f"model {engine.name} {engine.version} on {len(receipts)} receipts from {args.split} (fold {args.fold})")
        for key, value in metrics.items():
            print(f"  {key:<20} {value:.4f}" if isinstance(value, float) else f"  {key:<20} {value}")
    return 0
