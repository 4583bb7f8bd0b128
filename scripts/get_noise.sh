#!/usr/bin/env bash
# Fetch the music and sound effects the speech enhancer (denoise_default) trains on, without installing them.
#
#   scripts/get_noise.sh [OUT]        (default OUT: data/noise; no root needed: apt-get download + dpkg-deb -x)
#
# Packages (Debian main): frozen-bubble-data (3 soundtracks, effects), lincity-ng-data (3 soundtracks, city
# sounds), chromium-bsu-data (2 soundtracks, explosions), sound-theme-freedesktop (desktop effects). None of them
# is used by the constructed test set (speechlm.pipeline.construct mixes fillets-ng's music and effects), so the
# enhancer is measured on noise it never heard. Voice-like effects (applause, crowds, snoring) are left out.
set -euo pipefail

OUT=${1:-data/noise}
PACKAGES=(frozen-bubble-data lincity-ng-data chromium-bsu-data sound-theme-freedesktop)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download "${PACKAGES[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
for deb in "$TMP"/*.deb; do
  dpkg-deb -x "$deb" "$TMP/x"
done
mkdir -p "$OUT/music" "$OUT/effects"
find "$TMP/x" -type f \( -name '*.ogg' -o -name '*.wav' -o -name '*.oga' \) -print0 |
  while IFS= read -r -d '' f; do
    base=$(basename "$f"); pkg=$(echo "$f" | sed -E 's|.*/usr/share/(games/)?([^/]+)/.*|\2|')
    case "$base" in
      applause*|SportsCroud*|snore*|chatted*|noh*|hurry*|School*|Residential*|Shanty*) continue ;;
    esac
    case "$f" in
      */music/*|*mainzik*|*introzik*|*/music_*) dest="$OUT/music" ;;
      *) dest="$OUT/effects" ;;
    esac
    cp "$f" "$dest/${pkg}__${base// /_}"
  done
echo "music: $(ls "$OUT/music" | wc -l) files, effects: $(ls "$OUT/effects" | wc -l) files in $OUT"
