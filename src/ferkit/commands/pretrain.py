"""`ferkit pretrain resnet18|clip`: train stand-ins for the pretrained weights the methods start from."""

from __future__ import annotations

import argparse
import importlib

_MODULES = {"resnet18": "ferkit.pretrain.resnet", "clip": "ferkit.pretrain.clip"}
_HELP = {"resnet18": "ResNet-18 on face identity classification (DICE-FER's CASIA-WebFace start), "
                     "written as a torchvision-layout .pth for --backbone-weights",
         "clip": "a CLIP trained contrastively on captioned faces (UA-FER's CLIP start), written as an "
                 "open_clip checkpoint for --clip-path"}



#: shown at the end of `ferkit pretrain --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ("an identity ResNet-18 for DICE-FER's --backbone-weights",
     'ferkit pretrain resnet18 --out resnet18_faceid.pth'),
    ("a tiny CLIP for UA-FER's --clip-path, trained on expression captions",
     'ferkit pretrain clip --out clip_tiny_faces.pt --captions expression'),
)

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pretrain", help="pretrain the networks DICE-FER / UA-FER start from, on data disjoint from your test set",
        description="Train the kind of network a method starts from, on identities disjoint from the ones you "
                    "evaluate on, and write it in the format the real pretrained weights ship in.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    from ferkit.pretrain import KINDS

    for kind in KINDS:
        try:
            mod = importlib.import_module(_MODULES[kind])
        except ModuleNotFoundError as e:   # a kind not installed in this build is simply not offered
            if e.name == _MODULES[kind]:
                continue
            raise
        kp = kinds.add_parser(kind, help=_HELP[kind], description=_HELP[kind])
        mod.add_arguments(kp)
        kp.set_defaults(_pretrain_run=mod.run)
        kp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    return args._pretrain_run(args)
