"""How a failed write is classified and isolated: bad rows out, an unavailable sink retried."""

import numpy as np
import pyarrow as pa
import pytest

from stream.boundary import SinkUnavailable
from stream.scoring.sinks import is_data_rejection, write_isolating


class RejectingWriter:
    def __init__(self, bad: set[int], error: Exception):
        self.bad, self.error, self.written, self.calls = bad, error, [], 0

    def __call__(self, rows: np.ndarray) -> None:
        self.calls += 1
        if self.bad & set(rows.tolist()):
            raise self.error
        self.written += rows.tolist()


def test_rows_with_data_the_store_refuses_are_isolated_and_the_rest_written():
    writer = RejectingWriter({13, 77}, RuntimeError("Code: 321. DB::Exception: Value out of range"))
    rejected = write_isolating(writer, 100)
    assert set(rejected) == {13, 77} and "Code: 321" in rejected[13]
    assert sorted(writer.written) == [i for i in range(100) if i not in (13, 77)]
    assert writer.calls < 40  # bisection, not one write per row


def test_a_clean_batch_is_one_write():
    writer = RejectingWriter(set(), RuntimeError())
    assert write_isolating(writer, 50) == {} and writer.calls == 1


@pytest.mark.parametrize("error", [ConnectionError("refused"), TimeoutError(),
                                   RuntimeError("Code: 252. DB::Exception: Too many parts"),
                                   RuntimeError("Code: 241. Memory limit exceeded")])
def test_anything_but_a_data_error_is_an_unavailable_sink(error):
    with pytest.raises(SinkUnavailable):
        write_isolating(RejectingWriter({3}, error), 10)


def test_a_batch_whose_every_row_is_refused_is_a_sink_problem_not_bad_data():
    error = RuntimeError("Code: 53. DB::Exception: Type mismatch")  # e.g. a changed table
    with pytest.raises(SinkUnavailable, match="every row"):
        write_isolating(RejectingWriter(set(range(8)), error), 8)


def test_values_that_cannot_be_converted_are_data_errors():
    assert is_data_rejection(pa.ArrowInvalid("cannot convert"))
    assert is_data_rejection(OverflowError("date value out of range"))
    assert not is_data_rejection(OSError("disk"))


@pytest.mark.parametrize("n", [1, 8])
def test_a_batch_whose_every_row_is_refused_is_a_sink_problem_even_a_batch_of_one(n):
    error = RuntimeError("Code: 53. DB::Exception: Type mismatch")
    with pytest.raises(SinkUnavailable, match="alert_scores.score is String"):
        write_isolating(RejectingWriter(set(range(n)), error), n,
                        lambda: ["alert_scores.score is String, not Float64"])


def test_rows_refused_by_a_sink_whose_tables_are_as_they_should_be_are_bad_rows():
    error = RuntimeError("Code: 321. DB::Exception: Value out of range")
    assert set(write_isolating(RejectingWriter({0}, error), 1, lambda: [])) == {0}
