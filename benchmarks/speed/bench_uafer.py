"""UA-FER training step, ViT-B/16 at 224 px: ferkit's step against the released code's way, side by side.

Both sides train the same architecture (random weights, RAF-DB settings: fix_layer 2, alpha 0.1, top-k 16,
lamda_kd 1) on the same batch, forward + backward + AdamW step:

* reference: how the released code runs a step (engine_fer.py train): fp32, no autocast; the frozen text
  tower re-encodes the prompts every step; the full student tower runs sequence-first as OpenAI's CLIP
  blocks do; a second, independently loaded CLIP runs the whole teacher image tower in fp32; AdamW over
  the layer-decay groups (PyTorch's default, unfused).
* ferkit: ``UAFERMethod.train_step`` with bf16 autocast: cached text embeddings, frozen lower blocks run
  once under no_grad and shared with the teacher (bitwise-equal weights, same input), teacher in bf16 with
  its last block evaluated for the CLS query only, fused AdamW. Measured twice: with the teacher cache off
  (every step runs the teacher: the first epoch) and warm (the batch was seen before: under the RAF-DB
  recipe an image reaches the teacher as one of two tensors, so from the third epoch on nearly every
  teacher output is remembered). The 50-epoch figure weighs them as the RAF-DB recipe does: the expected
  misses over all epochs are 1 + 1/2 + 1/4 + ... = 2 epochs' worth.

Each side runs in its own subprocess (so peak memory is its own): the step time is the median over
``--steps`` steps after one warm-up step; memory is the peak resident set sampled during the timed steps
and the process's ru_maxrss. Usage: ``python benchmarks/speed/bench_uafer.py [--batch 8] [--steps 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the resident set every 5 ms while active."""

    def __enter__(self):
        self.peak, self.running = _rss_mb(), True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while self.running:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def _batch(batch: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, 224, 224, generator=g), torch.randint(0, 7, (batch,), generator=g)


def run_ferkit(batch: int, steps: int, cache: str = "off", precision: str = "fp32") -> dict:
    import torch

    from ferkit.config import build_experiment
    from ferkit.data.labels import RAFDB
    from ferkit.engine.devices import amp_dtype
    from ferkit.engine.method import StepContext
    from ferkit.methods.uafer import UAFERMethod

    cfg = build_experiment("uafer", train={"epochs": 50, "lr": 1e-4, "seed": 0, "precision": precision},
                           model={"variant": "released", "alpha": 0.1, "topk": 16, "fix_layer": 2,
                                  "teacher_cache": cache})
    method = UAFERMethod(cfg, RAFDB, torch.device("cpu"))
    phase = method.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), amp_dtype(torch.device("cpu"), precision))
    ctx.iters_per_epoch = 100
    x, y = _batch(batch)
    b = {"image": x.contiguous(memory_format=torch.channels_last), "expression": y}
    method.train_mode(phase)
    method.train_step(phase, b, ctx)                   # warm-up (builds the teacher; fills the cache when on)
    times = []
    with PeakRSS() as mem:
        for i in range(steps):
            ctx.iteration = i + 1
            t0 = time.perf_counter()
            method.train_step(phase, b, ctx)
            times.append(time.perf_counter() - t0)
    return {"times": times, "peak_step_mb": mem.peak}


