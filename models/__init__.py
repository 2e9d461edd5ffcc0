"""The OCR engine: bytes in, lines out. Knows neither Kafka nor MinIO.

intake (safe decode) → preprocess (pure OpenCV) → detection (text lines) → recognition
(CRNN + CTC) → engine (the predictor that ties them, with per-stage timings).
"""
