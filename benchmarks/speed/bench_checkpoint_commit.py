"""What the crash-safe checkpoint commit costs: ``save_checkpoint`` against two plain atomic writes, side by side.

    .venv/bin/python benchmarks/speed/bench_checkpoint_commit.py [--model resnet18] [--repeats 5] [--folder DIR]

Both copy the weights off the model and write them (safetensors) and the resume state (torch.save) of a model with one Adam step taken
(ResNet-18: 45 MB + 90 MB). The reference is the layout before the manifest: each file to a temporary name,
fsynced, renamed. ``save_checkpoint`` stages both, fsyncs them and the folder, renames a manifest (the commit
point) and then both files, fsyncing the folder after each step. Runs alternate, so load on a shared machine
hits both alike; the medians and their ratio are printed. The folder's file system decides what an fsync costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _reference_save(path: Path, net, header: dict, state: dict) -> None:
    """The earlier layout: two independent atomic writes (state first, then weights) of the same copies."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}

    for target, write in ((path.with_name(path.name + ".state.pt"), lambda p: torch.save(state, p)),
                          (path, lambda p: save_file(tensors, str(p), metadata=header))):
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)


def main() -> int:
    import json

    import torch
    import torchvision

    from ferkit.engine.checkpoint import save_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", help="a torchvision model name (default resnet18)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()

    net = getattr(torchvision.models, args.model)()
    opt = torch.optim.Adam(net.parameters())
    net(torch.rand(2, 3, 64, 64)).sum().backward()
    opt.step()
    state = {"optimizers": {"train": {"adam": opt.state_dict()}}, "position": {"epoch": 1}}
    header = {"ferkit": json.dumps({"format": "ferkit-checkpoint", "format_version": 1, "method": "x"})}
    times: dict[str, list[float]] = {"two atomic writes": [], "save_checkpoint (commit)": []}
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        for _ in range(args.repeats):
            t = time.perf_counter()
            _reference_save(folder / "ref.safetensors", net, header, state)
            times["two atomic writes"].append(time.perf_counter() - t)
            t = time.perf_counter()
            save_checkpoint(folder / "new.safetensors", {"net": net}, {"method": "x"}, state)
            times["save_checkpoint (commit)"].append(time.perf_counter() - t)
        size = sum(p.stat().st_size for p in folder.glob("ref.safetensors*")) / 2**20
    print(f"{args.model}: {size:.0f} MiB per save, {args.repeats} saves each, alternating")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:<26} median {med[k]:.3f} s  ({', '.join(f'{x:.3f}' for x in v)})")
    print(f"  ratio commit / reference: {med['save_checkpoint (commit)'] / med['two atomic writes']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
