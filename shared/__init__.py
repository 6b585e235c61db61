"""amlscore core: schemas, settings, features, model registry, RiskScoring, ClickHouse store.

Pure logic: nothing in this package parses arguments, prints, or wires a framework.
"""
