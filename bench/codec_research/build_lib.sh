#!/bin/bash
# Build the project's codec, unmodified, as libcodec.so beside these scripts (cc.py loads it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); R=$HERE/../..
gcc -O2 -march=native -shared -fPIC -D_GNU_SOURCE -I"$R/core/codec" -I"$R/core/common" -I"$R/core/layout" \
  "$R"/core/codec/{eliasdelta,planes,codec,codec_zstd,codec_planes,codec_sparse}.c -lzstd -o "$HERE/libcodec.so"
