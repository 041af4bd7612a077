#!/usr/bin/env bash
# The CUDA path, checked in one call on a bare GPU machine (no network; only $OUT comes back):
#
#   benchmarks/device_check.sh [--wheels DIR] [--out DIR] [--python PY]     on the GPU machine
#   benchmarks/device_check.sh --cpu-dry-run [--out DIR] [--python PY]     the same parts on the CPU, tiny
#
# Prepare the wheels here first (benchmarks/device_wheels.sh .whl) and carry .whl; there: device_check.sh
# --wheels .whl. The first line printed is `device check plan: N parts, deadline D s`. One global deadline:
# the parts are planned at PLAN_S (<= 360 s) in all, and each part's limit is taken from what is left
# before the hard stop at HARD_S (540 s): at most twice its plan, and never into the half-plans of the
# parts after it; `timeout -k` kills a hung CUDA call. The parts:
#   setup           wheels installed with pip --no-index --no-deps --target (torch is never replaced),
#                   torch.version.cuda against the driver, the device's name, `ferkit doctor`
#   tests           pytest -m device with FERKIT_TEST_DEVICE (training, resume, bf16, export, predict there)
#   steps_baseline  ResNet-18 at 112 px, fp32 and bf16: step time after warm-up, peak memory
#   steps_dicefer   DICE-FER (4 x ResNet-18) at 112 px, each stage, fp32 and bf16
#   steps_uafer     UA-FER with ViT-B/16 (random weights) at 224 px, fp32 and bf16
#   determinism     ferkit train --deterministic, the same 20 steps twice: bit-identical weights expected
#   ddp             torchrun, 2 ranks over gloo sharing the one GPU (NCCL refuses two ranks on one GPU)
#   export_predict  ferkit export (ONNX) + ferkit predict on photos, the onnxruntime provider actually used
#   inference       benchmarks/speed/bench_inference.py: faces/s per engine (DICE-FER, UA-FER ViT-B/16)
# then a table. Every line goes to OUT/device_check.txt too; a failed part's last lines are in it. OUT
# (--out, else $OUT, else a fresh temporary folder) ends with three files: device_check.txt,
# device_check.json (the rows) and logs.tar.gz (every part's log); the work folder the script made in OUT
# is removed, nothing else is. Exit status: non-zero when any part failed.
# --cpu-dry-run: device cpu, tiny sizes (UA-FER tiny), DDP as 2 gloo processes, the same plan and deadline.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DRY=0
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-}
WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --python) PY=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    --wheels) WHEELS=$2; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$WHEELS" ] && ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "device_check.sh: --wheels $WHEELS holds no .whl files; make them with benchmarks/device_wheels.sh $WHEELS" >&2
  exit 2
fi
[ -n "$WHEELS" ] && WHEELS=$(cd "$WHEELS" && pwd)
if [ -z "$OUT_DIR" ]; then OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferkit-device-check.XXXXXX"); fi
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
for f in device_check.txt device_check.json logs.tar.gz; do
  if [ -e "$OUT_DIR/$f" ]; then
    echo "device_check.sh: $OUT_DIR already holds $f; give a folder without an earlier report" >&2
    exit 2
  fi
done
WORK=$(mktemp -d "$OUT_DIR/work.XXXXXX")

PLAN_S=360
HARD_S=${DEVICE_CHECK_HARD_S:-540}     # the variable only for tests of the deadline
PARTS=(setup tests steps_baseline steps_dicefer steps_uafer determinism ddp export_predict inference)
declare -A PLANNED=([setup]=40 [tests]=45 [steps_baseline]=30 [steps_dicefer]=45 [steps_uafer]=50
                    [determinism]=40 [ddp]=25 [export_predict]=30 [inference]=50)

if [ $DRY -eq 1 ]; then
  DEVICE=cpu; SIZE=32; UA_SIZE=64; UA_MODEL=tiny; BATCH=8; UA_BATCH=8; WARMUP=1; STEPS=2
  DET_BATCH=8; INF_MODELS="dicefer uafer-tiny"; FACES=16; INF_BATCH=8; PHOTOS=2; REPEATS=1; THREADS=1
  export OMP_NUM_THREADS=1
else
  DEVICE=cuda; SIZE=112; UA_SIZE=224; UA_MODEL=ViT-B-16; BATCH=64; UA_BATCH=32; WARMUP=3; STEPS=5
  # onnxruntime is CPU-only there: its ViT-B/16 runs bound the inference part, hence 256 faces x 2 repeats
  DET_BATCH=32; INF_MODELS="dicefer uafer-vitb16"; FACES=256; INF_BATCH=128; PHOTOS=4; REPEATS=2; THREADS=8
