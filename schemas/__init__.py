"""Avro contracts between producers, the stream app and the workers.

Files are named ``<RecordName>.v<N>.avsc``; the highest N is what writers use, and readers
accept every version still listed here (Avro schema resolution maps old records onto the
newest shape). Loaded by path through :mod:`billstream_core.serde`.
"""
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
