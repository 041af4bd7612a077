"""Videos: frames through OpenCV, face tracks across frames, and certainty-weighted temporal smoothing.

Every ``every``-th frame is processed like a photo. Faces in consecutive processed frames are linked
into tracks by greedy box IoU (>= 0.3, best pairs first); with a face recognizer (``people``), tracks are
then split and joined into people by identity (``ferkit.inference.people``). With ``smooth`` = tau seconds > 0, each track's
probabilities are replaced by a causal, exponentially time-weighted average in which each frame also
counts by its certainty w = 1 - u:

    p_s(t) = sum_{k <= t} w_k exp(-(t - t_k) / tau) p_k  /  sum_{k <= t} w_k exp(-(t - t_k) / tau)

(the same weights average the evidential u; for models without one, u_s = 1 - max p_s). Uncertain
frames (blur, a turned head) then move the smoothed label little, and confident ones a lot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.inference.pending import PendingFaces
from ferkit.inference.prefetch import prefetch
from ferkit.inference.rows import error_row, set_prediction

DEFAULT_FPS = 25.0


def open_capture(path: str | Path):
    """cv2.VideoCapture with FFmpeg's own log lines off (ferkit reports unreadable videos itself)."""
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    return cv2.VideoCapture(str(path))


def video_info(path: str | Path) -> tuple[float, int]:
    """(frames per second, frame count as the container states it); raises if OpenCV cannot open it."""
    import cv2

    cap = open_capture(path)
    try:
        if not cap.isOpened():
            raise FerkitError(f"Video {path} cannot be opened (unreadable or unsupported format).")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return (fps if fps and fps > 0 else DEFAULT_FPS), count


def frame_time(cap, idx: int, fps: float) -> float:
    """Seconds of the frame just grabbed: the container's own timestamp (``CAP_PROP_POS_MSEC``, the frame's
    presentation time from the stream start), right for variable-frame-rate phone videos where ``idx / fps``
    drifts; ``idx / fps`` only where the backend gives no timestamp (0 past the first frame)."""
    import cv2

    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    if ms > 0 or (idx == 0 and ms == 0):
        return round(ms / 1000.0, 4)
    return round(idx / fps, 4)


