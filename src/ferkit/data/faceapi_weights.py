"""Where face-api's model files live, and ``ferkit install face-api``: fetch them from the npm registry once.

The files come from the npm package ``@vladmandic/face-api`` at one pinned version, whose tarball's sha256 is
checked before anything is unpacked; only the tiny face detector's and tiny landmark net's manifests and
binaries, and the package's MIT licence, are kept. The tarball comes from ``npm pack`` when npm is on the PATH
(it honours the user's npm registry and proxy settings), else straight from the registry over HTTPS, or from a
tarball the user already has (``--from``, for machines without a registry). Nothing is fetched at run time:
detection with ``--detector tiny`` only reads the installed files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ferkit.data.io import file_sha256
from ferkit.errors import FerkitError

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/face-api-{VERSION}.tgz"
KEEP = ("model/tiny_face_detector_model-weights_manifest.json", "model/tiny_face_detector_model.bin",
        "model/face_landmark_68_tiny_model-weights_manifest.json", "model/face_landmark_68_tiny_model.bin",
        "LICENSE")
INSTALL_REMEDY = "ferkit install face-api"


def ferkit_data_home() -> Path:
    """``$FERKIT_HOME``, else ``$XDG_DATA_HOME/ferkit``, else ``~/.local/share/ferkit``."""
    if os.environ.get("FERKIT_HOME"):
        return Path(os.environ["FERKIT_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ferkit"


def install_dir() -> Path:
    return ferkit_data_home() / "weights" / f"face-api-{VERSION}"


def installed() -> Path | None:
    """The installed model folder, or None when any of its files is missing."""
    d = install_dir()
    return d if all((d / Path(k).name).is_file() for k in KEEP) else None


def faceapi_weights_dir() -> Path:
    """The installed model folder; FerkitError naming the install command when it is not there."""
    d = installed()
    if d is None:
        raise FerkitError(f"The tiny face detector needs face-api's model files, which are not installed in "
                          f"{install_dir()}; run `{INSTALL_REMEDY}` (once; it fetches {PACKAGE}@{VERSION} from the "
                          "npm registry), or use --detector mtcnn.")
    return d


def _fetch(tmp: Path, log) -> Path:
    npm = shutil.which("npm")
    if npm:
        log(f"fetching {PACKAGE}@{VERSION} with npm pack")
        r = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(tmp), "--silent"],
                           capture_output=True, text=True, timeout=600)
        tgz = sorted(tmp.glob("*.tgz"))
        if r.returncode == 0 and tgz:
            return tgz[0]
        log(f"npm pack failed ({(r.stderr or r.stdout).strip().splitlines()[-1:] or r.returncode}); trying HTTPS")
    import urllib.request

    log(f"fetching {TARBALL_URL}")
    dest = tmp / f"face-api-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=120) as resp, open(dest, "wb") as f:
            shutil.copyfileobj(resp, f)
    except OSError as e:
        raise FerkitError(f"Cannot fetch {TARBALL_URL} ({e}); fetch the tarball elsewhere (`npm pack "
                          f"{PACKAGE}@{VERSION}`) and run `ferkit install face-api --from FILE.tgz`.") from None
    return dest


def install(source: str | Path | None = None, log=print, force: bool = False) -> Path:
    """Install face-api's tiny detector and landmark files into ``install_dir()`` from the registry (skipped
    when they are there, unless ``force``) or from ``source`` (a tarball); the tarball's sha256 must be
    ``TARBALL_SHA256``. Returns the folder."""
    target = install_dir()
    if source is None and not force and installed() is not None:
        log(f"{PACKAGE}@{VERSION} is already installed in {target} (--force fetches it again)")
        return target
    with tempfile.TemporaryDirectory(prefix="ferkit-face-api-") as t:
        tmp = Path(t)
        if source is not None:
            tgz = Path(source)
            if not tgz.is_file():
                raise FerkitError(f"{tgz} is not a file; give the {PACKAGE}@{VERSION} tarball (`npm pack "
                                  f"{PACKAGE}@{VERSION}` writes it).")
        else:
            tgz = _fetch(tmp, log)
        got = file_sha256(tgz)
        if got != TARBALL_SHA256:
            raise FerkitError(f"{tgz.name} has sha256 {got}, not that of {PACKAGE}@{VERSION} ({TARBALL_SHA256}); "
                              "nothing was installed.")
        stage = tmp / "stage"
        stage.mkdir()
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                for name in KEEP:
                    member = tar.getmember(f"package/{name}")
                    with tar.extractfile(member) as src, open(stage / Path(name).name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (KeyError, tarfile.TarError, OSError) as e:
            raise FerkitError(f"Cannot unpack {tgz} ({e}); nothing was installed.") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(target.name + ".old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        shutil.move(str(stage), str(target))
        shutil.rmtree(old, ignore_errors=True)
    log(f"installed {PACKAGE}@{VERSION} (tiny face detector, tiny 68-point landmarks, MIT licence) -> {target}")
    return target
