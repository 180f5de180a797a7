#!/bin/sh
# Compresses every file of a folder on the mesh, each on whichever node is free, and
# brings the .gz files back into FOLDER/compressed/:
#
#   sh examples/run/compress.sh FOLDER
#
# Each input is a path relative to FOLDER; --send-inputs ships each file with its task,
# --return '{}.gz' brings the result back. Nodes need `mesh join --allow-run` (this
# machine's own node always runs its user's tasks). Run it twice: the second time the
# joblog says everything is done and nothing runs.
set -eu
dir=${1:?usage: compress.sh FOLDER}
cd "$dir"
find . -type f ! -path './compressed/*' ! -name '*.gz' | sed 's|^\./||' |
    mesh run --send-inputs --return '{}.gz' --results compressed \
        --joblog compress.joblog --resume -- gzip -k -9 {}