def iter_frames(path: str | Path, every: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, seconds (:func:`frame_time`), RGB uint8 frame) for every ``every``-th frame."""
    import cv2

    fps, _ = video_info(path)
    cap = open_capture(path)
    try:
        idx = 0
        while True:
            ok = cap.grab()
            if not ok:
                break
            if idx % every == 0:
                t = frame_time(cap, idx, fps)
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                yield idx, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            idx += 1
    finally:
        cap.release()


def predict_video(model, path: Path, name: str, aligned: bool, abstain_above: float | None,
                  batch_size: int, every: int, smooth: float, people=None) -> list[dict]:
    """Rows for one video (one per face per processed frame), tracked and optionally smoothed.

    ``people``: an identity embedder (``ferkit.external.identity.IdentityEmbedder``) whose descriptors
    join the box tracks into people (``ferkit.inference.people``: a ``person`` per face row)."""
    pending = PendingFaces(model, batch_size, abstain_above)
    rows: list[dict] = []
    frames = 0
    descriptors: list[np.ndarray] = []                  # one per face, in the order the face rows come out

    def detected() -> Iterator[list[tuple[dict, np.ndarray | None]]]:
        """Rows (with crops) of each group of ``batch_size`` frames, detected together (they share a size)."""
        group: list[tuple[int, float, np.ndarray]] = []
        for idx, t, rgb in iter_frames(path, every):
            group.append((idx, t, rgb))
            if len(group) >= batch_size:
                yield detect(group)
                group = []
        if group:
            yield detect(group)

    def detect(group) -> list[tuple[dict, np.ndarray | None]]:
        out: list[tuple[dict, np.ndarray | None]] = []
        for (idx, t, rgb), (faces, crops) in zip(group, model.align_batch([g[2] for g in group], aligned),
                                                 strict=True):
            if people is not None and faces and faces[0] is not None:
                descriptors.extend(people.embed_faces(rgb, faces))
            if not faces:
                out.append((error_row(name, "no face found", status="no_face", frame=idx, time=t), None))
            for k, (face, crop) in enumerate(zip(faces, crops, strict=True)):
                out.append(({"file": name, "face": k, "frame": idx, "time": t, "_face": face}, crop))
        return out

    try:
        for entries in (prefetch(detected()) if getattr(model, "prefetch", False) else detected()):
            frames += len({r.get("frame") for r, _ in entries})
            for row, crop in entries:
                pending.add(row, crop)
                if pending.full():
                    rows += pending.flush()
    except FerkitError as e:
        return [error_row(name, str(e))]
    rows += pending.flush()
    if frames == 0:
        return [error_row(name, f"Video {name} has no readable frames (empty, truncated or unsupported).")]
    assign_tracks(rows)
    if people is not None:
        from ferkit.inference.people import assign_people

        ok = [i for i, r in enumerate(rows) if r["status"] == "ok"]
        if len(ok) == len(descriptors):                 # --aligned crops have no landmarks: no descriptors
            assign_people(rows, dict(zip(ok, descriptors, strict=True)))
    if smooth > 0:
        smooth_tracks(rows, smooth, model.classes, model.uncertainty_kind, abstain_above)
    return rows


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes a (N, 4) and b (M, 4), x1 y1 x2 y2 -> (N, M)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])                       # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])                       # (N, M, 2)
    inter = np.clip(rb - lt, 0, None).prod(axis=2)                        # (N, M)
    area = lambda x: (x[:, 2] - x[:, 0]).clip(0) * (x[:, 3] - x[:, 1]).clip(0)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def assign_tracks(rows: list[dict], min_iou: float = 0.3) -> None:
    """Set ``row["track"]`` for face rows: greedy IoU matching between consecutive processed frames."""
    frames: dict[int, list[dict]] = {}
    for r in rows:                                   # a processed frame without faces ends every track
        faces = frames.setdefault(r["frame"], [])
        if r["status"] == "ok":
            faces.append(r)
    prev: list[dict] = []
    next_id = 0
    for f in sorted(frames):
        cur = frames[f]
        if cur and any(r["box"] is None for r in cur):                  # aligned input: one face, one track
            for r in cur:
                r["track"] = 0
            prev = []
            continue
        taken_prev, taken_cur = set(), set()
        if prev and cur:
            iou = box_iou(np.array([r["box"] for r in cur]), np.array([r["box"] for r in prev]))
            for flat in np.argsort(-iou, axis=None):
                i, j = np.unravel_index(flat, iou.shape)
                if iou[i, j] < min_iou:
                    break
                if i in taken_cur or j in taken_prev:
                    continue
                cur[i]["track"] = prev[j]["track"]
                taken_cur.add(i)
                taken_prev.add(j)
        for i, r in enumerate(cur):
            if i not in taken_cur:
                r["track"] = next_id
                next_id += 1
            next_id = max(next_id, r["track"] + 1)
        prev = cur


def smooth_tracks(rows: list[dict], tau: float, classes: tuple[str, ...], uncertainty_kind: str,
                  abstain_above: float | None) -> None:
    """Replace each tracked row's prediction by the certainty-weighted exponential average (module doc)."""
    tracks: dict[int, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok" and r["track"] is not None:
            tracks.setdefault(r["track"], []).append(r)
    for members in tracks.values():
        members.sort(key=lambda r: r["frame"])
        num = np.zeros(len(classes))
        den = u_acc = 0.0
        t_prev = None
        for r in members:
            p = np.array([r["probs"][c] for c in classes])                   # (C,)
            u = float(r["uncertainty"])
            decay = 1.0 if t_prev is None else float(np.exp(-(r["time"] - t_prev) / tau))
            w = max(1.0 - u, 1e-3)
            num = num * decay + w * p
            den = den * decay + w
            u_acc = u_acc * decay + w * u
            t_prev = r["time"]
            p_s = num / den
            u_s = u_acc / den if uncertainty_kind == "evidential" else 1.0 - float(p_s.max())
            set_prediction(r, p_s, u_s, classes, abstain_above)
