"""People in videos: box tracks joined by dlib-resnet's descriptor across a cut, and split where a box
track jumps to another person; `ferkit predict --people` fills the person column."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.external.identity import IDENTITY_MODELS
from ferkit.external.packages import package_file
from ferkit.inference.people import assign_people
from ferkit_testmodels import feat_photo

_INFO = IDENTITY_MODELS["dlib-resnet"]
needs_weights = pytest.mark.skipif(package_file(_INFO.package, _INFO.weights) is None,
                                   reason="face-recognition-models is not installed (pip install 'ferkit[identity]')")
pytestmark = pytest.mark.usefixtures("one_thread")



def _row(frame: int, track: int) -> dict:
    return {"frame": frame, "status": "ok", "track": track, "person": None}


def test_known_answers_with_planted_descriptors():
    a, b = np.zeros(4), np.array([1.0, 0, 0, 0])                        # 1.0 apart: two people
    # one box track that jumps from a to b (a crossing), then a new track of a after a cut
    rows = [_row(0, 0), _row(1, 0), _row(2, 0), _row(3, 0), {"frame": 4, "status": "no_face", "track": None,
                                                              "person": None}, _row(5, 1), _row(6, 1)]
    emb = {0: a, 1: a + 0.05, 2: b, 3: b - 0.05, 5: a + 0.1, 6: a}
    assign_people(rows, emb)
    assert [r["person"] for r in rows] == [0, 0, 1, 1, None, 0, 0]
    # two faces in one frame are never one person, however alike
    rows = [_row(0, 0), _row(0, 1)]
    assign_people(rows, {0: a, 1: a + 0.01})
    assert [r["person"] for r in rows] == [0, 1]


@needs_weights
def test_predict_people_across_a_cut(tmp_path):
    import cv2
    import skimage.data

    from ferkit.inference.video import iter_frames

    clip = [f for i, _t, f in iter_frames(feat_photo("single_face.mp4"), every=12)][:4]       # person A, 4 frames
    h, w = clip[0].shape[:2]
    astro = skimage.data.astronaut()
    other = np.zeros_like(clip[0])
    other[:, w - h:] = cv2.resize(astro, (h, h))                                        # person B, elsewhere
    frames = clip[:2] + [other, other] + clip[2:]                                       # A A | B B | A A
    path = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "rows.csv"
    assert main(["predict", str(path), "--people", "--out", str(out)]) == 0
    from ferkit.inference.rows import read_rows_csv

    rows = [r for r in read_rows_csv(out) if r["status"] == "ok" and r["face"] == "0"]
    assert [r["frame"] for r in rows] == [str(i) for i in range(6)]
    tracks = [r["track"] for r in rows]
    assert tracks[0] == tracks[1] and tracks[4] == tracks[5] and tracks[0] != tracks[4]  # boxes lose A at the cut
    assert [r["person"] for r in rows] == ["0", "0", "1", "1", "0", "0"]               # identity finds A again
    plain = tmp_path / "plain.csv"
    assert main(["predict", str(path), "--out", str(plain)]) == 0
    assert {r["person"] for r in read_rows_csv(plain)} == {""}
