#!/usr/bin/env bash
# UA-FER uncertainty study (issue 13): does u flag errors? Paired seeds of the paper variant, the released
# variant and the baseline (1 - max p) on SynthFER's unseen identities, each UA-FER run fine-tuned from the
# tiny CLIP pretrained contrastively on expression captions of OTHER people (render seed 1000; the study's
# render is seed 0). Reports error-detection AUROC of u, ECE, AURC and accuracy per arm, over 5 seeds.
#
#   benchmarks/study_uafer.sh            # from the repository root; OMP_NUM_THREADS is respected
#
# Needs `ferkit compare` (the paired-seed study command). The pretrained CLIP is made once and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/study_uafer
CLIP=$OUT/clip_tiny_captions.pt
STUDY=benchmarks/studies/uafer
mkdir -p "$OUT"
if [ ! -f "$CLIP" ]; then
  # the CLIP_DEMO recipe of ferkit.pretrain.clip (the one tests/test_uafer_learning.py and `ferkit demo` use)
  ferkit pretrain clip --captions expression --epochs 40 --batch-size 64 --lr 2e-3 --synth-seed 1000 \
    --synth-identities 60 --synth-images 28 --precision fp32 --out "$CLIP"
fi
ferkit compare paper=$STUDY/paper.yaml released=$STUDY/released.yaml baseline=$STUDY/baseline.yaml \
  --seeds 5 --out "$OUT" "$@"
