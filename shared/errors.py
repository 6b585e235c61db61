"""Errors that carry a message meant for the person running amlscore."""


class AmlScoreError(Exception):
    """Base class: its message says what went wrong and what to do about it."""


class ConfigurationError(AmlScoreError):
    """A setting is missing or malformed."""


class BatchRejected(AmlScoreError):
    """A SOT batch failed validation; nothing of it was written."""

    def __init__(self, batch: str, problems: list[str]) -> None:
        self.batch = batch
        self.problems = list(problems)
        super().__init__(f"batch {batch} refused: " + "; ".join(self.problems))


class TrainingRefused(AmlScoreError):
    """The data cannot support a meaningful model (too few labels, one class …)."""


class ModelLoadError(AmlScoreError):
    """A model artifact is missing, corrupt or inconsistent with its metadata."""


class ClickHouseUnavailable(AmlScoreError):
    """ClickHouse cannot be reached or opened (server down, embedded directory in use)."""

