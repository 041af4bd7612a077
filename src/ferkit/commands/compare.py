"""`ferkit compare`: a paired-seed study that tells a method's gain from noise.

    ferkit compare NAME=CONFIG.yaml NAME=CONFIG.yaml ... --seeds N --out DIR [--set KEY=VALUE ...]

Each CONFIG is what `ferkit train --config` takes (layered the same way: method defaults, the preset for its
method and dataset, the file, then --set, which applies to every configuration). For each seed s every
configuration trains with train.seed = s into DIR/NAME/seed<s>/ on the same data and split, and is evaluated
on the test split as `ferkit evaluate` does. The first configuration is the reference: for every other one,
DIR/summary.json, summary.md and compare.png give the paired difference per metric with its 95% Student-t
interval, a bootstrap interval and the seeds where it wins; DIR/runs.csv has one row per run.
--contrast B-A adds the paired difference of two other configurations (an ablation against its full method).
--folds all (or 0,3,...) makes the subject-independent folds an axis: every (configuration, seed, fold) is a
run in DIR/NAME/fold<k>/seed<s>/, summarised per fold and over folds.

Each run is a process of its own: --executor local (default) runs up to --jobs at once on this machine, the
cores split between them; --executor slurm submits one Slurm job per run through submitit (--slurm-* flags,
or the `slurm:` section of a --study-file). The coordinator only plans, submits, waits and summarises, and
may be killed at any moment: rerunning the same command keeps finished runs, re-attaches to Slurm jobs still
running, resumes half-trained runs from their checkpoint, and starts a failed run again up to --retries
times before listing it, with its log's last lines, under `missing` in summary.json. A changed configuration
is refused. See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: shown at the end of `ferkit compare --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('is B better than A? 8 paired seeds, differences with intervals',
     'ferkit compare A=a.yaml B=b.yaml --seeds 8 --out runs/study'),
    ('an ablation against its full method, beside the reference',
     'ferkit compare base=base.yaml full=full.yaml noswap=noswap.yaml --seeds 5 --out runs/abl --contrast noswap-full'),
    ('rewrite the summary from the runs finished so far',
     'ferkit compare A=a.yaml B=b.yaml --seeds 8 --out runs/study --summary-only'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="paired-seed study of configurations: differences with 95%% intervals",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", metavar="NAME=CONFIG.yaml",
                   help="a name (its runs' folder) and a `ferkit train --config` file; the first is the reference")
    p.add_argument("--seeds", type=int, required=True, help="number of paired seeds (train.seed = first .. first+N-1)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--out", required=True, help="the study folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every configuration (repeatable)")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="evaluation device: auto | cpu | cuda | cuda:N")
    p.add_argument("--modified-mig-steps", type=int, default=0,
                   help="DICE-FER modified-MIG critic steps per run (default 0: skipped)")
    p.add_argument("--no-leakage", action="store_true", help="skip identity probes and MIG in the evaluations")
    p.add_argument("--contrast", action="append", default=[], metavar="B-A",
                   help="also report the paired difference B - A of two named configurations (repeatable), e.g. "
                        "an ablation against its full method when neither is the reference")
    p.add_argument("--deterministic", action="store_true",
                   help="train every run with deterministic kernels (the same as --set train.deterministic=true)")
    p.add_argument("--summary-only", action="store_true",
                   help="write the summary of the runs finished so far, training nothing")
    p.add_argument("--keep-checkpoints", choices=("all", "selected"), default=None,
                   help="all (default): every run keeps its checkpoints; selected: a finished run keeps only the "
                        "weights it was evaluated with (its resume state and the unselected checkpoint are deleted, "
                        "earlier runs' too; a DICE-FER run keeps about a quarter of its disk; its folder then reads as "
                        "its selected weights)")
    p.add_argument("--folds", metavar="all|K,...",
                   help="folds as an axis of the study: all (0..data.num_folds-1) or a list such as 0,3,7")
    x = p.add_argument_group("executors (defaults: the --study-file's keys, else local, 1 job, 1 retry)")
    x.add_argument("--study-file", metavar="YAML",
                   help="a file with any of: executor, jobs, threads_per_run, retries, folds, and a slurm: "
                        "section (partition, gpus_per_job, time, cpus_per_job, account, extra: {KEY: VALUE}); "
                        "flags given on the command line win")
    x.add_argument("--executor", choices=["local", "slurm"], help="where runs go (default local)")
    x.add_argument("--jobs", type=int, help="local: runs at once (default 1)")
    x.add_argument("--threads-per-run", type=int, help="local: torch threads per run (default cores // jobs)")
    x.add_argument("--retries", type=int, help="times a failed run is started again (default 1)")
    x.add_argument("--slurm-partition")
    x.add_argument("--slurm-gpus-per-job", type=int, help="GPUs per run's job (default 0)")
    x.add_argument("--slurm-time", help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS (default 60)")
    x.add_argument("--slurm-cpus-per-job", type=int, help="CPUs per job, also the run's threads (default 1)")
    x.add_argument("--slurm-account")
    x.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. qos=high or mem=16G (repeatable)")
    return p


def parse_pairs(items: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` strings -> {name: path}, in order; a malformed or repeated name is one sentence."""
    from ferkit.errors import ConfigError

    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"'{item}' must look like NAME=CONFIG.yaml, e.g. baseline=configs/baseline.yaml.")
        if name in out:
            raise ConfigError(f"Configuration name '{name}' is given twice; each configuration needs its own name.")
        if not Path(path).is_file():
            raise ConfigError(f"Config file {path} (for '{name}') does not exist.")
        out[name] = Path(path)
    return out


