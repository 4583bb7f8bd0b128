#!/usr/bin/env bash
# ASR stage 3 on one GPU: a warm start from the shipped asr_default (stage 2), SpecAugment + waveform
# augmentation, bf16, a wall-clock budget. Made for a lent, bare GPU machine that has PyTorch but not this
# project's audio packages, reached with a size-capped upload:
#
#   # here (once): the corpus as 14 kbps Opus with phonemes filled in (espeak-ng is not needed there)
#   .venv/bin/python scripts/pack_opus.py --out .devdata --splits train,valid --max-seconds 8 --kbps 14 \
#       --data /work/data/synth_v2/manifest.jsonl --data /work/data/real/fillets_cs/manifest.jsonl \
#       --data /work/data/real/fillets_nl/manifest.jsonl --data /work/data/real/asterisk_prompts/manifest.jsonl
#   # wheels for Python 3.12 that the machine lacks (soundfile, cffi, pycparser, soxr) in .whl/ (see
#   # the device tool's notes), then there:
#   scripts/gpu_asr_stage3.sh OUT_DIR [MINUTES]
#
# Writes OUT_DIR/final (the exported model: config.json + model.safetensors), OUT_DIR/metrics.jsonl and
# OUT_DIR/train.log. The same command runs on the CPU too (slowly): nothing in it needs CUDA.
set -euo pipefail
OUT=${1:?usage: gpu_asr_stage3.sh OUT_DIR [MINUTES]}
MINUTES=${2:-5}
D=${DEVDATA:-.devdata}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then  # a bare machine: add the wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
RUN=${RUN_DIR:-/tmp/asr_stage3}
$PY -m speechlm.cli asr train --config configs/asr/default.yaml --out "$RUN" \
  --data "$D/synth_v2/manifest.jsonl" --data "$D/fillets_cs/manifest.jsonl" \
  --data "$D/fillets_nl/manifest.jsonl" --data "$D/asterisk_prompts/manifest.jsonl" \
  --set init=default --set spec_augment=true --set "aug_copies_by_manifest=[1,0,0,1]" \
  --set optim.lr=1.5e-3 --set optim.warmup_steps=300 --set optim.batch_seconds="${BATCH_SECONDS:-240}" \
  --set optim.max_minutes="$MINUTES" --set train.max_steps=100000 --set train.precision="${PRECISION:-bf16}" \
  --set train.eval_every=1000 --set train.ckpt_every=1000 --set train.keep=1 --set train.log_every=50 \
  --set num_threads=4 --set workers="${WORKERS:-14}" --set max_valid_utts=150 2>&1 \
  | tr '\r' '\n' | grep -v '^\s*$' | tee "$OUT/train.log" | grep -v '%|' || true
cp -r "$RUN/final" "$OUT/final"
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
