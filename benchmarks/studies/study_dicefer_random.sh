#!/usr/bin/env bash
# DICE-FER from RANDOM initialisation against the baseline from random initialisation (issues 12 and 15), over
# paired seeds with `ferkit compare`: SynthFER, 60 identities (36 train, 12 validation, 12 unseen test people) x
# 20 images, 48 px gray; both arms with the same augmentation (the paper's 14 rotations x flips) and the same lr;
# DICE-FER's stage-1 defaults (separable critics, DV over all pairs, delta warm-up, stage 1 without augmentation).
#
#   confounding 0:   baseline, dicefer, and the paper's ablation dicefer_noswap (swap: false), 8 seeds
#   confounding 0.8: baseline, dicefer, 8 seeds
#
#   benchmarks/studies/study_dicefer_random.sh [--seeds 8]     # from the repository root; resumes when rerun
# Each level's table is benchmarks/results/study_dicefer_random/c<c>/summary.md (the ablation's own pair,
# dicefer_noswap - dicefer, is a --contrast there).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
common=(--seeds 8 --pretrain-epochs 0 --images 20 --batch 32 --lr 3e-4 --stage1 12 --stage2 2 --stage3 10
        --baseline-epochs 15 --baseline-augment dicefer14 --out benchmarks/results/study_dicefer_random)
"$PY" benchmarks/studies/study_dicefer.py --confounding 0 "${common[@]}" "$@"
"$PY" benchmarks/studies/study_dicefer.py --confounding 0.8 --no-ablation "${common[@]}" "$@"
