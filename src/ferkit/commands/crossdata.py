"""`ferkit crossdata`: the train-on-A / test-on-B accuracy matrix of several checkpoints and datasets.

    ferkit crossdata runs/rafdb runs/affectnet --datasets rafdb:/data/RAF-DB ckplus:/data/CK+ [--out DIR]

Labels are compared through canonical names: probabilities of model classes a dataset lacks are dropped
and renormalised; images of classes the model lacks are excluded and counted per class (crossdata.json).
Datasets without a fixed split of the requested name (CK+, Oulu-CASIA) are used whole.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit crossdata --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('train-on-A / test-on-B accuracy matrix',
     'ferkit crossdata runs/raf runs/affectnet --datasets rafdb:/data/RAF-DB/basic affectnet:/data/AffectNet'),
    ('on the validation splits, written to a folder',
     'ferkit crossdata runs/raf runs/affectnet --datasets rafdb:/data/RAF-DB/basic affectnet:/data/AffectNet --split val --out runs/cross'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("crossdata", help="train-on-A / test-on-B accuracy matrix (CSV + heat map)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="checkpoint files or run folders (one row each)")
    p.add_argument("--datasets", nargs="+", required=True, metavar="NAME:PATH",
                   help="test datasets (one column each); 'synthetic' alone renders SynthFER in memory")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="split to test on where the dataset has it (default test; otherwise all images)")
    p.add_argument("--out", default="runs/crossdata", help="output folder (default runs/crossdata)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def run(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from ferkit.report.crossdata import crossdata_matrix, write_crossdata

    result = crossdata_matrix(args.checkpoints, args.datasets, args.split, args.batch_size, args.device,
                              progress=not os.environ.get("FERKIT_NO_PROGRESS"))
    paths = write_crossdata(args.out, result)
    width = max(len(r) for r in result["rows"]) + 2
    print("accuracy over shared classes (rows: trained on; columns: tested on)")
    print(" " * width + "".join(f"{c:>14}" for c in result["columns"]))
    for label, values in zip(result["rows"], result["accuracy"], strict=True):
        print(f"{label:<{width}}" + "".join(f"{v:>14.4f}" if np.isfinite(v) else f"{'-':>14}" for v in values))
    for cell in result["cells"]:
        if cell["excluded_counts"]:
            print(f"  {result['rows'][cell['row']]} on {cell['dataset']}: excluded "
                  + ", ".join(f"{k} {v}" for k, v in cell["excluded_counts"].items()) + " (classes the model lacks)")
    print(f"matrix: {paths['accuracy_csv']}  heat map: {paths['heatmap']}")
    return 0
