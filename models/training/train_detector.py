"""Train the text-line detector on the receipts' line boxes (vendor-disjoint from validation).

Resumable like the recognizer; the best epoch by validation F1 of line boxes (IoU ≥ 0.5)
is exported to models/weights/ with its manifest entry.

    python -m models.training.train_detector --epochs 30 [--device cuda --workers 4] [--max-minutes 30]
    python -m models.training.train_detector --init models/weights/detector.npz --lr 1e-3 --run-dir runs/det-ft
"""
from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.detection.matching import box_scores, detection_f1
from models.detection.net import DetectorConfig, LineDetector, build_detector
from models.detection.postprocess import boxes_from_map
from models.preprocess import pad_to_multiple, read_gray
from models.training.checkpoints import EpochCheckpoints, one_cycle, provenance, report_epoch, train_step
from models.training.detection_data import PageSample, load_pages, random_crop
from models.training.loader import JobBuilder
from models.training.receipts import Receipt, load_all, read_val_fold, split_train_val
from models.weights_io import WEIGHTS_DIR, load_state, save_state, update_manifest

REPO = Path(__file__).resolve().parents[2]


def predict_map(model: nn.Module, page: np.ndarray, device: str) -> np.ndarray:
    h, w = page.shape
    padded = pad_to_multiple(page, LineDetector.stride_multiple)
    with torch.inference_mode():
        logits = model(torch.from_numpy(padded).float().div_(255)[None, None].to(device))
    return torch.sigmoid(logits)[0, 0, :h, :w].cpu().numpy()


def evaluate(model: nn.Module, pages: list[PageSample], truths: list[list[np.ndarray]], device: str) -> dict[str, float]:
    model.eval()
    matched = predicted = expected = 0
    for page, truth in zip(pages, truths):
        lines = boxes_from_map(predict_map(model, page.image, device), scale=1.0)
        m, p, t = detection_f1([line.quad for line in lines], truth)
        matched, predicted, expected = matched + m, predicted + p, expected + t
    model.train()
    return box_scores(matched, predicted, expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--crops-per-page", type=int, default=4)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "detector")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=0, help="threads cutting crops (0: in the training loop)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help="where the best epoch is exported (default: the shipped weights)")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights (.npz)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    config = DetectorConfig()
    train_receipts, val_receipts = split_train_val(load_all(), read_val_fold())
    train = load_pages(train_receipts, config.page_width)
    val = load_pages(val_receipts, config.page_width)
    val_truth = [[line.quad * (config.page_width / _width(r)) for line in r.lines] for r in val_receipts]
    print(f"pages: {len(train)} train, {len(val)} validation", flush=True)

    model = build_detector(config)
    if args.init is not None:
        load_state(model, args.init, expected_sha256=None)
    model = model.to(args.device)
    steps_per_epoch = -(-len(train) * args.crops_per_page // args.batch_size)
    optimizer, scheduler = one_cycle(model, args.lr, args.epochs * steps_per_epoch)
    checkpoints = EpochCheckpoints(args.run_dir, model, optimizer, scheduler, args.device)
    start_epoch, best = checkpoints.resume("box F1")
    if start_epoch == 0 and args.init is not None:
        best = evaluate(model, val, val_truth, args.device)["box_f1"]
        print(f"starting weights: box F1 {best:.4f} on the validation fold", flush=True)

    def build(job: tuple[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
        rng = random.Random(job[0])
        crops = [random_crop(train[i], args.crop, rng) for i in job[1]]
        return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])

    build_batches = JobBuilder(build, args.workers, threads=True)

    for epoch in range(start_epoch, args.epochs):
        rng = random.Random(args.seed * 1000 + epoch)
        order = [i for i in range(len(train)) for _ in range(args.crops_per_page)]
        rng.shuffle(order)
        base = (args.seed * 1000 + epoch) * 100_000
        jobs = [(base + k, order[k:k + args.batch_size]) for k in range(0, len(order), args.batch_size)]
        progress = tqdm(build_batches(jobs), total=len(jobs),
                        desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=10)
        running = 0.0
        for step, (crops, masks) in enumerate(progress, 1):
            images = torch.from_numpy(crops).to(args.device).float().div_(255).unsqueeze(1)
            targets = torch.from_numpy(masks).to(args.device).float().unsqueeze(1)
            logits = model(images)
            prob = torch.sigmoid(logits)
            dice = 1 - (2 * (prob * targets).sum() + 1) / (prob.sum() + targets.sum() + 1)
            loss = F.binary_cross_entropy_with_logits(logits, targets) + dice
            value = train_step(loss, model, optimizer, scheduler)
            running = 0.95 * running + 0.05 * value if step > 1 else value
            progress.set_postfix(loss=f"{running:.3f}")
        metrics = evaluate(model, val, val_truth, args.device)
        elapsed = report_epoch(epoch, running, started, metrics)
        if metrics["box_f1"] > best:
            best = metrics["box_f1"]
            sha = save_state(model, args.weights_dir / "detector.npz", half=True)
            update_manifest("detector", {
                "file": "detector.npz", "sha256": sha, "architecture": "unet-core-map", "config": config.to_dict(),
                "input": {"page_width": config.page_width, "channels": 1, "scale": "pixel / 255",
                          "side_multiple": 16},
                "postprocess": {"threshold": 0.3, "min_score": 0.5},
            } | provenance(f"line boxes of {len(train)} receipts (validation vendors excluded)"
                           + (f"; started from {args.init}" if args.init else ""),
                           epoch, args.seed, args.device, elapsed, metrics), path=args.weights_dir / "manifest.json")
        checkpoints.save(epoch, best)
        if args.max_minutes is not None and elapsed > args.max_minutes:
            print(f"stopping after {elapsed:.1f} minutes (--max-minutes); rerun to resume", flush=True)
            break
    print("the export resets the box calibration: re-fit it with "
          "python -m models.training.calibrate_boxes --write", flush=True)
    return 0


def _width(receipt: Receipt) -> int:
    return int(read_gray(str(receipt.image_path)).shape[1])


if __name__ == "__main__":
    raise SystemExit(main())
