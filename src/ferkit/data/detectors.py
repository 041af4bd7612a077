"""The face detectors ``ferkit predict``, ``serve`` and the Python API choose from (``--detector``).

- ``mtcnn`` (default): MTCNN with facenet-pytorch's weights (``data/faces.py``), box and five landmarks;
  ``--min-face`` sets the smallest face it searches for.
- ``tiny``: face-api's tiny face detector with its tiny 68-point landmark net (``data/tiny_face.py``), five
  landmarks taken from the 68; ``--detector-size`` sets its square input (416 default, multiple of 32). Its
  weights come from ``ferkit install face-api``. How it compares with MTCNN (recall, box agreement, speed) on
  real photos is on the docs' detection page.
"""

from __future__ import annotations

from ferkit.errors import FerkitError

DETECTORS = ("mtcnn", "tiny")


def make_detector(kind: str = "mtcnn", device: str = "cpu", min_face_size: int | str = 20, input_size: int = 416):
    """A detector with ``detect(image)`` and ``detect_batch(images)`` returning ``Face`` lists, largest first."""
    if kind == "mtcnn":
        from ferkit.data.faces import FaceDetector

        return FaceDetector(device=device, min_face_size=min_face_size)
    if kind == "tiny":
        from ferkit.data.tiny_face import TinyFaceDetector

        return TinyFaceDetector(input_size=input_size)
    raise FerkitError(f"Unknown face detector '{kind}'; use one of {', '.join(DETECTORS)}.")


def detector_label(kind: str) -> str:
    return {"mtcnn": "MTCNN", "tiny": "face-api tiny"}.get(kind, kind)
