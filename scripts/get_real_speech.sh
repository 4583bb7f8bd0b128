#!/usr/bin/env bash
# Install the real recorded speech that Debian ships (about 190 MB of packages) and import it as manifests.
#
#   scripts/get_real_speech.sh [OUT]        (default OUT: data/real; needs root or sudo for apt-get)
#
# Writes OUT/<name>/manifest.jsonl (+ manifest.jsonl.skipped.jsonl) for:
#   trainable: fillets_cs, fillets_nl, klettres, asterisk_prompts (fr Armelle, es-CO, it Menardi)
#   HELD-OUT (split=test, tags.heldout=true; never train on them):
#              asterisk_core_{en,fr,es,it}, pocketsphinx_testdata, codec2_examples
# Note: asterisk_prompts (train) and asterisk_core_{fr,es,it} (test) share prompt texts (different voices).
# and OUT/READY when every import succeeded. Not part of scripts/setup.sh: the packages are large.
#
# asterisk-core-sounds-fr/-es (which carry core-sounds-fr/es.txt) conflict with asterisk-prompt-fr-armelle and
# -es-co, so those transcript packages are only downloaded and unpacked into OUT/_debian_extra/, not installed.
set -euo pipefail

OUT=${1:-data/real}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEECHLM=${SPEECHLM:-$ROOT/.venv/bin/speechlm}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

PACKAGES=(
  fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl
  klettres-data
  asterisk-prompt-fr-armelle asterisk-prompt-es-co asterisk-prompt-it-menardi-wav
  asterisk-core-sounds-en asterisk-core-sounds-en-wav
  asterisk-core-sounds-fr-wav asterisk-core-sounds-es-wav asterisk-core-sounds-it-wav
  codec2-examples pocketsphinx-testdata
)
TRANSCRIPT_DEBS=(asterisk-core-sounds-fr asterisk-core-sounds-es asterisk-core-sounds-it)

echo "installing: ${PACKAGES[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

mkdir -p "$OUT/_debian_extra"
EXTRA=$(cd "$OUT/_debian_extra" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download "${TRANSCRIPT_DEBS[@]}")
for deb in "$TMP"/*.deb; do
  dpkg-deb -x "$deb" "$TMP/x"
done
find "$TMP/x" -name 'core-sounds-*.txt*' -exec cp {} "$EXTRA/" \;
cp /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt* "$EXTRA/" 2>/dev/null || true
ls "$EXTRA"

rm -f "$OUT/READY"
run() {  # run NAME ARGS...: import one corpus to OUT/NAME/manifest.jsonl
  local name=$1; shift
  echo "== $name"
  "$SPEECHLM" data import --out "$OUT/$name/manifest.jsonl" -q "$@"
}
run fillets_cs --format fillets --lang cs
run fillets_nl --format fillets --lang nl
run klettres --format klettres
run asterisk_prompts --format asterisk-prompts --transcripts "$EXTRA"
for lang in en fr es it; do
  run asterisk_core_$lang --format asterisk-core --lang $lang --transcripts "$EXTRA"
done
run pocketsphinx_testdata --format pocketsphinx-testdata
run codec2_examples --format codec2-examples

date -u +"%Y-%m-%dT%H:%M:%SZ real-speech manifests complete" > "$OUT/READY"
echo "done: $OUT/READY"
