"""Shared plumbing for every billstream component: settings, errors, Kafka, MinIO, Avro.

Nothing in here imports a component (producers, workers, stream app, CLI); they import it.
"""
