"""`ferkit doctor`: checks that this installation can run everything ferkit offers, and says how to fix it.

One line per declared dependency (installed, at the version ferkit needs, importable) and one for face
detection (facenet-pytorch's MTCNN weights, which `pip install ferkit` cannot bring: run
`pip install --no-deps 'facenet-pytorch>=2.5'`). Exits 1 when any check fails, each failure with its fix.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit doctor --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('check dependencies and the MTCNN weights; exit 1 with the fix',
     'ferkit doctor'),
    ('after installing face detection without its stale pins',
     'pip install --no-deps facenet-pytorch && ferkit doctor'),
)

def register(sub) -> argparse.ArgumentParser:
    return sub.add_parser("doctor", help="check the installed dependencies and the face detector",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(args) -> int:
    from ferkit import __version__
    from ferkit.doctor import run_checks

    checks = run_checks()
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.ok and not c.optional]
    if failed:
        print(f"ferkit {__version__}: {len(failed)} of {len(checks)} checks failed; run the commands after '->'.")
        return 1
    missing = [c for c in checks if not c.ok]
    if missing:
        print(f"ferkit {__version__}: all {len(checks) - len(missing)} required checks passed; {len(missing)} optional "
              f"part{'s' if len(missing) > 1 else ''} not installed (the command after '->' adds it).")
        return 0
    print(f"ferkit {__version__}: all {len(checks)} checks passed.")
    return 0
