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
#: the files kept from the tarball, with their sha256 (an interrupted or damaged install is not "installed")
KEEP = {"model/tiny_face_detector_model-weights_manifest.json":
        "5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5",
        "model/tiny_face_detector_model.bin": "b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871",
        "model/face_landmark_68_tiny_model-weights_manifest.json":
        "9a1a5dd19fd814fd5095c3cb58f8e0d3193b8c5b9a6715b30a69d559aea31ad4",
        "model/face_landmark_68_tiny_model.bin": "b98e9f2f7da76f8a6dda9741a36ed485b224b889d552de2b2c1bb16217f67bfc",
        "LICENSE": "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a"}
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
    """The installed model folder, or None when any of its files is missing or not the one the tarball holds
    (its sha256; the files are small, so this is checked on every use)."""
    d = install_dir()
    ok = all((d / Path(k).name).is_file() and file_sha256(d / Path(k).name) == h for k, h in KEEP.items())
    return d if ok else None


def faceapi_weights_dir() -> Path:
    """The installed model folder; FerkitError naming the install command when it is not there."""
    d = installed()
    if d is None:
        what = "are damaged" if install_dir().exists() else "are not installed"
        raise FerkitError(f"The tiny face detector needs face-api's model files, which {what} in {install_dir()}; "
                          f"run `{INSTALL_REMEDY}` (once; it fetches {PACKAGE}@{VERSION} from the npm registry), or "
                          "use --detector mtcnn.")
    return d


def _fetch(tmp: Path, log) -> Path:
    npm = shutil.which("npm")
    if npm:
        log(f"fetching {PACKAGE}@{VERSION} with npm pack")
        try:                                  # run inside tmp: an npm without --pack-destination writes there too
            r = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(tmp), "--silent"],
                               capture_output=True, text=True, timeout=600, cwd=tmp, stdin=subprocess.DEVNULL)
            why = ((r.stderr or r.stdout).strip().splitlines() or [f"exit {r.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            r, why = None, str(e)
        tgz = sorted(tmp.glob("*.tgz"))
        if r is not None and r.returncode == 0 and tgz:
            return tgz[0]
        log(f"npm pack failed ({why}); trying HTTPS")
    import http.client
    import urllib.request

    log(f"fetching {TARBALL_URL}")
    dest = tmp / f"face-api-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=120) as resp, open(dest, "wb") as f:
            shutil.copyfileobj(resp, f)
    except (OSError, http.client.HTTPException) as e:
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
        stage = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))   # same filesystem
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(stage, 0o777 & ~umask)                 # mkdtemp's 0700 would hide it from other users
            with tarfile.open(tgz, "r:gz") as tar:
                for name, want in KEEP.items():
                    member = tar.getmember(f"package/{name}")
                    with tar.extractfile(member) as src, open(stage / Path(name).name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    if file_sha256(stage / Path(name).name) != want:
                        raise FerkitError(f"{name} in {tgz.name} is not the file ferkit expects; nothing was installed.")
            old = target.with_name(target.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                os.replace(target, old)
            try:
                os.replace(stage, target)
            except OSError:
                if old.exists() and not target.exists():
                    os.replace(old, target)                # the earlier install stays as it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        except (KeyError, tarfile.TarError, OSError) as e:
            raise FerkitError(f"Cannot install into {target.parent} ({e}); nothing was changed.") from None
        finally:
            if stage is not None:
                shutil.rmtree(stage, ignore_errors=True)
    log(f"installed {PACKAGE}@{VERSION} (tiny face detector, tiny 68-point landmarks, MIT licence) -> {target}")
    return target
