"""Train the CRNN on real receipt line crops (vendor-disjoint from the validation fold)
plus synthetic lines rendered with Debian fonts (fresh ones every epoch).

Resumable: every epoch writes a checkpoint; the same command picks it up. The best epoch
by validation line accuracy is exported to models/weights/ with its manifest entry; with
``--init`` the starting weights' own score is the bar an epoch must beat to be exported.

    python -m models.training.train_recognizer --epochs 40 [--device cuda --workers 12] [--max-minutes 60]
    python -m models.training.train_recognizer --init models/weights/crnn.npz --lr 1e-3 --run-dir runs/rec-ft
"""
from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.recognition.charset import Charset
from models.recognition.crnn import CRNNConfig, build_crnn
from models.recognition.ctc import greedy_decode
from models.training.checkpoints import EpochCheckpoints, one_cycle, provenance, report_epoch, train_step
from models.training.line_batches import LineBatches
from models.training.loader import JobBuilder
from models.training.metrics import LineAccuracy
from models.training.receipts import load_all, read_val_fold, split_train_val
from models.training.recognition_data import WIDTH_JITTER, LineSample, batches, detected_samples, extract_samples
from models.training.synthetic_lines import find_fonts
from models.weights_io import WEIGHTS_DIR, load_state, save_state, update_manifest

REPO = Path(__file__).resolve().parents[2]


def evaluate(model: nn.Module, samples: list[LineSample], charset: Charset, device: str) -> dict[str, float]:
    model.eval()
    accuracy = LineAccuracy()
    with torch.inference_mode():
        for array, _, texts, widths in batches(samples, charset, batch_size=64, height=32, max_width=1024, rng=None):
            images = torch.from_numpy(array).float().div_(255).unsqueeze(1).to(device)
            log_probs = model(images).cpu().numpy()
            lengths = np.ceil(widths / 4).astype(int)
            for (predicted, _), truth in zip(greedy_decode(log_probs, charset, lengths), texts):
                accuracy.add(predicted, truth)
    model.train()
    return accuracy.summary()


