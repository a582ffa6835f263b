#!/usr/bin/env bash
# Install the Debian 12 packages tpdefs builds, tests and benchmarks with. Idempotent and quiet
# when everything is present already.
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
      libfuse3-dev fuse3 libzstd-dev zstd libsqlite3-dev sqlite3 libxxhash-dev libcriterion-dev
      xdelta3 attr python3-torch python3-numpy python3-pytest python3-pytest-timeout libopenblas0-pthread
      libpq-dev postgresql-15
      libcurl4-openssl-dev libssl-dev curl
      ceph-mon ceph-osd radosgw ceph-common)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The test suite starts its own throwaway PostgreSQL servers (initdb into a temporary directory,
# Unix socket only): the cluster Debian's package may have created and started is not used.
# Likewise the S3 tests start their own single-node Ceph cluster with radosgw
# (tests/integration/rgwserver.py: memstore, 127.0.0.1 only, a temporary directory).
