"""Result files: exact format, atomic ordered writes, completeness, and readers that name file and line."""

from __future__ import annotations

import numpy as np
import pytest

from fartrack.evaluation import results as R


def test_write_format_and_round_trip(tmp_path):
    boxes = np.array([[1.0, 2.5, 30.25, 40.0], [0.1234, -5.0, 7.0006, 8.9996]])
    times = np.array([0.5, 0.0123456789])
    R.write_sequence_results(tmp_path, "seq-1", boxes, times)
    assert (tmp_path / "seq-1.txt").read_text() == "1.000,2.500,30.250,40.000\n0.123,-5.000,7.001,9.000\n"
    assert (tmp_path / "seq-1_time.txt").read_text() == "0.50000000\n0.01234568\n"
    np.testing.assert_allclose(R.read_boxes(tmp_path / "seq-1.txt", 2), np.round(boxes, 3), atol=1e-12)
    np.testing.assert_allclose(R.read_times(tmp_path / "seq-1_time.txt"), [0.5, 0.01234568])
    assert R.result_complete(tmp_path, "seq-1", 2)
    assert not R.result_complete(tmp_path, "seq-1", 3)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["seq-1.txt", "seq-1_time.txt"]  # no temp files


def test_incomplete_results_are_detected(tmp_path):
    R.write_sequence_results(tmp_path, "a", np.ones((3, 4)), np.ones(3))
    (tmp_path / "a_time.txt").unlink()
    assert not R.result_complete(tmp_path, "a", 3)
    R.write_sequence_results(tmp_path, "b", np.ones((3, 4)), np.ones(3))
    (tmp_path / "b.txt").write_text("1,1,1,1\n1,1,1,1\n")  # truncated box file
    assert not R.result_complete(tmp_path, "b", 3)
    assert not R.result_complete(tmp_path, "never", 3)


def test_interrupted_write_leaves_no_complete_result(tmp_path, monkeypatch):
    """Boxes go first, times last: dying between the two writes leaves a result that is not complete."""
    real = R.atomic_write_text
    calls = []

    def dying(path, text, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, text, *args, **kwargs)

    monkeypatch.setattr(R, "atomic_write_text", dying)
    with pytest.raises(KeyboardInterrupt):
        R.write_sequence_results(tmp_path, "s", np.ones((4, 4)), np.ones(4))
    assert calls == ["s.txt", "s_time.txt"]
    assert (tmp_path / "s.txt").is_file() and not (tmp_path / "s_time.txt").exists()
    assert not R.result_complete(tmp_path, "s", 4)


def test_write_rejects_bad_input_without_writing(tmp_path):
    with pytest.raises(ValueError, match="frame 2 is not finite"):
        R.write_sequence_results(tmp_path, "s", np.array([[1, 1, 1, 1], [np.nan, 1, 1, 1]]), np.ones(2))
    with pytest.raises(ValueError, match="2 boxes but 3 times"):
        R.write_sequence_results(tmp_path, "s", np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        R.write_sequence_results(tmp_path, "s", np.ones((2, 3)), np.ones(2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["1,2,3,4\n5,6,7,8\n", "1\t2\t3\t4\n5\t6\t7\t8", "1 2  3 4\n\n5 6 7 8\n\n"])
def test_read_boxes_accepts_comma_tab_and_whitespace(tmp_path, text):
    path = tmp_path / "r.txt"
    path.write_text(text)
    np.testing.assert_array_equal(R.read_boxes(path, 2), [[1, 2, 3, 4], [5, 6, 7, 8]])


@pytest.mark.parametrize("text, expected_rows, message", [
    ("", None, r"r\.txt, line 1: result file is empty"),
    ("\n\n", 3, r"r\.txt, line 1: result file is empty"),
    ("1,2,3,4\n1,2,x,4\n", None, r"r\.txt, line 2: expected numbers"),
    ("1,2,3,4\n1,2,3\n", None, r"r\.txt, line 2: expected 4 values, got 3"),
    ("1,2,3,4\n1,2,nan,4\n", None, r"r\.txt, line 2: value is not finite"),
    ("1,2,3,4\n5,6,7,8\n", 5, r"r\.txt, line 3: result ends after 2 lines, the sequence has 5 frames"),
    ("1,2,3,4\n5,6,7,8\n", 1, r"r\.txt, line 2: result has 2 lines, the sequence has only 1 frames"),
])
def test_read_boxes_errors_name_file_and_line(tmp_path, text, expected_rows, message):
    path = tmp_path / "r.txt"
    path.write_text(text)
    with pytest.raises(R.ResultsError, match=message):
        R.read_boxes(path, expected_rows)


def test_read_boxes_missing_file_and_truncation(tmp_path):
    with pytest.raises(R.ResultsError, match="not found"):
        R.read_boxes(tmp_path / "nope.txt")
    path = tmp_path / "long.txt"
    path.write_text("1,2,3,4\n5,6,7,8\n9,9,9,9\n")
    np.testing.assert_array_equal(R.read_boxes(path, 2, allow_longer=True), [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_read_times_columns(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("0.1,0.2\n0.3,0.4\n")
    assert R.read_times(path).shape == (2, 2)
    path.write_text("0.1\n0.3\n")
    np.testing.assert_array_equal(R.read_times(path), [0.1, 0.3])


def test_check_box_sizes(tmp_path):
    boxes = np.array([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, -1.0]])
    with pytest.raises(R.ResultsError, match=r"f\.txt, line 3: width and height must be non-negative"):
        R.check_box_sizes(boxes, tmp_path / "f.txt")
    with pytest.raises(R.ResultsError, match=r"f\.txt, line 2: width and height must be positive"):
        R.check_box_sizes(boxes, tmp_path / "f.txt", allow_zero=False)
    R.check_box_sizes(boxes[:1], tmp_path / "f.txt", allow_zero=False)
