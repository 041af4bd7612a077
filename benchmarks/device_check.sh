#!/usr/bin/env bash
# The GPU path, checked in one go (under 5 minutes on one CUDA machine):
#
#   benchmarks/device_check.sh [--cpu-dry-run] [--python PY] [--out DIR] [--wheels DIR]
#
#  1. install ferkit from this checkout (pip -e, no downloads: --no-deps, or --wheels DIR for a local
#     wheelhouse) and check that every module ferkit imports is there;
#  2. the default tests that touch devices and precision (auto precision, DDP, export, predict);
#  3. ferkit train: baseline, DICE-FER and UA-FER (tiny CLIP) for a few steps each, bf16 and fp32;
#  4. DDP: torchrun over every GPU (NCCL), the baseline for a few steps;
#  5. ferkit export (ONNX, parity-checked) and ferkit predict with onnxruntime, on the GPU when
#     onnxruntime-gpu is installed (the script says which provider ran);
#  6. benchmarks/bench_inference.py for DICE-FER and UA-FER tiny: faces/s per engine;
# then a table of step times (seconds per optimiser step, from each run's metrics.csv) and faces/s.
#
# --cpu-dry-run runs every part on the CPU instead (device cpu, DDP as 2 gloo processes, smaller
# sizes, no install, time limits x6), so the script is known to work up to the CUDA calls on a machine
# without a GPU.
# Each part has its own time limit; a part that fails is reported and the script goes on; the exit
# status is non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=0
PY=${PYTHON:-python3}
OUT=${TMPDIR:-/tmp}/ferkit-device-check
WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --python) PY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --wheels) WHEELS=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

rm -rf "$OUT" && mkdir -p "$OUT"
export FERKIT_NO_PROGRESS=1 PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export FERKIT_CACHE_DIR="$OUT/cache"
T0=$(date +%s)
FAILED=()

part() {  # part NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, report
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local t=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - t ))
  if [ $rc -eq 0 ]; then echo "   ok in ${took}s"; else
    echo "   FAILED (exit $rc) in ${took}s; last lines of $OUT/$name.log:"; tail -n 8 "$OUT/$name.log" | sed 's/^/   | /'
    FAILED+=("$name")
  fi
}

if [ $DRY -eq 1 ]; then
  DEVICE=cpu; NPROC=2; SIZE=32; UA_SIZE=64; STEPS=2; FACES=16; BATCH=8; PHOTOS=2; REPEATS=1
  SCALE=${SCALE:-6}          # a shared CPU is far slower than the GPU the limits are sized for
  export OMP_NUM_THREADS=1
  echo "device check: CPU DRY RUN (device cpu, DDP as $NPROC gloo processes)"
else
  DEVICE=cuda; SIZE=112; UA_SIZE=64; STEPS=4; FACES=512; BATCH=128; PHOTOS=16; REPEATS=3; SCALE=1
  NPROC=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
  if [ "${NPROC:-0}" -lt 1 ]; then echo "device_check.sh: no CUDA device visible to $PY; use --cpu-dry-run" >&2; exit 2; fi
  echo "device check: $NPROC CUDA device(s)"; nvidia-smi -L 2>/dev/null | sed 's/^/   /'
fi

# 1. install from the checkout (nothing is downloaded) and check the imports
if [ $DRY -eq 0 ]; then
  if [ -n "$WHEELS" ]; then
    part install 120 "$PY" -m pip install -q --no-index --find-links "$WHEELS" -e ".[test]"
  else
    part install 120 "$PY" -m pip install -q --no-deps --no-build-isolation -e .
  fi
fi
part imports 60 "$PY" -c "
import importlib.util, sys
need = ['torch', 'torchvision', 'numpy', 'yaml', 'safetensors', 'open_clip', 'facenet_pytorch', 'cv2', 'PIL',
        'onnx', 'onnxruntime', 'skimage', 'tqdm', 'sklearn', 'pytest', 'ferkit']
missing = [m for m in need if importlib.util.find_spec(m) is None]
import torch, ferkit
print('ferkit', ferkit.__file__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count())
sys.exit(f'missing modules: {missing}; install them (pip, or --wheels DIR)' if missing else 0)"

# 2. the default tests that touch devices and precision
part tests 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_engine_loop.py tests/test_evidential.py \
  tests/test_ddp.py tests/test_export.py tests/test_predict_lean.py

