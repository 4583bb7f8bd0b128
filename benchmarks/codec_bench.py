"""Codec benchmark (same as ``speechlm codec bench``): quality vs Opus/Codec2, speed vs EnCodec.

.venv/bin/python benchmarks/codec_bench.py --data /work/data/real/asterisk_core_en/manifest.jsonl -o out/bench
"""

from __future__ import annotations

import sys

from speechlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["codec", "bench", *sys.argv[1:]]))
