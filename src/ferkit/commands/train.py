"""`ferkit train`: train a method on a dataset (also under `torchrun --nproc_per_node=N`).

Config precedence, lowest first: the method's defaults < the shipped preset ``ferkit/presets/<method>_<dataset>.yaml``
when there is one (the run log says which, or that none exists)
< ``--config YAML`` < flags (``--epochs``, ``--alpha``...) < ``--set key=value``. With ``--resume DIR``
the run's saved ``config.yaml`` replaces the first three. ``--folds all`` trains every subject-independent
fold into ``OUT/fold<k>`` and prints the mean and standard deviation of the test accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: core flags: dest -> (config key, type)
CORE_FLAGS: dict[str, tuple[str, type]] = {
    "dataset": ("data.dataset", str), "data_path": ("data.data_path", str), "fold": ("data.fold", int),
    "epochs": ("train.epochs", int), "batch_size": ("train.batch_size", int), "lr": ("train.lr", float),
    "out": ("train.out", str), "device": ("train.device", str), "precision": ("train.precision", str),
    "max_steps": ("train.max_steps", int), "limit_batches": ("train.limit_batches", int),
    "seed": ("train.seed", int), "num_workers": ("data.num_workers", int),
    "deterministic": ("train.deterministic", bool), "channels_last": ("train.channels_last", bool),
}

#: method-specific flags: flag -> (config key, type, help). Methods' authors extend this table.
FLAG_TO_KEY: dict[str, tuple[str, type, str]] = {
    "--alpha": ("model.alpha", float, "UA-FER: weight of the fused (MFD) logits"),
    "--topk": ("model.topk", int, "UA-FER: patch tokens kept by top-k selection"),
    "--fix-layer": ("model.fix_layer", int, "UA-FER: CLIP layers kept frozen"),
    "--lamda-kd": ("model.lamda_kd", float, "UA-FER: knowledge-distillation weight"),
    "--lamda-ruc": ("model.lamda_ruc", float, "UA-FER: rank-uncertainty (RUC) weight"),
    "--variant": ("model.variant", str, "UA-FER: released | paper"),
    "--clip-path": ("model.clip_path", str, "UA-FER: local CLIP ViT-B/16 weights"),
    "--zeta-adv": ("model.zeta_adv", float, "DICE-FER: adversarial weight"),
    "--stage1-epochs": ("model.stage1_epochs", int, "DICE-FER: epochs of stage 1 (default --epochs)"),
    "--stage2-epochs": ("model.stage2_epochs", int, "DICE-FER: epochs of stage 2 (default --epochs)"),
    "--stage3-epochs": ("model.stage3_epochs", int, "DICE-FER: epochs of stage 3 (default --epochs)"),
    "--estimator": ("model.estimator", str, "DICE-FER: MI bound dv | jsd | infonce"),
    "--test-encoder": ("model.test_encoder", str, "DICE-FER: E at test time m | mean"),
    "--backbone-weights": ("train.backbone_weights", str, "local pretrained ResNet-18 state dict (no downloads)"),
}



#: shown at the end of `ferkit train --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('the baseline on SynthFER, 8 epochs',
     'ferkit train --method baseline --dataset synthetic --data-path data/synth --epochs 8 --out runs/base'),
    ('DICE-FER on CK+, 10 subject-independent folds, from a face-recognition ResNet-18',
     'ferkit train --method dicefer --dataset ckplus --data-path /data/CK+ --folds all --backbone-weights resnet18_msceleb.pth'),
    ("UA-FER on RAF-DB from OpenAI's CLIP ViT-B/16",
     'ferkit train --method uafer --dataset rafdb --data-path /data/RAF-DB/basic --clip-path ViT-B-16.pt'),
    ('continue a stopped run from its last checkpoint',
     'ferkit train --resume runs/base'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a method (baseline, dicefer, uafer) on a dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", help="baseline | dicefer | uafer (default: from --config or --resume)")
    p.add_argument("--dataset", help="dataset adapter name (`ferkit datasets` lists them); default synthetic")
    p.add_argument("--data-path", help="dataset root as it ships (empty: render SynthFER in memory)")
    p.add_argument("--config", help="YAML file with data/train/model sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.eval_every=2 (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per-process batch size")
    p.add_argument("--lr", type=float)
    p.add_argument("--out", help="run folder (default runs/<method>_<dataset>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from checkpoints/last.safetensors")
    p.add_argument("--fold", type=int, help="subject-independent fold held out as test")
    p.add_argument("--folds", choices=["all"], help="train every fold and report mean and std")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", help="fp32 (default: exact, the reference numbers) | bf16 (autocast: faster on "
                   "GPUs/AMX, changes numbers) | auto (bf16 where the hardware has it natively, else fp32)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (debugging)")
    p.add_argument("--limit-batches", type=int, help="at most this many batches per epoch (debugging)")
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic kernels (train.deterministic): the run log lists ops that have none")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="convolutional weights in channels-last memory (train.channels_last): faster ResNet steps on "
                        "CPUs; numbers move by float rounding, so it is opt-in")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    for flag, (key, tp, help_text) in FLAG_TO_KEY.items():
        p.add_argument(flag, type=tp, dest="flag_" + key.replace(".", "__"), help=f"{help_text} ({key})")
    return p


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _set(d: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def config_dict(args: argparse.Namespace, notes: list[str] | None = None) -> dict:
    """The merged config mapping (before validation) from presets, files, flags and --set; ``notes`` (when
    given) receives the run-log line saying which preset was applied."""
    from ferkit import presets
    from ferkit.config import apply_overrides, load_yaml
    from ferkit.errors import ConfigError

    user = load_yaml(args.config) if args.config else {}
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"Cannot resume: {saved} does not exist; pass the folder of an earlier ferkit train run.")
        d = _merge(load_yaml(saved), user)
    else:
        method = args.method or user.get("method")
        if not method:
            raise ConfigError("No method given; pass --method baseline|dicefer|uafer (or a --config with 'method').")
        dataset = args.dataset or (user.get("data") or {}).get("dataset") or "synthetic"
        d = {"method": method}
        preset = presets.load_preset(method, dataset)
        if preset is not None:
            d = _merge(d, preset)
        if notes is not None:
            notes.append(presets.describe(method, dataset, applied=preset is not None))
        d = _merge(d, user)
        d.setdefault("train", {}).setdefault("out", f"runs/{method}_{dataset}")
    if args.method:
        if args.resume and d.get("method") != args.method:
            raise ConfigError(f"Run {args.resume} was trained with method '{d.get('method')}', not '{args.method}'.")
        d["method"] = args.method
    for dest, (key, _tp) in CORE_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            _set(d, key, value)
    if args.resume and args.out is None:
        _set(d, "train.out", str(args.resume))
    for key, _tp, _h in FLAG_TO_KEY.values():
        value = getattr(args, "flag_" + key.replace(".", "__"), None)
        if value is not None:
            _set(d, key, value)
    return apply_overrides(d, list(args.set))


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ferkit.config import experiment_from_dict
    from ferkit.engine.trainer import train
    from ferkit.errors import ConfigError

    notes: list[str] = []
    cfg = experiment_from_dict(config_dict(args, notes))
    if args.folds != "all":
        result = train(cfg, resume=args.resume, notes=notes)
        _print_result(result)
        return 0
    if args.resume or cfg.data.fold is not None:
        raise ConfigError("--folds all trains every fold from scratch; do not combine it with --fold or --resume.")
    accs, mcas = [], []
    root = Path(cfg.train.out)
    for k in range(cfg.data.num_folds):
        fold_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, fold=k),
                                       train=dataclasses.replace(cfg.train, out=str(root / f"fold{k}")))
        result = train(fold_cfg, notes=notes)
        _print_result(result, prefix=f"fold {k}: ")
        test = result.metrics.get("test")
        if test:
            accs.append(test["accuracy"])
            mcas.append(test["mean_class_accuracy"])
    if accs:
        from ferkit.report.evaluation import mean_and_std

        (acc, acc_sd), (mca, mca_sd) = mean_and_std(accs), mean_and_std(mcas)
        print(f"{len(accs)} folds: accuracy {acc:.4f} ± {acc_sd:.4f}, mean class accuracy {mca:.4f} ± {mca_sd:.4f} "
              "(sample std over folds)")
    return 0


def _print_result(result, prefix: str = "") -> None:
    import os

    if int(os.environ.get("RANK", "0")) != 0:   # under torchrun only rank 0 prints
        return
    test = result.metrics.get("test")
    if test:
        print(f"{prefix}test accuracy {test['accuracy']:.4f}, mean class accuracy {test['mean_class_accuracy']:.4f} "
              f"({test['weights']} weights); run folder {result.run_dir}, checkpoint {result.checkpoint}")
    else:
        print(f"{prefix}run folder {result.run_dir}, checkpoint {result.checkpoint} (no test split)")
