#!/usr/bin/env bash
# UA-FER uncertainty study (issue 13): does u flag errors? Paired seeds of the paper variant, the released
# variant and the baseline (1 - max p) on SynthFER's unseen identities, each UA-FER run fine-tuned from the
# tiny CLIP pretrained contrastively on expression captions of OTHER people (render seed 1000; the study's
# render is seed 0). Reports error-detection AUROC of u, ECE, AURC and accuracy per arm, over 5 seeds.
#
#   benchmarks/studies/study_uafer.sh            # from the repository root; OMP_NUM_THREADS is respected
#
# Needs `ferkit compare` (the paired-seed study command). The pretrained CLIP is made once and reused; the
# study's finished runs are in benchmarks/results/study_uafer, so rerunning only rewrites the summary (a
# changed config is refused; remove that folder to redo it).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=benchmarks/results/study_uafer          # each run's result.json and the summaries, kept in the repository
CLIP=runs/study_uafer/clip_tiny_captions.pt # the path the configs name (made here when missing)
STUDY=benchmarks/studies/uafer
mkdir -p "$OUT" "$(dirname "$CLIP")"
if [ ! -f "$CLIP" ]; then
  # the CLIP_DEMO recipe of ferkit.pretrain.clip (the one tests/test_uafer_learning.py and `ferkit demo` use)
  ferkit pretrain clip --captions expression --epochs 40 --batch-size 64 --lr 2e-3 --synth-seed 1000 \
    --synth-identities 60 --synth-images 28 --precision fp32 --out "$CLIP"
fi
ferkit compare paper=$STUDY/paper.yaml released=$STUDY/released.yaml baseline=$STUDY/baseline.yaml \
  paper_bare=$STUDY/paper_bare.yaml \
  --seeds 5 --out "$OUT" "$@"
