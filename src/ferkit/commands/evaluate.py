"""`ferkit evaluate`: metrics, predictions, plots and a self-contained HTML report for a trained model.

    ferkit evaluate CHECKPOINT --dataset NAME --data-path PATH [--split test] [--fold K | --folds all]
                    [--out DIR] [--batch-size B] [--abstain-above U]
    ferkit evaluate --method uafer --zero-shot --clip-path ViT-B-16.pt --dataset NAME --data-path PATH

CHECKPOINT is a .safetensors file or a run folder (checkpoints/best.safetensors, else last). Without
--dataset the checkpoint's own data config is used (for in-memory SynthFER: the same rendering's test
split). With --folds all, a folder of per-fold runs (fold_<k>/ or fold<k>/) is evaluated fold by fold;
a single checkpoint is evaluated on every fold's test split. Writes metrics.json, predictions.csv, PNG
plots and report.html into --out.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit evaluate --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('metrics, plots, predictions.csv and report.html on the test split',
     'ferkit evaluate runs/base --out runs/base/eval'),
    ('the built-in model on a dataset in its shipped layout',
     'ferkit evaluate fer-minixception --dataset rafdb --data-path /data/RAF-DB/basic'),
    ("the embeddings against a real face recognizer's (linear CKA, similarity rank correlation)",
     'ferkit evaluate runs/dicefer --dataset rafdb --data-path /data/RAF-DB/basic --identity-reference dlib-resnet'),
    ("CLIP zero-shot, UA-FER's prompts",
     'ferkit evaluate --method uafer --zero-shot --clip-path ViT-B-16.pt --dataset rafdb --data-path /data/RAF-DB/basic'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint: metrics, predictions, plots, HTML report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint or a run folder")
    p.add_argument("--method", help="with --zero-shot: the method to build (uafer)")
    p.add_argument("--zero-shot", action="store_true", help="UA-FER zero-shot CLIP: no checkpoint, needs --clip-path")
    p.add_argument("--clip-path", help="local CLIP ViT-B/16 weights for --zero-shot")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with --zero-shot: a UA-FER model config field, e.g. --model-option topk=8 (repeatable)")
    p.add_argument("--dataset", help="dataset adapter name (default: the checkpoint's own)")
    p.add_argument("--data-path", help="dataset root as it ships")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="default test")
    p.add_argument("--fold", type=int, help="evaluate on the test split of this subject-independent fold")
    p.add_argument("--folds", choices=["all"], help="every fold; reports mean and std over folds")
    p.add_argument("--num-folds", type=int, help="k of k-fold (default: the checkpoint's, else 10)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset adapter option, e.g. --option image_dir=original (repeatable)")
    p.add_argument("--out", help="output folder (default runs/evaluate/<method>_<dataset>_<split>)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--abstain-above", type=float, metavar="U",
                   help="predictions with uncertainty > U abstain; report their count, coverage and accuracy on the rest")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-leakage", action="store_true", help="skip identity-leakage probes, MIG and t-SNE")
    p.add_argument("--modified-mig-steps", type=int, default=500,
                   help="DICE-FER modified MIG critic steps (0 skips it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the probes' splits and t-SNE")
    p.add_argument("--identity-reference", metavar="NAME",
                   help="compare the model's embeddings with a face recognizer's (dlib-resnet): linear CKA and "
                        "similarity rank correlation with bootstrap intervals and shuffled controls")
    return p


def parse_options(items: list[str]) -> dict:
    """`key=value` strings -> dict (values parsed as YAML scalars)."""
    import yaml

    from ferkit.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Option '{item}' must look like key=value.")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def run(args: argparse.Namespace) -> int:
    import os

    from ferkit.errors import FerkitError
    from ferkit.report.evaluation import HEADLINE
    from ferkit.report.html import fmt
    from ferkit.report.pipeline import evaluate

    if args.zero_shot and (args.method or "uafer") != "uafer":
        raise FerkitError(f"--zero-shot exists for UA-FER only; got --method {args.method}.")
    if (args.method or args.model_option) and not args.zero_shot:
        raise FerkitError("--method and --model-option are only for --zero-shot; a checkpoint already names its "
                          "method and config.")
    if args.fold is not None and args.folds:
        raise FerkitError("Pass either --fold K or --folds all, not both.")
    result = evaluate(args.checkpoint, dataset=args.dataset, data_path=args.data_path, split=args.split,
                      fold=args.fold, folds=args.folds, num_folds=args.num_folds, out=args.out,
                      batch_size=args.batch_size, abstain_above=args.abstain_above, device=args.device,
                      options=parse_options(args.option), zero_shot=args.zero_shot, clip_path=args.clip_path,
                      model_options=parse_options(args.model_option), leakage=not args.no_leakage, modified_mig_steps=args.modified_mig_steps, seed=args.seed,
                      identity_reference=args.identity_reference,
                      progress=not os.environ.get("FERKIT_NO_PROGRESS"))
    h, folds = result.metrics["headline"], result.metrics.get("folds")
    names = dict(HEADLINE)
    print(f"{result.metrics['num_samples']} images evaluated")
    for key in ("accuracy", "mean_class_accuracy", "macro_f1", "ece", "aurc", "auroc_error",
                "abstain_coverage", "abstain_accuracy", "identity_probe_accuracy", "mig", "modified_mig",
                "identity_reference_cka", "identity_reference_rsa"):
        if h.get(key) is None:
            continue
        line = f"  {names[key]:<48} {fmt(h[key])}"
        if folds and key in folds["mean"]:
            line += f"   (mean {fmt(folds['mean'][key])} ± {fmt(folds['std'][key])} over {folds['num_folds']} folds)"
        print(line)
    ab = result.metrics.get("abstention")
    if ab:
        print(f"  abstained on {ab['abstained']} of {ab['abstained'] + ab['answered']} images (uncertainty > "
              f"{ab['threshold']:g})")
    cross = result.metrics.get("crossdata")
    if cross and cross["num_excluded"]:
        print("  excluded (classes the model lacks): "
              + ", ".join(f"{k} {v}" for k, v in cross["excluded_counts"].items()))
    ref = result.metrics.get("identity_reference")
    if ref:
        print(f"  {ref['reference']}: a face in {ref['num_with_face']} of {ref['num_images']} images"
              + (f" ({ref['reason']})" if ref.get("reason") else ""))
        for key, what in (("expression_embedding", "expression embedding"), ("identity_embedding", "identity code")):
            if key in ref:
                a = ref[key]
                for stat, label in (("cka", "CKA"), ("similarity_rank_correlation", "rank corr.")):
                    s = a[stat]
                    print(f"    {what} {label} {fmt(s['value'])} [{fmt(s['interval'][0])}, {fmt(s['interval'][1])}], "
                          f"shuffled {fmt(s['shuffled_mean'])} (p {fmt(s['p_shuffled'])})")
    print(f"report: {result.paths['report']}")
    return 0