def parse_contrasts(items: list[str], names: list[str]) -> list[tuple[str, str]]:
    """``B-A`` strings -> [(B, A)] over the study's names; names may hold '-', so every split is tried."""
    from ferkit.errors import ConfigError

    out = []
    for item in items:
        splits = [(item[:i], item[i + 1:]) for i, ch in enumerate(item) if ch == "-"]
        found = [(b, a) for b, a in splits if b in names and a in names]
        if len(found) != 1 or found[0][0] == found[0][1]:
            raise ConfigError(f"--contrast '{item}' must be B-A with B and A two different configuration names of "
                              f"this study ({', '.join(names)}).")
        out.append(found[0])
    return out


def train_config_dict(path: Path, sets: list[str]) -> dict:
    """The merged config ``ferkit train --config PATH --set ...`` would run (the same layering code)."""
    from ferkit.commands import train as train_cmd

    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers(dest="command")
    train_cmd.register(sub)
    argv = ["train", "--config", str(path)]
    for s in sets:
        argv += ["--set", s]
    return train_cmd.config_dict(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from ferkit.errors import ConfigError
    from ferkit.study.coordinator import run_study
    from ferkit.study.options import executor_from, parse_folds, study_file
    from ferkit.study.runner import Study
    from ferkit.study.summary import write_summary

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.first_seed < 0:
        raise ConfigError(f"--first-seed must be 0 or more, got {args.first_seed}.")
    if args.modified_mig_steps < 0 or args.batch_size < 1:
        raise ConfigError("--modified-mig-steps must be 0 or more and --batch-size at least 1.")
    sets = [*args.set, *(["train.deterministic=true"] if args.deterministic else [])]
    configs = {name: train_config_dict(path, sets) for name, path in parse_pairs(args.configs).items()}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    evaluation = {"batch_size": args.batch_size, "device": args.device, "leakage": not args.no_leakage,
                  "modified_mig_steps": args.modified_mig_steps}
    contrasts = parse_contrasts(args.contrast, list(configs))
    options = study_file(args.study_file)
    folds = parse_folds(args.folds if args.folds is not None else options.get("folds"), configs)
    study = Study(args.out, configs, seeds, evaluation, contrasts=contrasts, folds=folds)
    executor, retries = executor_from(args, options)
    if args.summary_only:
        study.open()
        summary = write_summary(study)
    else:
        summary = run_study(study, executor, retries=retries,
                            keep_checkpoints=args.keep_checkpoints or options.get("keep_checkpoints", "all"))
    print_summary(summary)
    print(f"summary: {Path(args.out) / 'summary.md'}")
    return 0


def print_summary(summary: dict) -> None:
    """The headline paired differences, one line each."""
    ref = summary["reference"]
    for m in ("accuracy", "macro_f1", "ece", "auroc_error", "identity_probe_matched"):
        if m not in summary["paired"]:
            continue
        for pair, d in summary["paired"][m].items():
            if not d["n"]:
                continue
            lo = "-" if d["lo"] is None else f"{d['lo']:+.4f}"
            hi = "-" if d["hi"] is None else f"{d['hi']:+.4f}"
            print(f"  {m:<24} {pair:<24} {d['mean']:+.4f} [{lo}, {hi}]  wins {d['wins']}/{d['n']}  "
                  f"{d['verdict']}")
    if not summary["complete"]:
        print(f"  ({len(summary['missing'])} runs not finished; rerun the same command to continue, reference {ref})")