fi
SITE=$WORK/site
mkdir -p "$WORK/logs" "$WORK/results" "$WORK/tmp" "$WORK/cache" "$SITE"
export TMPDIR=$WORK/tmp FERKIT_CACHE_DIR=$WORK/cache FERKIT_NO_PROGRESS=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$ROOT/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PY DRY DEVICE SIZE UA_SIZE UA_MODEL BATCH UA_BATCH WARMUP STEPS DET_BATCH INF_MODELS FACES INF_BATCH PHOTOS
export REPEATS THREADS WORK SITE WHEELS ROOT
SYN="--dataset synthetic --set data.synth_identities=8 --set data.synth_images_per_identity=24"
export SYN

part_setup() {
  set -e
  if [ -n "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
    echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
  fi
  "$PY" benchmarks/device_report.py cuda --site "$SITE" $([ "$DRY" = 1 ] && echo --dry-run)
  set -o pipefail
  "$PY" -m ferkit doctor | tee "$WORK/logs/doctor.txt"
  echo "result: ferkit doctor: $(grep -c '^ok' "$WORK/logs/doctor.txt") checks ok, none failed"
}

part_tests() {
  FERKIT_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -x -m device -p no:cacheprovider --basetemp "$WORK/pytest" \
    tests/test_device.py >"$WORK/logs/pytest.txt" 2>&1
  local rc=$?
  cat "$WORK/logs/pytest.txt"
  echo "result: pytest -m device with FERKIT_TEST_DEVICE=$DEVICE: $(tail -n 1 "$WORK/logs/pytest.txt")"
  return $rc
}

steps() {  # steps METHOD SIZE BATCH [--model-size M]
  local method=$1 size=$2 batch=$3; shift 3
  "$PY" benchmarks/device_steps.py --method "$method" --device "$DEVICE" --size "$size" --batch "$batch" \
    --warmup "$WARMUP" --steps "$STEPS" --work "$WORK/steps" --json "$WORK/results/steps_$method.json" "$@"
}
part_steps_baseline() { steps baseline "$SIZE" "$BATCH"; }
part_steps_dicefer() { steps dicefer "$SIZE" "$BATCH"; }
part_steps_uafer() { steps uafer "$UA_SIZE" "$UA_BATCH" --model-size "$UA_MODEL"; }

part_determinism() {
  set -e
  for run in a b; do
    # shellcheck disable=SC2086
    "$PY" -m ferkit train --method baseline $SYN --set "data.synth_size=$SIZE" --set "model.image_size=$SIZE" \
      --epochs 20 --max-steps 20 --batch-size "$DET_BATCH" --device "$DEVICE" --deterministic \
      --set train.eval_every=0 --out "$WORK/det_$run"
  done
  "$PY" benchmarks/device_report.py same-weights "$WORK/det_a" "$WORK/det_b"
}

part_ddp() {
  set -e
  # shellcheck disable=SC2086
  FERKIT_DIST_BACKEND=gloo "$PY" -m torch.distributed.run --nnodes=1 --nproc_per_node=2 --master_addr=127.0.0.1 \
    --master_port=$((29500 + RANDOM % 1000)) -m ferkit train --method baseline $SYN --set "data.synth_size=$SIZE" \
    --set "model.image_size=$SIZE" --epochs 1 --max-steps 4 --batch-size 8 --device "$DEVICE" \
    --set train.eval_every=0 --out "$WORK/ddp"
  grep -q "processes 2" "$WORK/ddp/log.txt"
  echo "result: DDP as 2 torchrun ranks over gloo, both on $DEVICE$([ "$DEVICE" = cuda ] && echo ':0 (one GPU; NCCL refuses two ranks on one GPU)'), 4 steps; the run log says 'processes 2'"
}

part_export_predict() {
  set -e
  local ckpt=$WORK/det_a
  if [ ! -f "$ckpt/checkpoints/last.safetensors" ]; then    # the determinism part failed: train one here
    ckpt=$WORK/export_run
    # shellcheck disable=SC2086
    "$PY" -m ferkit train --method baseline $SYN --set "data.synth_size=$SIZE" --set "model.image_size=$SIZE" \
      --epochs 1 --max-steps 4 --batch-size 8 --device "$DEVICE" --set train.eval_every=0 --out "$ckpt"
  fi
  "$PY" -m ferkit export "$ckpt" --out "$WORK/model.onnx"
  mkdir -p "$WORK/photos"
  "$PY" -c "from skimage import data, io; [io.imsave(f'$WORK/photos/astronaut{i}.png', data.astronaut()) for i in range(2)]"
  "$PY" -m ferkit predict "$WORK/model.onnx" "$WORK/photos" --engine onnx --device "$DEVICE" --out "$WORK/pred_onnx.json"
  "$PY" -m ferkit predict "$ckpt/checkpoints/last.safetensors" "$WORK/photos" --engine torch --device "$DEVICE" --out "$WORK/pred_torch.json"
  "$PY" benchmarks/device_report.py onnx "$WORK/model.onnx" "$ckpt/checkpoints/last.safetensors" --device "$DEVICE" \
    --predictions "$WORK/pred_onnx.json" "$WORK/pred_torch.json"
}

part_inference() {
  set -e
  # shellcheck disable=SC2086
  "$PY" benchmarks/speed/bench_inference.py --models $INF_MODELS --device "$DEVICE" --faces "$FACES" --batch "$INF_BATCH" \
    --photos "$PHOTOS" --repeats "$REPEATS" --threads "$THREADS" --out "$WORK/results/inference.json"
}
export -f part_setup part_tests steps part_steps_baseline part_steps_dicefer part_steps_uafer part_determinism \
  part_ddp part_export_predict part_inference

T0=$(date +%s)
FAILED=()

run_part() {  # run_part NAME: its limit from what is left, its log in WORK/logs, a line in the report
  local name=$1 planned=${PLANNED[$1]} after=0 seen=0 p
  for p in "${PARTS[@]}"; do
    [ $seen -eq 1 ] && after=$((after + PLANNED[$p]))
    [ "$p" = "$name" ] && seen=1
  done
  local now left limit
  now=$(date +%s)
  left=$((T0 + HARD_S - now))
  limit=$((2 * planned))
  [ $((left - after / 2)) -lt $limit ] && limit=$((left - after / 2))
  if [ $limit -lt 10 ]; then
    echo "== $name: SKIPPED (${left}s left before the hard stop, $after s planned after it)"
    echo "$name skipped 0 0" >>"$WORK/results/parts.txt"
    FAILED+=("$name")
    return
  fi
  echo "== $name (planned ${planned}s, limit ${limit}s, at $((now - T0))s)"
  timeout -k 10 "$limit" bash -c "part_$name" >"$WORK/logs/$name.log" 2>&1
  local rc=$? took=$(($(date +%s) - now)) status=ok
  if [ $rc -eq 0 ]; then
    echo "   ok in ${took}s"
    grep '^result:' "$WORK/logs/$name.log" | sed 's/^result: /   /'
  else
    status=FAILED
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=TIMEOUT
    echo "   $status (exit $rc) in ${took}s; last lines of its log:"
    tail -n 25 "$WORK/logs/$name.log" | sed 's/^/   | /'
    FAILED+=("$name")
  fi
  echo "$name $status $took $limit" >>"$WORK/results/parts.txt"
}

finish() {  # pack the logs and rows into OUT (3 files) and remove the work folder this script made
  [ -d "$WORK" ] || return 0
  "$PY" benchmarks/device_report.py rows "$WORK" >"$OUT_DIR/device_check.json" 2>/dev/null || true
  tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK" logs results 2>/dev/null || true
  rm -rf "$WORK"
}

main() {
  echo "device check plan: ${#PARTS[@]} parts, deadline $HARD_S s (planned work $(
    s=0; for p in "${PARTS[@]}"; do s=$((s + PLANNED[$p])); done; echo $s) s of at most $PLAN_S)"
  if [ $DRY -eq 1 ]; then
    echo "device check: CPU DRY RUN (device cpu, tiny sizes, UA-FER tiny, DDP as 2 gloo processes)"
  else
    echo "device check: $DEVICE; $(nvidia-smi -L 2>/dev/null | head -n 4 | tr '\n' ' ')"
  fi
  echo "device check: python $("$PY" -c 'import sys; print(sys.version.split()[0])'), report in $OUT_DIR/device_check.txt"
  for p in "${PARTS[@]}"; do run_part "$p"; done
  echo
  echo "== table"
  "$PY" benchmarks/device_report.py table "$WORK"
  echo
  echo "device check: $(($(date +%s) - T0))s in all (hard stop ${HARD_S}s)"
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED parts: ${FAILED[*]}"
    return 1
  fi
  echo "all parts passed"
}

trap finish EXIT
main 2>&1 | tee "$OUT_DIR/device_check.txt"
exit "${PIPESTATUS[0]}"
