"""Drawing predictions: boxes, labels and uncertainty on images, and annotated videos (WebM).

Confident faces get a green box, abstained ones orange; the caption reads "label p=0.93 u=0.07".
Images are written as PNG. Videos are written as WebM with VP8, which every current browser plays (mp4v,
MPEG-4 Part 2, is not played by browsers, and the opencv-python-headless wheels have no H.264 encoder),
holding the processed frames at the average fps / every.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from ferkit.inference.inputs import InputItem, unique_outputs

GREEN, ORANGE, RED = (40, 200, 60), (255, 150, 0), (230, 40, 40)
#: annotated videos: suffix and OpenCV FourCC (VP8 in WebM: browser-playable, and encodes ~3x faster than VP9)
VIDEO_SUFFIX, VIDEO_FOURCC = ".webm", "VP80"


def draw_rows(image: np.ndarray, rows: list[dict]) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) RGB uint8 with each row's box, landmarks and caption drawn."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    scale = max(0.4, max(h, w) / 1000)
    for r in rows:
        if r["status"] != "ok":
            if r["status"] == "no_face":
                cv2.putText(out, "no face", (5, int(20 * scale) + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, RED,
                            thick, cv2.LINE_AA)
            continue
        color = ORANGE if r["abstained"] else GREEN
        caption = f"{'abstain: ' if r['abstained'] else ''}{r['label']} p={r['confidence']:.2f} u={r['uncertainty']:.2f}"
        if r["box"] is None:
            x1, y1, x2, y2 = 0, 0, w - 1, h - 1
        else:
            x1, y1, x2, y2 = (int(round(v)) for v in r["box"])
            for x, y in r["landmarks"]:
                cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, color, -1, cv2.LINE_AA)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else min(h - 1, y2 + th + 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty + base), color, -1)
        cv2.putText(out, caption, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def annotate_outputs(rows: list[dict], items: list[InputItem], out_dir: str | Path, every: int = 1) -> list[Path]:
    """Write an annotated copy of every readable input into ``out_dir`` (names mirror the inputs)."""
    import cv2

    from ferkit.data.io import read_image
    from ferkit.errors import FerkitError

    out = Path(out_dir)
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    written: list[Path] = []
    for item, stem in zip(items, unique_outputs(items), strict=True):
        mine = by_file.get(str(item.path), [])
        if not mine or all(r["status"] == "failed" for r in mine):
            continue
        try:
            if item.kind == "video":
                target = out / stem.with_suffix(VIDEO_SUFFIX)
                _annotate_video(item.path, mine, target, every)
            else:
                target = out / stem.with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                drawn = draw_rows(read_image(item.path), mine)
                if not cv2.imwrite(str(target), drawn[:, :, ::-1]):
                    raise FerkitError(f"Could not write {target}; check that the folder is writable.")
            written.append(target)
        except FerkitError as e:
            print(f"ferkit predict: annotation of {item.path} failed: {e}", file=sys.stderr)
    return written


def _annotate_video(path: Path, rows: list[dict], target: Path, every: int) -> None:

    from ferkit.errors import FerkitError
    from ferkit.inference.video import iter_frames, video_info

    fps, _ = video_info(path)
    by_frame: dict[int, list[dict]] = {}
    for r in rows:
        by_frame.setdefault(r["frame"], []).append(r)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for idx, _t, rgb in iter_frames(path, every):
            if writer is None:
                h, w = rgb.shape[:2]
                writer = open_writer(target, max(fps / every, 1.0), (w, h))
                if not writer.isOpened():
                    raise FerkitError(f"Could not write the video {target}; check the folder and OpenCV's codecs.")
            writer.write(draw_rows(rgb, by_frame.get(idx, []))[:, :, ::-1])
    finally:
        if writer is not None:
            writer.release()


@contextlib.contextmanager
def _stderr_muted():
    """Silence file descriptor 2 for a moment: OpenCV prints a 'tag VP80 is not supported' note straight to
    it while it picks the WebM tag itself; whether the writer opened is checked by the caller."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_writer(target: Path, fps: float, size: tuple[int, int]):
    """A cv2.VideoWriter for a browser-playable annotated video (:data:`VIDEO_FOURCC` in WebM)."""
    import cv2

    with _stderr_muted():
        return cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
