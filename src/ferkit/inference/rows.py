"""Prediction rows: one dict per face (or per input that produced no face), and their writers.

Every row has the same keys:
    file         the input's path (or "<array i>" / "<image i>" for in-memory images)
    frame, time  frame index and seconds for videos, else None
    face         index of the face in its image/frame (largest first), None when there is no face
    track        face track id within a video (boxes matched by IoU between processed frames), else None
    person       person id within a video when predicting with --people (tracks joined by identity), else None
    box          [x1, y1, x2, y2] pixels, landmarks [[x, y] x5] (eyes, nose, mouth corners), face_score
    probs        {class: probability}, label (argmax), confidence (max probability)
    uncertainty  evidential u (UA-FER) or 1 - max probability (see FERModel.info()["uncertainty"])
    abstained    uncertainty > --abstain-above (False when no threshold is given)
    status       "ok" | "no_face" | "failed";  error: None, or one sentence saying what went wrong
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

KEYS = ("file", "frame", "time", "face", "track", "person", "box", "landmarks", "face_score", "probs", "label",
        "confidence", "uncertainty", "abstained", "status", "error")


def _blank(file: str, frame: int | None = None, time: float | None = None) -> dict:
    row = dict.fromkeys(KEYS)
    row.update(file=file, frame=frame, time=time, probs={}, abstained=False)
    return row


def error_row(file: str, error: str, status: str = "failed", frame: int | None = None,
              time: float | None = None) -> dict:
    """A row for an input (or frame) that gave no prediction: unreadable ("failed") or faceless ("no_face")."""
    row = _blank(file, frame, time)
    row.update(status=status, error=error)
    return row


def face_row(base: dict, face, probs: np.ndarray, uncertainty: float, classes: tuple[str, ...],
             abstain_above: float | None) -> dict:
    """A row for one classified face. ``base`` holds file/face/frame/time; ``face`` a Face or None."""
    row = _blank(base["file"], base.get("frame"), base.get("time"))
    row["face"] = base.get("face")
    if face is not None:
        row.update(face.to_dict())
        row["face_score"] = row.pop("score")
    set_prediction(row, probs, uncertainty, classes, abstain_above)
    row["status"] = "ok"
    return row


def set_prediction(row: dict, probs: np.ndarray, uncertainty: float, classes: tuple[str, ...],
                   abstain_above: float | None) -> None:
    """Fill probs/label/confidence/uncertainty/abstained from a probability vector (C,)."""
    p = np.asarray(probs, dtype=np.float64)
    k = int(np.argmax(p))
    row["probs"] = {c: round(float(v), 6) for c, v in zip(classes, p, strict=True)}
    row["label"] = classes[k]
    row["confidence"] = round(float(p[k]), 6)
    row["uncertainty"] = round(float(uncertainty), 6)
    row["abstained"] = bool(abstain_above is not None and uncertainty > abstain_above)


def summarise(rows: list[dict]) -> dict:
    """Counts of inputs, faces, faceless inputs, failures and abstentions."""
    files = {r["file"] for r in rows}
    return {"inputs": len(files), "faces": sum(r["status"] == "ok" for r in rows),
            "no_face": sum(r["status"] == "no_face" for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows),
            "abstained": sum(bool(r["abstained"]) for r in rows)}


def write_rows(rows: list[dict], path: str | Path, classes: tuple[str, ...], info: dict | None = None) -> Path:
    """Write rows as JSON ({"model", "summary", "rows"}) or CSV (one column per class), by suffix."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".json":
        doc = {"model": info or {}, "summary": summarise(rows), "rows": rows}
        p.write_text(json.dumps(doc, indent=1))
        return p
    if p.suffix.lower() != ".csv":
        from ferkit.errors import FerkitError

        raise FerkitError(f"--out {p} must end in .json or .csv.")
    head = [k for k in KEYS if k != "probs"]
    split = head.index("face_score") + 1
    cols = head[:split] + [f"p_{c}" for c in classes] + head[split:]
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            flat = {k: r[k] for k in head}
            flat["box"] = " ".join(f"{v:.2f}" for v in r["box"]) if r["box"] else ""
            flat["landmarks"] = " ".join(f"{x:.2f} {y:.2f}" for x, y in r["landmarks"]) if r["landmarks"] else ""
            for c in classes:
                flat[f"p_{c}"] = r["probs"].get(c, "")
            w.writerow(["" if flat[c] is None else flat[c] for c in cols])
    return p


def read_rows_csv(path: str | Path) -> list[dict]:
    """Read a CSV written by ``write_rows`` back as a list of string-valued dicts (for checks and tools)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
