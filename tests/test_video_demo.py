"""tracking/video_demo.py: headless run on a generated video and on a frame folder (tiny random-weight model)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from fartrack.data.synthetic import moving_box_sequence
from fartrack.evaluation.video import FrameSource, format_box_csv
from tiny_models import load_script, write_tiny_sparse

REPO = Path(__file__).resolve().parents[1]

HEIGHT, WIDTH, FRAMES = 96, 128, 60


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_sparse(tmp_path_factory.mktemp("tiny_demo"), "tiny.pth.tar", 1)


@pytest.fixture(scope="module")
def demo_main():
    return load_script(REPO / "tracking" / "video_demo.py", "fartrack_video_demo").main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 60-frame mp4 written with OpenCV and its GT boxes."""
    frames, boxes = moving_box_sequence(FRAMES, HEIGHT, WIDTH, seed=3)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, boxes


def _args(tiny, source, out, *extra):
    config, ckpt = tiny
    return [str(source), "--init_box", "10.5", "20", "30", "25", "--checkpoint", ckpt, "--config", config,
            "--out", str(out), "--no_progress", *extra]


def _read_video(path: Path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _read_csv(path: Path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], [[float(v) for v in row] for row in rows[1:]]


def test_video_file_gives_playable_mp4_and_csv(tmp_path, tiny, demo_main, clip, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    source, _ = clip
    out = tmp_path / "out" / "tracked.mp4"
    assert demo_main(_args(tiny, source, out, "--show")) == 0
    captured = capsys.readouterr()
    assert "--show ignored, no display" in captured.err and f"tracked {FRAMES} frames" in captured.out
    frames = _read_video(out)
    assert len(frames) == FRAMES
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    header, rows = _read_csv(out.with_suffix(".csv"))
    assert header == ["frame", "x", "y", "w", "h"]
    assert len(rows) == FRAMES and [r[0] for r in rows] == list(range(1, FRAMES + 1))
    assert rows[0][1:] == [10.5, 20.0, 30.0, 25.0]
    assert all(r[3] > 0 and r[4] > 0 for r in rows)
    # the init box is drawn in green on frame 1 (top edge at y=20 from x=11 to x=40)
    edge = frames[0][20, 14:38].astype(int)
    assert (edge[:, 1] - edge[:, [0, 2]].max(axis=1) > 40).mean() > 0.9  # mp4v is lossy: green dominates
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_frame_folder_and_explicit_csv(tmp_path, tiny, demo_main, capsys):
    frames, _ = moving_box_sequence(12, HEIGHT, WIDTH, seed=4)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):  # names that sort wrongly as text: 1.png, 2.png, ..., 10.png
        cv2.imwrite(str(folder / f"{i + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert [p.name for p in FrameSource(folder).files][8:11] == ["9.png", "10.png", "11.png"]
    out, boxes_csv = tmp_path / "demo.mp4", tmp_path / "boxes" / "b.csv"
    assert demo_main(_args(tiny, folder, out, "--csv", str(boxes_csv))) == 0
    assert len(_read_video(out)) == 12
    _, rows = _read_csv(boxes_csv)
    assert len(rows) == 12


@pytest.mark.parametrize(
    "change, message",
    [
        (("source", "missing.mp4"), "missing.mp4 not found"),
        (("box", ["500", "20", "30", "25"]), "outside the first frame"),
        (("box", ["10", "20", "0", "25"]), "w, h > 0"),
        (("out", "demo.avi"), "must be an .mp4 file"),
        (("source", "notavideo.mp4"), "OpenCV cannot open video"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, tiny, demo_main, clip, capsys, change, message):
    source, out = clip[0], tmp_path / "out.mp4"
    (tmp_path / "notavideo.mp4").write_bytes(b"plain text, not a video")
    args = _args(tiny, source, out)
    kind, value = change
    if kind == "source":
        args[0] = str(tmp_path / value)
    elif kind == "box":
        args[2:6] = value
    else:
        args[args.index("--out") + 1] = str(tmp_path / value)
    assert demo_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert not out.exists()


def test_csv_format():
    text = format_box_csv(np.array([[1, 2, 3, 4], [5.25, 6, 7, 8.5]]))
    assert text == "frame,x,y,w,h\n1,1.000,2.000,3.000,4.000\n2,5.250,6.000,7.000,8.500\n"
