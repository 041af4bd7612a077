"""Videos: frames every N, container timestamps (variable frame rate too), face tracks, certainty-weighted
smoothing and the annotated video (VP8 WebM, browser-playable)."""

from __future__ import annotations

import math
import struct

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


def _boxes(data: bytes, start: int, end: int):
    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        yield data[start:start + size], kind
        start += size


def variable_rate(data: bytes, deltas: list[int]) -> bytes:
    """An mp4 (moov after mdat, as OpenCV writes it) whose frames last ``deltas`` ticks of the track's
    timescale: its time-to-sample table (stts) is rewritten with one entry per frame, and the edit list,
    which would cut the stream at the old duration, is dropped. Sample data and offsets are unchanged."""
    def rebuild(buf: bytes) -> bytes:
        out = b""
        for box, kind in _boxes(buf, 0, len(buf)):
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
                inner = rebuild(box[8:])
                out += struct.pack(">I4s", 8 + len(inner), kind) + inner
            elif kind == b"stts":
                body = struct.pack(">II", 0, len(deltas)) + b"".join(struct.pack(">II", 1, d) for d in deltas)
                out += struct.pack(">I4s", 8 + len(body), b"stts") + body
            elif kind != b"edts":
                out += box
        return out

    kinds = [k for _, k in _boxes(data, 0, len(data))]
    assert kinds.index(b"mdat") < kinds.index(b"moov")         # so the chunk offsets stay valid
    return rebuild(data)


def test_variable_frame_rate_times_are_the_containers(tmp_path):
    """Frames lasting 0.1, 0.1, 0.1, 0.4, 0.4, 0.05 ... s: the times are the container's presentation times,
    not frame / fps (fps is then only an average: frame 4 would be put at 0.6 s instead of 0.7 s)."""
    from ferkit.inference.video import iter_frames, video_info

    cfr = tmp_path / "cfr.mp4"
    writer = cv2.VideoWriter(str(cfr), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    ticks = 1024                                                # OpenCV's mp4 timescale is 10240 at 10 fps
    deltas = [ticks] * 3 + [4 * ticks] * 3 + [ticks // 2] * 6
    vfr = tmp_path / "vfr.mp4"
    vfr.write_bytes(variable_rate(cfr.read_bytes(), deltas))
    truth = np.cumsum([0] + deltas[:-1]) / (10 * ticks)         # 0, .1, .2, .3, .7, 1.1, 1.5, 1.55 ...
    frames = list(iter_frames(vfr))
    assert [i for i, _, _ in frames] == list(range(12))
    assert [t for _, t, _ in frames] == pytest.approx(truth.tolist(), abs=1e-3)
    assert [int(f.mean()) for _, _, f in frames] == pytest.approx([20 * i for i in range(12)], abs=8)  # in order
    fps, _ = video_info(vfr)
    assert abs(4 / fps - truth[4]) > 0.05                       # what frame / fps said
    assert [t for _, t, _ in iter_frames(vfr, every=4)] == pytest.approx(truth[::4].tolist(), abs=1e-3)


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


def test_cli_video_annotation_writes_a_browser_playable_webm_of_processed_frames(model, video, tmp_path):
    ckpt = model.source
    out = tmp_path / "ann"
    assert main(["predict", ckpt, str(video), "--every", "3", "--annotate", str(out),
                 "--out", str(tmp_path / "v.json"), "--device", "cpu"]) == 0
    assert not (out / "clip.mp4").exists()
    target = out / "clip.webm"
    assert target.read_bytes()[:4] == bytes.fromhex("1a45dfa3")  # EBML: a Matroska/WebM file
    cap = cv2.VideoCapture(str(target))
    fourcc = (int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little")
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert fourcc == b"VP80" and len(frames) == 4                 # VP8; frames 0, 3, 6, 9
    assert frames[0].shape == (240, 320, 3)
    assert np.abs(frames[2].astype(int) - 90).mean() < 8          # frame 6: blank grey, decoded as written


def test_iou_and_greedy_track_matching():
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    rows = [{"status": "ok", "frame": f, "box": b, "track": None}
            for f, b in [(0, [0, 0, 10, 10]), (0, [50, 0, 60, 10]), (1, [51, 0, 61, 10]), (1, [1, 0, 11, 10]),
                         (1, [100, 100, 110, 110])]]
    assign_tracks(rows)
    assert [r["track"] for r in rows] == [0, 1, 1, 0, 2]
