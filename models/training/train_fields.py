"""Train the key-field line classifier on the engine's own reading of the training receipts.

    python -m models.training.train_fields [--write | --write-extension] [--weights-dir DIR]

1. The engine as a CPU worker serves it (onnx-int8, beam) reads every receipt once; the
   lines are cached under ``~/.cache/billstream/fields/`` by model version.
2. Each recognised line is labelled company, address or other: matched to a ground-truth
   line by box overlap, that line's text is looked up in the receipt's key-field file.
3. A LightGBM classifier is trained on the training receipts (no fold vendor among them);
   the fold only picks the number of boosting rounds, by its multi-class log loss.
4. The table compares rules alone with the learned seller and address on the fold, in the
   SROIE task-3 measure, with the engine's own OCR in the loop. ``--write`` ships the models'
   text (``models/weights/fields-*.txt``) and their manifest entry; ``--write-extension``
   stores only the block extension (chosen by cross-validation over the training vendors)
   beside the shipped models. ``--weights-dir`` reads and writes a candidate's weights instead
   (a new detector or recognizer changes the lines the models learn from).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.detection.matching import box_iou
from models.engine.skew import onto_level
from models.fields.amounts import NAMES as AMOUNT_NAMES
from models.fields.amounts import candidate_features, candidates
from models.fields.extractor import CLASSES, CURRENCY_FORMS, FIELDS, KeyFieldExtractor, currency_form, rows_of
from models.fields.features import NAMES, line_features
from models.manifest import WEIGHTS_DIR, code_revision, read_manifest
from models.spec import load_field_extractor
from models.training.metrics import KeyFieldMetrics, field_key
from models.training.receipts import Receipt, load_all, read_val_fold, split_train_val, vendor_key
from models.weights_io import update_manifest

CACHE = Path.home() / ".cache" / "billstream" / "fields"
RANK_PARAMS = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [1], "learning_rate": 0.05, "num_leaves": 15,
               "min_data_in_leaf": 5, "feature_fraction": 0.8, "lambda_l2": 1.0, "seed": 2024, "deterministic": True,
               "verbose": -1, "num_threads": 2}
PARAMS = {"objective": "multiclass", "num_class": len(CLASSES), "learning_rate": 0.05, "num_leaves": 15,
          "min_data_in_leaf": 10, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
          "lambda_l2": 1.0, "seed": 2024, "deterministic": True, "verbose": -1, "num_threads": 2}


def key_fields(receipt: Receipt) -> dict[str, str]:
    path = receipt.image_path.with_suffix(".json")
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {name: str(data.get(name) or "") for name in FIELDS}


def read_receipts(receipts: list[Receipt], threads: int, weights_dir: Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """name → {"lines": [(text, quad)], "size": (w, h)}, from the cache or read now."""
    from billstream_core.settings import LimitSettings
    from models.engine.predictor import OcrEngine, serving_options
    from models.intake import decode_image

    engine = OcrEngine.load(weights_dir, serving_options("onnx-int8", "cpu", threads, "auto"))
    manifest = read_manifest(weights_dir / "manifest.json")  # the reading depends on the OCR models, not on the field model
    ocr = ".".join(manifest[k]["sha256"][:8] for k in ("detector", "recognizer", "language_model") if k in manifest)
    if "lexicon" in manifest.get("language_model", {}):
        ocr += "." + manifest["language_model"]["lexicon"]["sha256"][:8]
    settings = {k: manifest["recognizer"].get(k) for k in ("reread", "line_floor")}  # they change the lines too
    ocr += "." + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
    profile = engine.version.partition("+")[2]  # backend, precision, decoder: they change the reading too
    path = CACHE / f"ocr-{ocr}.code-{code_revision('reading')}+{profile}.jsonl"
    cached: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            cached[entry["name"]] = entry
    missing = [r for r in receipts if r.name not in cached]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        for n, receipt in enumerate(missing, 1):
            image = decode_image(receipt.image_path.read_bytes(), LimitSettings())
            page = engine.read_pages([image.gray])[0]
            # the lines as the extractor sees them when serving: on the page as read (levelled)
            quads = [line.quad if page.level_matrix is None else onto_level(line.quad, page.level_matrix)
                     for line in page.lines]
            entry = {"name": receipt.name, "size": list(page.read_size),
                     "lines": [[line.text, quad.reshape(-1).tolist()] for line, quad in zip(page.lines, quads)]}
            out.write(json.dumps(entry) + "\n")
            cached[receipt.name] = entry
            print(f"\rreading receipts: {n}/{len(missing)}", end="", file=sys.stderr, flush=True)
    if missing:
        print(file=sys.stderr)
    return cached


def _lines(entry: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    return [(text, np.array(quad, np.float32).reshape(4, 2)) for text, quad in entry["lines"]]


def _squash(text: str) -> str:
    return "".join(field_key(text).split())


def labels(receipt: Receipt, lines: list[tuple[str, np.ndarray]], fields: dict[str, str]) -> np.ndarray:
    """Per recognised line: 1 company, 2 address, 0 other (by the matched ground-truth line)."""
    company, address = _squash(fields["company"]), _squash(fields["address"])
    out = np.zeros(len(lines), np.int64)
    for i, (text, quad) in enumerate(lines):
        overlaps = [(box_iou(quad, gt.quad), gt.text) for gt in receipt.lines]
        best, truth = max(overlaps, default=(0.0, text))
        piece = _squash(truth if best >= 0.3 else text)
        if len(piece) < 2:
            continue
        if piece in company and (piece not in address or len(piece) > 0.5 * len(company)) \
                or len(company) > 4 and company in piece and address not in piece:
            out[i] = 1
        elif piece in address:
            out[i] = 2
    return out


def dataset(receipts: list[Receipt], read: dict[str, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for receipt in receipts:
        entry = read[receipt.name]
        lines = _lines(entry)
        if not lines:
            continue
        rows, rights = rows_of(lines)
        xs.append(line_features(rows, rights, tuple(entry["size"])))
        ys.append(labels(receipt, lines, key_fields(receipt)))
    return np.vstack(xs), np.concatenate(ys)


def total_value(text: str) -> str | None:
    match = re.search(r"-?\d[\d,]*\.\d{2}", text)
    return match.group(0).replace(",", "") if match else None


def total_dataset(receipts: list[Receipt], read: dict[str, dict[str, Any]]
                  ) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, tuple[int, int]]]:
    """Amount candidates with 1 where the value is the total's; group sizes (one per receipt
    that has the total among its candidates); and per currency form (RM8.20, RM 8.20), how
    often the ground truth keeps the currency printed with the amount: (kept, printed)."""
    xs, ys, groups = [], [], []
    kept = dict.fromkeys(CURRENCY_FORMS, 0)
    printed = dict.fromkeys(CURRENCY_FORMS, 0)
    for receipt in receipts:
        entry, truth = read[receipt.name], key_fields(receipt)["total"]
        rows, _ = rows_of(_lines(entry))
        found = candidates(rows)
        wanted = total_value(truth)
        label = np.array([c.value == wanted for c in found], np.float32)
        if not found or not label.any():
            continue
        xs.append(candidate_features(rows, found, tuple(entry["size"])))
        ys.append(label)
        groups.append(len(found))
        for c in found:
            if c.value == wanted and c.currency:
                form = currency_form(c.text)
                printed[form] += 1
                kept[form] += bool(re.match(r"\s*(RM|MYR|\$)", truth, re.I))
                break
    return np.vstack(xs), np.concatenate(ys), groups, {f: (kept[f], printed[f]) for f in CURRENCY_FORMS}


UP = (0.2, 0.3, 0.5, 0.7, 0.9)
DOWN = (0.1, 0.2, 0.3, 0.5)


def choose_extension(train: list[Receipt], read: dict[str, dict[str, Any]], rounds: int) -> dict[str, tuple[float, float]]:
    """Per block field, the probabilities (up, down) that extend its block by a line, chosen
    by 5-fold cross-validation over the training vendors (the validation fold plays no part)."""
    import lightgbm

    vendors = sorted({vendor_key(r.company) for r in train})
    folds = [{v for k, v in enumerate(vendors) if k % 5 == part} for part in range(5)]
    oof: dict[str, np.ndarray] = {}
    for held in folds:
        fit = [r for r in train if vendor_key(r.company) not in held]
        x, y = dataset(fit, read)
        model = lightgbm.train(PARAMS, lightgbm.Dataset(x, y), num_boost_round=min(rounds, 100))
        for r in train:
            if vendor_key(r.company) in held and read[r.name]["lines"]:
                rows, rights = rows_of(_lines(read[r.name]))
                oof[r.name] = np.asarray(model.predict(line_features(rows, rights, tuple(read[r.name]["size"]))))
    scores: dict[tuple[float, float], dict[str, float]] = {}
    for up, down in itertools.product(UP, DOWN):
        metrics = KeyFieldMetrics()
        extractor = KeyFieldExtractor(None, extend={"company": (up, down), "address": (up, down)})
        for r in train:
            if r.name in oof:
                found = extractor.extract(_lines(read[r.name]), tuple(read[r.name]["size"]), probabilities=oof[r.name])
                truth = key_fields(r)
                metrics.add({k: f.text for k, f in found.items() if k in ("company", "address")},
                            {k: truth[k] for k in ("company", "address")})
        scores[(up, down)] = metrics.summary()
    chosen = {}
    for name in ("company", "address"):
        best = max(scores, key=lambda k: (scores[k][f"key_{name}_f1"], -abs(k[0] - k[1])))
        chosen[name] = best
        print(f"{name} block extension by training cross-validation: up {best[0]}, down {best[1]} "
              f"(F1 {scores[best][f'key_{name}_f1']:.3f}; both 0.2: {scores[(0.2, 0.2)][f'key_{name}_f1']:.3f})",
              file=sys.stderr)
    return chosen


def extension_entry(extend: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    return {name: list(pair) for name, pair in extend.items()}


def write_extension(extend: dict[str, tuple[float, float]], val: list[Receipt], read: dict[str, dict[str, Any]],
                    weights_dir: Path = WEIGHTS_DIR) -> int:
    """Store ``extend`` beside the models in ``weights_dir``, with their fold scores under it."""
    path = weights_dir / "manifest.json"
    manifest = read_manifest(path)
    manifest["fields"].pop("threshold", None)
    manifest["fields"]["extend"] = extension_entry(extend)
    fold = score(load_field_extractor(manifest, weights_dir), val, read)
    manifest["fields"]["metrics"] = {"fold": fold, "fold_rules_only": score(KeyFieldExtractor(None), val, read)}
    update_manifest("fields", manifest["fields"], path=path)
    print(f"wrote the block extension to the manifest; the shipped models on the fold: {fold}", file=sys.stderr)
    return 0


def score(extractor: KeyFieldExtractor, receipts: list[Receipt], read: dict[str, dict[str, Any]]) -> dict[str, float]:
    metrics = KeyFieldMetrics()
    for receipt in receipts:
        entry = read[receipt.name]
        found = extractor.extract(_lines(entry), tuple(entry["size"]))
        metrics.add({name: f.text for name, f in found.items()}, key_fields(receipt))
    return metrics.summary()


def main(argv: list[str] | None = None) -> int:
    import lightgbm

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=600, help="at most; the fold's log loss picks the best")
    parser.add_argument("--write", action="store_true", help="write the models into --weights-dir (the shipped weights)")
    parser.add_argument("--write-extension", action="store_true",
                        help="only store the block extension chosen now with the shipped models")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help="the OCR weights that read the receipts, and where --write stores the models")
    parser.add_argument("--limit", type=int, help="only this many train and validation receipts (smoke runs)")
    args = parser.parse_args(argv)

    receipts = load_all()
    train, val = split_train_val(receipts, read_val_fold())
    if args.limit is not None:
        train, val = train[:args.limit], val[:args.limit]
    read = read_receipts(train + val, args.threads, args.weights_dir)
    if args.write_extension:  # the shipped models stay: nothing to train but the cross-validation's
        return write_extension(choose_extension(train, read, args.rounds), val, read, args.weights_dir)
    x_train, y_train = dataset(train, read)
    x_val, y_val = dataset(val, read)
    print(f"lines: train {len(y_train)} ({np.bincount(y_train, minlength=3).tolist()} other/company/address), "
          f"fold {len(y_val)}", file=sys.stderr)
    started = time.monotonic()
    booster = lightgbm.train(PARAMS, lightgbm.Dataset(x_train, y_train, feature_name=list(NAMES)),
                             num_boost_round=args.rounds,
                             valid_sets=[lightgbm.Dataset(x_val, y_val, feature_name=list(NAMES))],
                             callbacks=[lightgbm.early_stopping(50, verbose=False)])
    seconds = time.monotonic() - started
    xt, yt, gt, currency_kept = total_dataset(train, read)
    xv, yv, gv, _ = total_dataset(val, read)
    totals = lightgbm.train(RANK_PARAMS, lightgbm.Dataset(xt, yt, group=gt, feature_name=list(AMOUNT_NAMES)),
                            num_boost_round=args.rounds,
                            valid_sets=[lightgbm.Dataset(xv, yv, group=gv, feature_name=list(AMOUNT_NAMES))],
                            callbacks=[lightgbm.early_stopping(50, verbose=False)])
    with_currency = {form: kept > printed / 2 for form, (kept, printed) in currency_kept.items()}
    print(f"totals: {len(gt)} training receipts with the total among their amounts; the ground truth keeps a "
          "printed currency in " + ", ".join(f"{kept} of {printed} {form}" for form, (kept, printed)
                                             in currency_kept.items()), file=sys.stderr)
    extend = choose_extension(train, read, args.rounds)
    rules = score(KeyFieldExtractor(None), val, read)
    learned = score(KeyFieldExtractor(booster, totals=totals, total_currency=with_currency, extend=extend), val, read)
    print(f"fold: {len(val)} receipts, engine OCR; line classifier {booster.best_iteration} rounds "
          f"({seconds:.1f}s), total ranker {totals.best_iteration} rounds")
    columns = ["key_f1", "key_precision", "key_recall"] + [f"key_{name}_f1" for name in FIELDS]
    print("| extractor | " + " | ".join(c.removeprefix("key_") for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, row in (("rules only", rules), ("learned seller, address and total", learned)):
        print(f"| {label} | " + " | ".join(f"{row.get(c, 0.0):.3f}" for c in columns) + " |")
    if args.write:
        entry: dict[str, Any] = {"type": "lightgbm-text", "classes": list(CLASSES),
                                 "extend": extension_entry(extend),
                                 "total_currency": with_currency}
        for role, model, names in (("lines", booster, NAMES), ("totals", totals, AMOUNT_NAMES)):
            text = model.model_to_string(num_iteration=model.best_iteration)
            path = args.weights_dir / f"fields-{role}.txt"
            path.write_text(text, encoding="utf-8")
            entry[role] = {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                           "features": len(names), "rounds": model.best_iteration}
        entry["training"] = {"receipts": len(train), "lines": int(len(y_train)), "line_params": PARAMS,
                             "total_params": RANK_PARAMS, "command": "python -m models.training.train_fields --write"}
        entry["metrics"] = {"fold": learned, "fold_rules_only": rules}
        update_manifest("fields", entry, path=args.weights_dir / "manifest.json")
        print(f"wrote {args.weights_dir}/fields-*.txt and the manifest entry", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
