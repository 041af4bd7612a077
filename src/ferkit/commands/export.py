"""`ferkit export CHECKPOINT --format onnx --out model.onnx`: a deployable model with its metadata.

The ONNX graph takes preprocessed faces "image" (batch, C, S, S) and returns "probs", "uncertainty"
(and "embedding" where the model has one), with a dynamic batch axis: the expression path only, so a
DICE-FER export holds no identity-encoder weights unless `--outputs identity` adds its identity code. The checkpoint's classes, preprocessing and
method are stored in the model's metadata_props, so `ferkit predict model.onnx INPUT...` runs it with
onnxruntime without the checkpoint. After writing, the export is checked against PyTorch on a random
batch and the largest absolute difference per output is printed (it must stay below 1e-4).
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit export --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('ONNX with probabilities and metadata, parity-checked with onnxruntime',
     'ferkit export runs/base --out model.onnx'),
    ('a DICE-FER model with its identity code too (for identity audits on the exported model)',
     'ferkit export runs/dicefer --out dicefer_id.onnx --outputs identity'),
    ('the same, opset 18, skipping the onnxruntime check',
     'ferkit export runs/base --out model18.onnx --opset 18 --no-check'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (probabilities, uncertainty, metadata)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a ferkit .safetensors checkpoint or run folder")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch parity check")
    p.add_argument("--outputs", nargs="+", default=[], metavar="NAME",
                   help="optional outputs that need networks of their own: identity (DICE-FER's identity code); "
                        "default: the expression path only")
    return p


def run(args) -> int:
    from ferkit.errors import FerkitError
    from ferkit.export import export_onnx

    info = export_onnx(args.checkpoint, args.out, opset=args.opset, check=not args.no_check,
                       outputs=tuple(args.outputs))
    print(f"wrote {info['path']} (outputs: {', '.join(info['outputs'])}; uncertainty: {info['uncertainty_kind']}; "
          f"opset {info['opset']})")
    if "max_abs_diff" in info:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in info["max_abs_diff"].items())
        print(f"parity with PyTorch (max |difference|): {diffs}")
        worst = max(info["max_abs_diff"].values())
        if worst >= 1e-4:
            raise FerkitError(f"The ONNX model {info['path']} differs from PyTorch by {worst:.2e} (>= 1e-4); "
                              "do not ship it, and report the model and opset.")
    return 0