def shipped_detector() -> Callable[[np.ndarray], list[np.ndarray]]:
    """The serving detector (calibrated boxes), as the engine runs it on an upright page."""
    from models.engine.predictor import OcrEngine, serving_options

    engine = OcrEngine.load(options=serving_options("onnx", "cpu", torch.get_num_threads(), "greedy"))
    return lambda page: [line.quad for line in engine.detect(page)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--workers", type=int, default=0, help="processes building batches (0: in the training process)")
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "recognizer")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (after checkpointing) past this")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--synthetic", type=int, default=8000, help="synthetic lines per epoch (0: real crops only)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help="where the best epoch is exported (default: the shipped weights)")
    parser.add_argument("--detected-crops", action="store_true",
                        help="also train on crops along the shipped detector's boxes (each fitting one annotated line)")
    parser.add_argument("--limit", type=int, default=None, help="only this many train and validation receipts (smoke runs)")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights (.npz) or another run's checkpoint (.pt)")
    parser.add_argument("--channels", default=",".join(map(str, CRNNConfig.channels)),
                        help="the CNN's six widths, comma-separated (the CPU serving cost grows with their squares)")
    parser.add_argument("--lstm-hidden", type=int, default=CRNNConfig.lstm_hidden)
    parser.add_argument("--width-jitter", default=",".join(map(str, WIDTH_JITTER)),
                        help="range of the horizontal squeeze/stretch given to 30%% of training lines")
    args = parser.parse_args(argv)
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
        low, high = (float(x) for x in args.width_jitter.split(","))
    except ValueError:
        channels, low, high = (), 0.0, 0.0
    if len(channels) != 6 or min(channels) < 1 or not 0 < low <= high:
        parser.error("--channels takes six positive widths; --width-jitter LOW,HIGH with 0 < LOW <= HIGH")

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    charset = Charset()
    train_receipts, val_receipts = split_train_val(load_all(), read_val_fold())
    if args.limit is not None:
        train_receipts, val_receipts = train_receipts[:args.limit], val_receipts[:args.limit]
    print(f"receipts: {len(train_receipts)} train, {len(val_receipts)} validation", flush=True)
    train = extract_samples(train_receipts, charset)
    val = extract_samples(val_receipts, charset)
    detected: list[LineSample] = []
    if args.detected_crops:
        detected = detected_samples(train_receipts, charset, shipped_detector())
        print(f"detected crops: {len(detected)} fitting one annotated line each", flush=True)
        train += detected
    print(f"lines: {len(train)} train, {len(val)} validation", flush=True)

    fonts = find_fonts() if args.synthetic else []
    if args.synthetic:
        print(f"synthetic: {args.synthetic} lines per epoch in {len(fonts)} fonts", flush=True)

    config = CRNNConfig(num_classes=len(charset), channels=channels, lstm_hidden=args.lstm_hidden)
    model = build_crnn(config)
    if args.init is not None and args.init.suffix == ".pt":  # another run's checkpoint
        model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True)["model"])
    elif args.init is not None:
        load_state(model, args.init, expected_sha256=None)
    model = model.to(args.device)
    epoch_batches = LineBatches(train, charset, batch_size=args.batch_size, synthetic=args.synthetic, fonts=fonts,
                                seed=args.seed, width_jitter=(low, high))
    steps_per_epoch = epoch_batches.steps()
    build_batches = JobBuilder(epoch_batches.build, args.workers)
    optimizer, scheduler = one_cycle(model, args.lr, args.epochs * steps_per_epoch)
    ctc = nn.CTCLoss(blank=charset.blank, zero_infinity=True)
    checkpoints = EpochCheckpoints(args.run_dir, model, optimizer, scheduler, args.device)
    start_epoch, best = checkpoints.resume("line exact")
    if start_epoch == 0 and args.init is not None:
        best = evaluate(model, val, charset, args.device)["line_exact_ci"]
        print(f"starting weights: line exact {best:.4f} on the validation fold", flush=True)

    for epoch in range(start_epoch, args.epochs):
        progress = tqdm(build_batches(epoch_batches.jobs(epoch)),
                        total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=10)
        running = 0.0
        for step, (array, targets, _, widths) in enumerate(progress, 1):
            images = torch.from_numpy(array).to(args.device).float().div_(255).unsqueeze(1)
            log_probs = model(images)
            input_lengths = torch.from_numpy(np.ceil(widths / 4).astype(np.int64))
            target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
            flat = torch.tensor([c for t in targets for c in t], dtype=torch.long)
            loss = ctc(log_probs.float(), flat.to(args.device), input_lengths.to(args.device), target_lengths.to(args.device))
            value = train_step(loss, model, optimizer, scheduler, clip_norm=5.0)
            running = 0.98 * running + 0.02 * value if step > 1 else value
            progress.set_postfix(loss=f"{running:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        metrics = evaluate(model, val, charset, args.device)
        elapsed = report_epoch(epoch, running, started, metrics)
        if metrics["line_exact_ci"] > best:
            best = metrics["line_exact_ci"]
            sha = save_state(model, args.weights_dir / "crnn.npz", half=True)
            update_manifest("recognizer", {
                "file": "crnn.npz", "sha256": sha, "architecture": "crnn", "config": config.to_dict(),
                "charset": charset.to_manifest(), "input": {"height": 32, "channels": 1, "max_width": 1024,
                                                            "crop_margin": 0.08, "scale": "pixel / 255"},
            } | provenance(f"{len(train) - len(detected)} real GT line crops"
                           + (f" and {len(detected)} crops along the detector's boxes" if detected else "")
                           + f" from {len(train_receipts)} receipts (receipts-dev minus "
                           "the validation fold, receipts-extra minus its vendors)"
                           + (f" + {args.synthetic} synthetic lines per epoch in {len(fonts)} Debian fonts"
                              if args.synthetic else "") + f"; width jitter {low}-{high}"
                           + (f"; started from {args.init}" if args.init else ""),
                           epoch, args.seed, args.device, elapsed, metrics), path=args.weights_dir / "manifest.json")
        checkpoints.save(epoch, best)
        if args.max_minutes is not None and elapsed > args.max_minutes:
            print(f"stopping after {elapsed:.1f} minutes (--max-minutes); rerun to resume", flush=True)
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
