"""`ferkit import MODEL --spec SPEC --out model.safetensors`: an external FER model as a ferkit checkpoint.

MODEL is an ONNX classifier, a state dict of a torchvision ResNet-18/34/50 with a linear head
(.pth/.pt/.safetensors), or a built-in model's name (no --spec then). SPEC is a YAML/JSON spec file, or
the name of a spec that ships with ferkit (`ferkit models` lists them): input size, colour order,
mean/std, resize, crop, logits or probabilities, and the class names in the model's order. The model
is run once on a test batch before anything is written. The checkpoint carries the preprocessing and
label space like any ferkit checkpoint, so predict, evaluate, crossdata, serve and export take it. An
ONNX model stays ONNX: it is copied beside the checkpoint as <out stem>.model.onnx (keep both files).
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit import --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('an ONNX classifier and its spec as a ferkit checkpoint',
     'ferkit import enet_b2_7.onnx --spec emotiefflib_enet_b2_7 --out enet.safetensors'),
    ('then use it like any checkpoint',
     'ferkit predict enet.safetensors photo.jpg'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="turn an external model (ONNX, ResNet state dict) + spec into a checkpoint",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an .onnx file, a ResNet state dict, or a built-in model name")
    p.add_argument("--spec", help="a spec file (.yaml/.json) or the name of a shipped spec")
    p.add_argument("--out", required=True, help="the checkpoint to write (.safetensors)")
    return p


def run(args) -> int:
    from ferkit.external.loader import import_model

    info = import_model(args.model, args.spec, args.out)
    print(f"wrote {info['path']} ({info['format']}; classes {', '.join(info['classes'])})")
    if info["onnx_file"]:
        print(f"  the ONNX graph stays beside it as {info['onnx_file']}; keep the two files together")
    top = info["probs"].max(axis=1)
    print(f"  check run on 2 random images: finite probabilities, top p = {', '.join(f'{v:.3f}' for v in top)}")
    return 0
