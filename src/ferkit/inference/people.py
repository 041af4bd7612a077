"""People in videos: face tracks joined (and split) by a face recognizer's descriptor, where boxes alone fail.

Box tracks (``ferkit.inference.video.assign_tracks``, IoU between consecutive processed frames) break
at every cut, occlusion or missed detection, and can jump to another face when two faces cross.
``assign_people`` turns them into people with each face's identity descriptor (``dlib-resnet``, 128-D,
whose authors' rule is that one person's descriptors lie within Euclidean distance 0.6):

1. split: a box track is cut where a face's descriptor lies further than ``threshold`` from the running
   mean of the track so far (a track that jumped to another person at a crossing, or across a cut
   where the boxes happened to overlap);
2. join: the pieces, in order of their first frame, go to the person whose mean descriptor is nearest,
   when nearer than ``threshold`` and that person has no face in any frame of the piece (one person
   appears once per frame); otherwise they start a new person.

Each face row gets ``person`` (0, 1, ... in order of appearance); rows without a face keep None.
"""

from __future__ import annotations

import numpy as np

#: dlib's same-person distance for dlib_face_recognition_resnet_model_v1 (dnn_face_recognition_ex.cpp)
SAME_PERSON_DISTANCE = 0.6


def _pieces(rows: list[dict], embeddings: dict[int, np.ndarray], threshold: float) -> list[list[int]]:
    """Row indices grouped by box track, each track cut where its descriptor leaves the running mean."""
    by_track: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("status") == "ok" and i in embeddings:
            by_track.setdefault(r["track"] if r.get("track") is not None else -1 - i, []).append(i)
    pieces = []
    for members in by_track.values():
        members.sort(key=lambda i: (rows[i]["frame"] or 0))
        cur, total = [members[0]], embeddings[members[0]].astype(np.float64)
        for i in members[1:]:
            if np.linalg.norm(embeddings[i] - total / len(cur)) > threshold:
                pieces.append(cur)
                cur, total = [i], embeddings[i].astype(np.float64)
            else:
                cur.append(i)
                total = total + embeddings[i]
        pieces.append(cur)
    pieces.sort(key=lambda p: (rows[p[0]]["frame"] or 0, p[0]))
    return pieces


def assign_people(rows: list[dict], embeddings: dict[int, np.ndarray],
                  threshold: float = SAME_PERSON_DISTANCE) -> None:
    """Set ``row["person"]`` for the face rows of one video (see module doc).

    rows: the video's rows with ``frame``, ``status`` and ``track``; embeddings: {row index: (D,) descriptor}.
    """
    people: list[dict] = []                                   # {"sum": (D,), "n": int, "frames": set}
    for piece in _pieces(rows, embeddings, threshold):
        mean = np.mean([embeddings[i] for i in piece], axis=0)
        frames = {rows[i]["frame"] for i in piece}
        best, best_d = None, threshold
        for k, p in enumerate(people):
            d = float(np.linalg.norm(mean - p["sum"] / p["n"]))
            if d < best_d and not (frames & p["frames"]):
                best, best_d = k, d
        if best is None:
            people.append({"sum": np.zeros_like(mean, dtype=np.float64), "n": 0, "frames": set()})
            best = len(people) - 1
        p = people[best]
        for i in piece:
            rows[i]["person"] = best
            p["sum"] = p["sum"] + embeddings[i]
        p["n"] += len(piece)
        p["frames"] |= frames