def run_reference(batch: int, steps: int) -> dict:
    import open_clip
    import torch
    import torch.nn.functional as F

    from ferkit.methods.uafer_optim import lr_at, param_groups, set_lr
    from ferkit.models.clip import CLIP_SIZES

    spec = CLIP_SIZES["ViT-B-16"]
    torch.manual_seed(0)
    student = open_clip.model.CLIP(spec["embed_dim"], spec["vision_cfg"], spec["text_cfg"], quick_gelu=True)
    teacher = open_clip.model.CLIP(spec["embed_dim"], spec["vision_cfg"], spec["text_cfg"], quick_gelu=True)
    teacher.load_state_dict(student.state_dict())
    teacher.train()
    for p in list(student.parameters()) + list(teacher.parameters()):
        p.requires_grad_(False)
    groups = param_groups(student.visual, 2, 5e-4, 0.65)
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.AdamW(groups, lr=1e-4)
    tokens = open_clip.tokenizer.tokenize(["surprise", "fear", "disgusted", "happy", "sad", "anger", "neutral"])
    v = student.visual
    for tower in (student.visual, teacher.visual):       # OpenAI CLIP's blocks run sequence-first (L, B, W)
        tower.transformer.batch_first = False
        for blk in tower.transformer.resblocks:
            blk.attn.batch_first = False

    def step(x, y, t):
        set_lr(opt, lr_at(t, 1e-4, 1e-8, 5, 50))
        opt.zero_grad()
        with torch.no_grad():
            text = student.encode_text(tokens)
        text = text / text.norm(dim=-1, keepdim=True)
        h = v.conv1(x).flatten(2).transpose(1, 2)
        h = torch.cat([v.class_embedding + torch.zeros(h.shape[0], 1, h.shape[-1]), h], 1) + v.positional_embedding
        h = v.ln_post(v.transformer(v.ln_pre(h)))
        dist = h[:, 0] @ v.proj
        dist = dist / dist.norm(dim=-1, keepdim=True)
        pred = h[:, 1:] @ v.proj
        pred = pred / pred.norm(dim=-1, keepdim=True)
        s1 = torch.topk(pred @ text.t(), k=16, dim=1)[0].mean(1)
        s2 = dist @ text.t()
        logits = 0.1 * s1 / s1.norm(dim=-1, keepdim=True) + 0.9 * s2 / s2.norm(dim=-1, keepdim=True)
        alpha = F.relu(logits) + 1
        p = alpha / alpha.sum(1, keepdim=True)
        rank = ((torch.eye(7)[y] - p) ** 2).sum(1).mean()
        with torch.no_grad():
            tea = teacher.visual(x)
        loss = rank + 1.0 * F.l1_loss(dist, tea.float())
        loss.backward()
        opt.step()

    x, y = _batch(batch)
    step(x, y, 0.0)
    times = []
    with PeakRSS() as mem:
        for i in range(steps):
            t0 = time.perf_counter()
            step(x, y, (i + 1) / 100)
            times.append(time.perf_counter() - t0)
    return {"times": times, "peak_step_mb": mem.peak}


def _child(side: str, batch: int, steps: int, threads: int, precision: str) -> None:
    import torch

    torch.set_num_threads(threads)
    if side == "reference":
        out = run_reference(batch, steps)
    else:
        out = run_ferkit(batch, steps, cache="on" if side == "ferkit-warm" else "off", precision=precision)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp32"),
                    help="ferkit's precision (default fp32: what training uses unless told otherwise)")
    ap.add_argument("--child", choices=["ferkit", "ferkit-warm", "reference"])
    ap.add_argument("--store", action="store_true", help="store the result in benchmarks/results/speed/uafer_step.json")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.batch, args.steps, args.threads, args.precision)
        return
    results = {}
    for side in ("reference", "ferkit", "ferkit-warm"):
        proc = subprocess.run([sys.executable, __file__, "--child", side, "--batch", str(args.batch),
                               "--steps", str(args.steps), "--threads", str(args.threads),
                               "--precision", args.precision],
                              capture_output=True, text=True, check=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        results[side] = json.loads(line[len("RESULT "):])
    ref, ours, warm = results["reference"], results["ferkit"], results["ferkit-warm"]
    t_ref, t_ours, t_warm = (statistics.median(r["times"]) for r in (ref, ours, warm))
    import torch

    from ferkit.engine.devices import amp_dtype, describe_precision

    ours_precision = describe_precision(amp_dtype(torch.device("cpu"), args.precision))
    print(f"UA-FER ViT-B/16 training step, 224 px, batch {args.batch}, {args.threads} threads, "
          f"median of {args.steps} steps; ferkit in {ours_precision} (--precision {args.precision})")
    print(f"{'':36}{'step s':>10}{'peak RSS in steps MB':>24}{'ru_maxrss MB':>16}")
    for name, r, t in (("released way (fp32)", ref, t_ref), ("ferkit, teacher run", ours, t_ours),
                       ("ferkit, teacher output remembered", warm, t_warm)):
        print(f"{name:36}{t:>10.2f}{r['peak_step_mb']:>24.0f}{r['maxrss_mb']:>16.0f}")
    t_50 = (2 * t_ours + 48 * t_warm) / 50
    print(f"speed ratio (reference / ferkit): {t_ref / t_ours:.2f}x with the teacher run (first epoch), "
          f"{t_ref / t_warm:.2f}x remembered; over 50 RAF-DB epochs {t_ref / t_50:.2f}x")
    if args.store:
        from stored import store

        store("uafer_step", {"batch": args.batch, "steps": args.steps, "precision": ours_precision,
                             "step_s": {"released way (fp32)": t_ref, "ferkit, teacher run": t_ours,
                                        "ferkit, teacher output remembered": t_warm},
                             "peak_rss_in_steps_mb": {k: r["peak_step_mb"] for k, r in results.items()},
                             "ratio_reference_over_ferkit": {"teacher run": t_ref / t_ours,
                                                             "teacher remembered": t_ref / t_warm,
                                                             "50 RAF-DB epochs": t_ref / t_50}}, threads=args.threads)


if __name__ == "__main__":
    main()
