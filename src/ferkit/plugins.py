"""Methods registered outside ferkit: modules named in ``$FERKIT_PLUGINS`` are imported before a command runs.

A lab's own method (``@register_method("mine")`` and ``@register_method_config("mine")`` in ``mylab/fer.py``)
is known to every ferkit process, the ``ferkit`` command, each run of a study (local processes or Slurm
jobs) and every torchrun rank, with ``FERKIT_PLUGINS=mylab.fer`` (comma-separated for several) and the
module's folder on ``PYTHONPATH``; the variable travels to child processes and to Slurm jobs with the
environment.
"""

from __future__ import annotations

import importlib
import os

from ferkit.errors import ConfigError

#: environment variable naming extra modules to import (they register methods)
PLUGINS_ENV = "FERKIT_PLUGINS"


def import_plugins() -> list[str]:
    """Import every module named in ``$FERKIT_PLUGINS`` (comma-separated); returns their names."""
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise ConfigError(f"{PLUGINS_ENV} names module '{name}', which cannot be imported ({e}); "
                              "put its folder on PYTHONPATH.") from None
    return names
