"""Videos: frames every N, times, face tracks, certainty-weighted smoothing and the annotated mp4."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from ferkit.cli import main
from ferkit.inference import load_model
from ferkit.inference.video import assign_tracks, box_iou
from ferkit_testmodels import single_thread, tiny_checkpoint

FPS = 10.0


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model(tiny_checkpoint(tmp_path_factory.getbasetemp() / "models"), device="cpu")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """10 frames 320x240 at 10 fps: the astronaut's face drifting right 3 px a frame; frames 6-7 blank."""
    face = np.asarray(cv2.resize(skdata.astronaut()[20:260, 120:340], (110, 120)))
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (320, 240))
    assert writer.isOpened()
    for i in range(10):
        frame = np.full((240, 320, 3), 90, np.uint8)
        if i not in (6, 7):
            frame[60:180, 80 + 3 * i:190 + 3 * i] = face
        writer.write(frame[:, :, ::-1].copy())
    writer.release()
    return path


def test_every_second_frame_with_times_tracks_and_no_face_rows(model, video):
    rows = model.predict(video, every=2)
    assert [r["frame"] for r in rows] == [0, 2, 4, 6, 8]
    assert [r["time"] for r in rows] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "no_face", "ok"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["track"] for r in ok] == [0, 0, 0, 1]          # the gap at frame 6 starts a new track
    xs = [r["box"][0] for r in ok[:3]]
    assert 4.0 < xs[1] - xs[0] < 8.0 and 4.0 < xs[2] - xs[1] < 8.0   # 3 px/frame, 2 frames apart


def test_smoothing_is_the_certainty_weighted_exponential_average(model, video):
    raw = [r for r in model.predict(video, every=1) if r["status"] == "ok"]
    tau = 0.5
    smooth = [r for r in model.predict(video, every=1, smooth=tau) if r["status"] == "ok"]
    classes = model.classes
    for track in {r["track"] for r in raw}:
        rr = [r for r in raw if r["track"] == track]
        ss = [r for r in smooth if r["track"] == track]
        num, den, t_prev = np.zeros(len(classes)), 0.0, None
        for r, s in zip(rr, ss, strict=True):
            decay = 1.0 if t_prev is None else math.exp(-(r["time"] - t_prev) / tau)
            w = 1.0 - r["uncertainty"]
            num = num * decay + w * np.array([r["probs"][c] for c in classes])
            den = den * decay + w
            t_prev = r["time"]
            expect = num / den
            np.testing.assert_allclose([s["probs"][c] for c in classes], expect, atol=2e-6)
            assert s["uncertainty"] == pytest.approx(1 - expect.max(), abs=2e-6)
    assert smooth[0]["probs"] == raw[0]["probs"]                # the first frame has no history


def test_cli_video_annotation_writes_an_mp4_of_processed_frames(model, video, tmp_path):
    ckpt = model.source
    out = tmp_path / "ann"
    assert main(["predict", ckpt, str(video), "--every", "3", "--annotate", str(out),
                 "--out", str(tmp_path / "v.json"), "--device", "cpu"]) == 0
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 4                                               # frames 0, 3, 6, 9


def test_iou_and_greedy_track_matching():
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    rows = [{"status": "ok", "frame": f, "box": b, "track": None}
            for f, b in [(0, [0, 0, 10, 10]), (0, [50, 0, 60, 10]), (1, [51, 0, 61, 10]), (1, [1, 0, 11, 10]),
                         (1, [100, 100, 110, 110])]]
    assign_tracks(rows)
    assert [r["track"] for r in rows] == [0, 1, 1, 0, 2]
