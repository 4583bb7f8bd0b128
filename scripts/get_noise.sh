#!/usr/bin/env bash
# Fetch the music and sound effects the speech enhancer (denoise_default) trains on, without installing them.
#
#   scripts/get_noise.sh [OUT]        (default OUT: data/noise; no root needed: apt-get download + dpkg-deb -x)
#
# Packages (Debian main): frozen-bubble-data (3 soundtracks, effects), lincity-ng-data (3 soundtracks, city
# sounds), chromium-bsu-data (2 soundtracks, explosions), sound-theme-freedesktop (desktop effects). None of them
# is used by the constructed test set (speechlm.pipeline.construct mixes fillets-ng's music and effects), so the
# enhancer is measured on noise it never heard. Voice-like effects (applause, crowds, snoring) are left out.
# Music only, a 90-s excerpt of every track (from 30 s in; 16-bit mono 22.05 kHz WAV; 120 min): wesnoth-1.16-music
# (orchestral), warzone2100-music (electronic, ambient), marsshooter-data, extremetuxracer-data; 91 tracks.
set -euo pipefail

OUT=${1:-data/noise}
PACKAGES=(frozen-bubble-data lincity-ng-data chromium-bsu-data sound-theme-freedesktop)
MUSIC_PACKAGES=(wesnoth-1.16-music warzone2100-music marsshooter-data extremetuxracer-data)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download "${PACKAGES[@]}" "${MUSIC_PACKAGES[@]}" 2>&1 |
  grep -v "^W: Download is performed unsandboxed" || true)
for pkg in "${PACKAGES[@]}"; do
  dpkg-deb -x "$TMP/${pkg}"_*.deb "$TMP/x"
done
for pkg in "${MUSIC_PACKAGES[@]}"; do
  dpkg-deb -x "$TMP/${pkg}"_*.deb "$TMP/m"
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
find "$TMP/m" -type f -path '*music*' \( -name '*.ogg' -o -name '*.opus' \) -print0 | sort -z |
  while IFS= read -r -d '' f; do
    pkg=$(echo "$f" | sed -E 's|.*/usr/share/(games/)?([^/]+)/.*|\2|'); base=$(basename "$f"); base=${base%.*}
    len=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" | cut -d. -f1)
    start=$(( ${len:-0} > 120 ? 30 : 0 ))
    ffmpeg -nostdin -v error -y -ss "$start" -t 90 -i "$f" -ac 1 -ar 22050 -c:a pcm_s16le \
      "$OUT/music/${pkg}__${base// /_}.wav"
  done
echo "music: $(ls "$OUT/music" | wc -l) files, effects: $(ls "$OUT/effects" | wc -l) files in $OUT"