# 3. a few steps of each method in bf16 and fp32
SYN=(--dataset synthetic --set data.synth_identities=6 --set data.synth_images_per_identity=8)
for prec in bf16 fp32; do
  part "train_baseline_$prec" 90 "$PY" -m ferkit train --method baseline "${SYN[@]}" --set "data.synth_size=$SIZE" \
    --set "model.image_size=$SIZE" --epochs 1 --limit-batches $((STEPS * 3)) --batch-size 16 --device $DEVICE \
    --precision $prec --set train.eval_every=0 --out "$OUT/train_baseline_$prec"
  part "train_dicefer_$prec" 120 "$PY" -m ferkit train --method dicefer "${SYN[@]}" --set "data.synth_size=$SIZE" \
    --set "model.image_size=$SIZE" --epochs 1 --limit-batches $STEPS --batch-size 16 --device $DEVICE \
    --precision $prec --set train.eval_every=0 --out "$OUT/train_dicefer_$prec"
  part "train_uafer_$prec" 90 "$PY" -m ferkit train --method uafer "${SYN[@]}" --set "data.synth_size=$UA_SIZE" \
    --set model.model_size=tiny --epochs 1 --limit-batches $((STEPS * 3)) --batch-size 16 --device $DEVICE \
    --precision $prec --set train.eval_every=0 --out "$OUT/train_uafer_$prec"
done

# 4. DDP over the available GPUs (gloo processes on the CPU in the dry run)
part ddp 120 "$PY" -m torch.distributed.run --nnodes=1 --nproc_per_node="$NPROC" --master_addr=127.0.0.1 \
  --master_port=$((29500 + RANDOM % 1000)) -m ferkit train --method baseline "${SYN[@]}" --set "data.synth_size=$SIZE" \
  --set "model.image_size=$SIZE" --epochs 1 --limit-batches $STEPS --batch-size 8 --device $DEVICE \
  --set train.eval_every=0 --out "$OUT/ddp"

# 5. ONNX export (parity-checked) and predict with onnxruntime on photos
part onnx 120 bash -c "
  set -e
  '$PY' -m ferkit export '$OUT/train_baseline_fp32' --out '$OUT/baseline.onnx'
  mkdir -p '$OUT/photos'
  '$PY' -c \"from skimage import data, io; [io.imsave(f'$OUT/photos/astronaut{i}.png', data.astronaut()) for i in range(3)]\"
  '$PY' -c \"import onnxruntime as o; print('onnxruntime providers:', o.get_available_providers())\"
  '$PY' -m ferkit predict '$OUT/baseline.onnx' '$OUT/photos' --engine onnx --device $DEVICE --out '$OUT/predict.json'
  '$PY' -c \"import json; rows = json.load(open('$OUT/predict.json')); rows = rows.get('rows', rows) if isinstance(rows, dict) else rows; print(len(rows), 'rows:', [r['label'] for r in rows])\""

# 6. inference speed
part bench_inference 240 "$PY" benchmarks/bench_inference.py --models dicefer uafer-tiny --device $DEVICE \
  --faces $FACES --batch $BATCH --photos $PHOTOS --repeats $REPEATS --out "$OUT/bench_inference.json"

echo
echo "== step times (seconds per optimiser step, mean over each run; the first step's warm-up included)"
"$PY" - "$OUT" <<'EOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
for run in [p for p in sorted(out.glob("train_*")) + [out / "ddp"] if p.is_dir() or p.name == "ddp"]:
    path = run / "metrics.csv"
    if not path.is_file():
        print(f"   {run.name:<24} (no metrics.csv: the run failed)")
        continue
    rows = list(csv.DictReader(path.open()))
    per = "  ".join(f"{r['phase']} {float(r['seconds']) / max(1, int(float(r['steps']))):.4f}" for r in rows)
    print(f"   {run.name:<24} {per}")
EOF
echo "== faces/s (benchmarks/bench_inference.py; 'in MTCNN' = share of predict time in detection)"
if [ -f "$OUT/bench_inference.log" ]; then grep -v '^$' "$OUT/bench_inference.log" | sed 's/^/   /'; fi
if grep -q "onnxruntime providers" "$OUT/onnx.log" 2>/dev/null; then
  grep "onnxruntime providers\|rows:" "$OUT/onnx.log" | sed 's/^/   /'
fi
echo
echo "device check: $(( $(date +%s) - T0 ))s in all; logs in $OUT"
if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED parts: ${FAILED[*]}"; exit 1; fi
echo "all parts passed"
