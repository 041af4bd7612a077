"""`ferkit install`: put in place model files that no pip package carries, from a package registry, once.

One set today: `face-api`, the tiny face detector and tiny 68-point landmark net of the npm package
@vladmandic/face-api (MIT), used by `--detector tiny` of `ferkit predict` and `ferkit serve`. The package's
tarball is fetched with `npm pack` (or over HTTPS from the npm registry when npm is absent), its sha256 checked,
and only those model files and the licence kept, in $FERKIT_HOME (default ~/.local/share/ferkit). Nothing is
fetched at run time. On a machine without a registry, copy the tarball there and pass it with --from.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit install --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('fetch and check face-api\'s tiny detector for `--detector tiny`',
     'ferkit install face-api'),
    ('from a tarball copied from another machine (`npm pack @vladmandic/face-api@1.7.15` writes it)',
     'ferkit install face-api --from vladmandic-face-api-1.7.15.tgz'),
)


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("install", help="install model files from a package registry (face-api's tiny detector)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=("face-api",), help="what to install: face-api (the tiny face detector)")
    p.add_argument("--from", dest="source", default=None, metavar="TARBALL",
                   help="install from this tarball instead of the registry (its sha256 is checked all the same)")
    p.add_argument("--force", action="store_true", help="fetch and install again when the files are already there")
    return p


def run(args: argparse.Namespace) -> int:
    from ferkit.data.faceapi_weights import install

    install(args.source, force=args.force)
    return 0
