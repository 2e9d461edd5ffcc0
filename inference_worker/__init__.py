"""The inference worker group: work topic → MinIO → OCR engine → results, transactionally (pipeline issue)."""
