"""`ferkit datasets [NAME] [--data-path PATH] [--json]`: supported datasets, their layouts, and summaries.

Without NAME: every supported dataset with its classes and native splits. With NAME only: its expected
layout and options. With NAME and --data-path: images per split and per class, subjects and folds (a table,
or JSON with --json).
"""

from __future__ import annotations

import argparse
import json

#: shown at the end of `ferkit datasets --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('every supported dataset and its classes',
     'ferkit datasets'),
    ('the layout RAF-DB is read in',
     'ferkit datasets rafdb'),
    ('summarise a folder: images per split and class, subjects, folds',
     'ferkit datasets synthetic --data-path data/synth'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("datasets", help="list supported datasets, show a layout, or summarise a dataset folder",
                       description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="dataset name (omit to list them all)")
    p.add_argument("--data-path", default=None, help="the dataset's root folder, as it ships")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option, e.g. image_dir=original (repeatable)")
    p.add_argument("--num-folds", type=int, default=10, help="folds to summarise where subjects are known")
    p.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _options(items: list[str]) -> dict:
    import yaml

    from ferkit.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Option '{item}' must look like KEY=VALUE.")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _list_all(as_json: bool) -> int:
    from ferkit.data.datasets import DATASETS

    if as_json:
        print(json.dumps({n: {"classes": list(i.label_space.classes), "splits": list(i.splits),
                              "has_subjects": i.has_subjects, "layout": i.layout, "options": i.options}
                          for n, i in DATASETS.items()}, indent=1))
        return 0
    print(f"{'name':<11} {'classes':<8} {'splits':<22} subjects  layout")
    for n, i in DATASETS.items():
        first = i.layout.splitlines()[1].split("#")[0].strip() if len(i.layout.splitlines()) > 1 else ""
        classes = "folders" if n == "folder" else str(i.label_space.num_classes)
        print(f"{n:<11} {classes:<8} {'/'.join(i.splits):<22} "
              f"{'yes' if i.has_subjects else 'no':<9} {first}")
    print("\n`ferkit datasets NAME` shows a layout; add --data-path PATH to summarise a copy.")
    return 0


def _show_layout(name: str, as_json: bool) -> int:
    from ferkit.data.datasets import get_info

    info = get_info(name)
    if as_json:
        print(json.dumps({"name": name, "layout": info.layout, "options": info.options,
                          "classes": list(info.label_space.classes), "splits": list(info.splits)}, indent=1))
        return 0
    print(f"{name}: {info.label_space.num_classes} classes ({', '.join(info.label_space.classes)}); "
          f"splits {'/'.join(info.splits)}; subjects {'known' if info.has_subjects else 'unknown'}")
    print(info.layout)
    from ferkit.data.datasets.base import COMMON_OPTIONS

    for key, text in {**info.options, **COMMON_OPTIONS}.items():
        print(f"  --option {key}=...   {text}")
    return 0


def _print_table(s: dict) -> None:
    classes = s["label_space"]["classes"]
    print(f"{s['dataset']} at {s['root']}: {s['images']} images, {s['subjects']} subjects, "
          f"label space {s['label_space']['name']}")
    splits = list(s["splits"])
    print(f"{'class':<10}" + "".join(f"{sp:>9}" for sp in splits))
    for c in classes:
        print(f"{c:<10}" + "".join(f"{s['splits'][sp]['per_class'][c]:>9}" for sp in splits))
    print(f"{'total':<10}" + "".join(f"{s['splits'][sp]['images']:>9}" for sp in splits))
    if s["folds"]:
        f = s["folds"]
        print(f"{f['num_folds']} subject-independent folds (seed {f['seed']}): images "
              f"{f['images_per_fold']}, subjects {f['subjects_per_fold']}")
    for key, value in s["info"].items():
        if value not in ({}, [], None):
            print(f"{key}: {value}")


def run(args) -> int:
    from ferkit.data.datasets import summarize

    if args.name is None:
        return _list_all(args.json)
    if args.data_path is None:
        return _show_layout(args.name, args.json)
    summary = summarize(args.name, args.data_path, num_folds=args.num_folds, seed=args.seed,
                        **_options(args.option))
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        _print_table(summary)
    return 0
