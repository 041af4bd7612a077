"""`ferkit align INPUT... --out DIR`: detect faces and write 5-point aligned crops in bulk.

Writes one PNG per face mirroring the input names (``DIR/<relative path>.png``, or ``<name>_<k>.png``
for every face with ``--all-faces``), and ``DIR/faces.csv`` with one row per face (file, aligned,
face, score, box "x1 y1 x2 y2", landmarks "x y" x5, error). Images with no face get a row saying so and
are listed at the end; unreadable files get one line each on stderr and an error row. The exit code is
1 when any file could not be read, 0 otherwise (images without a face are reported, not failures).
"""

from __future__ import annotations

import argparse
import sys

#: shown at the end of `ferkit align --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('detect, align to 112 px and write faces.csv',
     'ferkit align photos/ --out aligned/'),
    ('grey 48 px crops of every face, as FER2013 models expect',
     'ferkit align photos/ --out aligned48/ --size 48 --gray --all-faces'),
)

def register(sub) -> argparse.ArgumentParser:
    from ferkit.data.detectors import DETECTORS

    p = sub.add_parser("align", help="detect faces and write aligned crops (MTCNN or face-api tiny, 5-point similarity)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders (recursive)")
    p.add_argument("--out", required=True, help="output folder for crops and faces.csv")
    p.add_argument("--size", type=int, default=112, help="crop side in pixels (default 112)")
    p.add_argument("--template", default="default", help="alignment template: default (ArcFace) | wide")
    p.add_argument("--gray", action="store_true", help="write single-channel grayscale crops")
    p.add_argument("--all-faces", action="store_true", help="write every face, not only the largest")
    p.add_argument("--min-face", type=int, default=20, help="smallest face side searched, in pixels (mtcnn)")
    p.add_argument("--detector", default="mtcnn", choices=DETECTORS,
                   help="face detector: mtcnn (default) or tiny, face-api's tiny detector with its 68-point "
                        "landmarks (faster; finds fewer faces; `ferkit install face-api` once: docs/detection.md)")
    p.add_argument("--detector-size", type=int, default=416, metavar="PX",
                   help="--detector tiny: its square input side, a multiple of 32 (default 416)")
    p.add_argument("--device", default="cpu", help="device for the detector (cpu | cuda)")
    return p


def run(args) -> int:
    import csv
    from pathlib import Path

    import cv2

    from ferkit.data.detectors import make_detector
    from ferkit.data.faces import align_face, template_landmarks
    from ferkit.data.io import read_image
    from ferkit.errors import FerkitError, ImageReadError
    from ferkit.inference.inputs import expand_inputs, nothing_found, unique_outputs

    template_landmarks(args.size, args.template)            # unknown template names fail before any work
    detector = make_detector(args.detector, device=args.device, min_face_size=args.min_face,
                             input_size=args.detector_size)  # so do missing weights and bad sizes
    if args.size < 16:
        raise FerkitError(f"--size {args.size} is too small; use at least 16 pixels.")
    items, notes = expand_inputs(args.inputs)
    for note in notes:
        print(f"ferkit align: {note}", file=sys.stderr)
    if not items:
        raise FerkitError(nothing_found(args.inputs, videos=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed, no_face, written = [], [], 0
    with open(out / "faces.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "aligned", "face", "score", "box", "landmarks", "error"])
        for item, stem in zip(items, unique_outputs(items), strict=True):
            reason = None
            if item.kind == "missing":
                reason = f"{item.path} does not exist; check the path."
            elif item.kind == "video":
                reason = f"{item.path} is a video; align takes images (use `ferkit predict` for videos)."
            else:
                try:
                    image = read_image(item.path)
                except ImageReadError as e:
                    reason = str(e)
            if reason is not None:
                failed.append(item.path)
                print(f"ferkit align: {reason}", file=sys.stderr)
                writer.writerow([str(item.path), "", "", "", "", "", reason])
                continue
            faces = detector.detect(image)
            if not faces:
                no_face.append(item.path)
                writer.writerow([str(item.path), "", "", "", "", "", "no face found"])
                continue
            for k, face in enumerate(faces if args.all_faces else faces[:1]):
                crop = align_face(image, face.landmarks, args.size, args.template)
                name = stem.with_name(f"{stem.name}_{k}.png") if args.all_faces else stem.with_suffix(".png")
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                pixels = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if args.gray else crop[:, :, ::-1]
                if not cv2.imwrite(str(target), pixels):
                    raise FerkitError(f"Could not write {target}; check that the folder is writable.")
                written += 1
                writer.writerow([str(item.path), str(name), k, f"{face.score:.5f}",
                                 " ".join(f"{v:.2f}" for v in face.box),
                                 " ".join(f"{v:.2f}" for v in face.landmarks.reshape(-1)), ""])
    for p in no_face:
        print(f"ferkit align: no face found in {p}", file=sys.stderr)
    print(f"aligned {written} face(s) from {len(items)} input(s) into {out}; "
          f"{len(no_face)} without a face, {len(failed)} unreadable (see {out / 'faces.csv'}).")
    return 1 if failed else 0
