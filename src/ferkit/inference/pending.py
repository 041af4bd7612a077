"""Rows waiting for their batch of faces: photos and video frames both queue faces here, and a full
batch goes through the model in one forward pass (``FERModel.predict_crops``)."""

from __future__ import annotations

import numpy as np

from ferkit.inference.rows import face_row


class PendingFaces:
    """Rows waiting for their batch: ``add`` rows (with a crop when they are faces), ``flush`` in order."""

    def __init__(self, model, batch_size: int, abstain_above: float | None):
        self.model, self.batch_size, self.abstain_above = model, batch_size, abstain_above
        self.rows: list[dict] = []
        self.crops: list[np.ndarray] = []

    def add(self, row: dict, crop: np.ndarray | None = None) -> None:
        if crop is not None:
            row["_crop"] = len(self.crops)
            self.crops.append(crop)
        self.rows.append(row)

    def full(self) -> bool:
        return len(self.crops) >= self.batch_size

    def flush(self) -> list[dict]:
        rows, crops = self.rows, self.crops
        self.rows, self.crops = [], []
        res = self.model.predict_crops(crops, self.batch_size) if crops else {}
        out = []
        for row in rows:
            if "_crop" not in row:
                out.append(row)
                continue
            i = row.pop("_crop")
            out.append(face_row(row, row.pop("_face"), res["probs"][i], float(res["uncertainty"][i]),
                                self.model.classes, self.abstain_above))
        return out
