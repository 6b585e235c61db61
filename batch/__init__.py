"""Batch path: SOT ingest, synthetic data, training, backfill, export, replay."""
