#!/usr/bin/env bash
# The duration-based TTS model (speechlm acoustic train) trained on one GPU: several sizes at once, from
# scratch, on the same 8-bit-packed feature cache, each with a wall-clock budget. Made for a lent, bare GPU
# machine that has PyTorch but not this project's audio packages, reached with a size-capped upload:
#
#   # here (once): the feature caches of the Piper corpus, packed (scripts/pack_features.py)
#   .venv/bin/python scripts/pack_features.py pack data/piper_joe/features20_t25.npz \
#       data/piper_joe/features20_t25_b.npz --max-utts 7200 -o .devdata/features.q8.npz
#   # there:
#   scripts/gpu_tts_duration.sh OUT_DIR [MINUTES]
#
# Writes OUT_DIR/<variant>.tar (the exported model folder + its log.jsonl; split into .tar.00, .tar.01 when over
# 15 MB) for each variant. The same command runs on the CPU (DEVICE=cpu), slowly.
set -euo pipefail
OUT=${1:?usage: gpu_tts_duration.sh OUT_DIR [MINUTES]}
MINUTES=${2:-6}
D=${DEVDATA:-.devdata}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
RUNS=${RUN_DIR:-/tmp/tts_runs}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT" "$RUNS"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
$PY scripts/pack_features.py unpack "$D/features.q8.npz" -o "$RUNS/features.npz"
# variants: "name=flags;name=flags"
VARIANTS=${VARIANTS:-"l4k3=--layers 4 --ff-kernel 3;l6k3=--layers 6 --ff-kernel 3;l4k5=--layers 4 --ff-kernel 5;l6k5=--layers 6 --ff-kernel 5"}
names=()
IFS=';' read -r -a specs <<< "$VARIANTS"
for spec in "${specs[@]}"; do
  name=${spec%%=*}; flags=${spec#*=}; names+=("$name")
  # shellcheck disable=SC2086
  $PY -m speechlm.cli acoustic train "$RUNS/features.npz" --out "$RUNS/$name" --device "$DEVICE" \
    --steps "${STEPS:-100000}" --max-minutes "$MINUTES" --batch-frames "${BATCH_FRAMES:-12000}" --threads 2 $flags \
    > "$RUNS/$name.log" 2>&1 &
done
wait
for name in "${names[@]}"; do
  tail -c 300 "$RUNS/$name.log" | tr '\r' '\n' | tail -2
  tail -n 2 "$RUNS/$name/log.jsonl"
  rm -rf "$RUNS/export/$name"; mkdir -p "$RUNS/export"
  $PY -m speechlm.cli acoustic export "$RUNS/$name" -o "$RUNS/export/$name"
  cp "$RUNS/$name/log.jsonl" "$RUNS/export/$name/log.jsonl"
  tar cf "$OUT/$name.tar" -C "$RUNS/export" "$name"
  if [ "$(stat -c %s "$OUT/$name.tar")" -gt 15000000 ]; then
    split -b 15000000 -d -a 2 "$OUT/$name.tar" "$OUT/$name.tar."
    rm "$OUT/$name.tar"
  fi
done
ls -la "$OUT"
