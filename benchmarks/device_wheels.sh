#!/usr/bin/env bash
# The wheels a bare GPU machine lacks for benchmarks/device_check.sh, downloaded here beforehand:
#
#   benchmarks/device_wheels.sh DIR        (DIR: e.g. .whl, which .gitignore already ignores)
#
# The machine (KINDS.md of the device tool): x86-64, Python 3.12, a venv with torch 2.11 + CUDA 13.0,
# onnxruntime, timm, pytest, scikit-image, opencv, h5py, tensorboard..., no registry. It lacks open_clip_torch
# (and its ftfy, wcwidth), facenet-pytorch, fer (the fer-minixception weights) and the serve stack (fastapi,
# starlette, pydantic, pydantic-core, annotated-types, typing-inspection, uvicorn, python-multipart, opentelemetry-api); ferkit
# itself goes as a wheel built from this checkout, so `ferkit doctor` reads its declared requirements there.
# One version of each, cp312 manylinux x86-64 or pure Python, fetched with --no-deps (each dependency is named
# below); then every Requires-Dist of every wheel is checked to be on the machine or in DIR. The total size is
# printed; more than 48 MiB fails (the working tree that travels holds 64 MiB in all).
# There the wheels go in with `pip install --no-index --no-deps --target SITE DIR/*.whl` + PYTHONPATH=SITE,
# which leaves the machine's torch alone (device_check.sh --wheels DIR does it).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: benchmarks/device_wheels.sh DIR" >&2; exit 2; }
DIR=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
LIMIT_MIB=48

# name==version: the versions ferkit's own venv runs (make), all pure Python except pydantic-core
WHEELS=(
  open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.5
  facenet-pytorch==2.6.0 fer==25.10.3
  fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 uvicorn==0.55.0 python-multipart==0.0.34 opentelemetry-api==1.45.3
)
# what the machine already has (KINDS.md, "Python packages already there"), for the Requires-Dist check
PRESENT="absl-py accelerate aiofiles anyio attrs certifi charset-normalizer click cloudpickle colorama contourpy
cycler filelock fonttools fsspec h11 h5py hf-xet httpcore httpx huggingface-hub idna imageio iniconfig jinja2 joblib
kiwisolver lazy-loader markdown markupsafe matplotlib networkx numpy onnx onnxruntime onnxscript
opencv-python-headless packaging pandas pillow pluggy protobuf psutil pygments pyparsing pytest pytest-timeout
python-dateutil pyyaml regex requests rich safetensors scikit-image scikit-learn scipy setuptools six sympy
tensorboard threadpoolctl tifffile timm torch torchvision tqdm typing-extensions urllib3 annotated-doc"
# requirements deliberately not carried: fer's TensorFlow stack and its opencv-contrib (ferkit reads fer's HDF5 file with h5py) and
# facenet-pytorch's stale pins are installed --no-deps, as the Makefile does
NOT_NEEDED="tensorflow moviepy ffmpeg-python opencv-contrib-python"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
stale=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
if [ "$stale" -gt 0 ]; then
  echo "device_wheels.sh: $DIR already holds $stale wheel(s); give an empty or new folder (two versions of one" \
       "package stop the install there)." >&2
  exit 2
fi
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" "${WHEELS[@]}"
# ferkit itself, from this checkout (pure Python), without touching the checkout (build/ and egg-info go to a
# temporary copy)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -C "$ROOT" --exclude=.git --exclude=.venv --exclude=runs --exclude=.whl --exclude='*.egg-info' \
  --exclude=build --exclude=benchmarks/results -cf - pyproject.toml README.md src | tar -C "$tmp" -xf -
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" "$tmp" >/dev/null

"$PY" - "$DIR" "$PRESENT" "$NOT_NEEDED" <<'EOF'
import re, sys, zipfile
from pathlib import Path

folder, present, not_needed = Path(sys.argv[1]), set(sys.argv[2].split()), set(sys.argv[3].split())
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
wheels = sorted(folder.glob("*.whl"))
names = {}
for w in wheels:
    name = norm(w.name.split("-")[0])
    if name in names:
        sys.exit(f"device_wheels.sh: two versions of {name} in {folder}: {names[name]} and {w.name}")
    names[name] = w.name
have = {norm(n) for n in present} | set(names)
missing = {}
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                req = norm(re.split(r"[\s<>=!~;\[(]", line.split(":", 1)[1].strip())[0])
                if req not in have and req not in {norm(n) for n in not_needed}:
                    missing.setdefault(req, []).append(w.name)
if missing:
    sys.exit("device_wheels.sh: these requirements are neither on the GPU machine nor in the folder: "
             + "; ".join(f"{r} (of {', '.join(ws)})" for r, ws in sorted(missing.items())))
for w in wheels:
    print(f"  {w.stat().st_size / 2**20:6.2f} MiB  {w.name}")
EOF
total=$(du -cb "$DIR"/*.whl | tail -n 1 | cut -f1)
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
n=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "device_wheels.sh: the $n wheels in $DIR take $mib MiB, over the $LIMIT_MIB MiB the GPU machine's" \
       "working tree can carry beside the checkout; drop a package from WHEELS." >&2
  exit 1
fi
echo "device wheels: $n wheels, $mib MiB in $DIR (limit $LIMIT_MIB MiB); carry it and run" \
     "benchmarks/device_check.sh --wheels $DIR"
