#!/usr/bin/env bash
# Seeds the cargo-fuzz corpora from the shared OpenFlow 1.3 conformance packets.
#
#   proto/fuzz/seed-corpus.sh [CONFORMANCE_DIR]
#
# CONFORMANCE_DIR defaults to shared/conformance/of13 beside the repository (../shared from the
# repository root). Each *.packet (one whole message) becomes a seed of both targets; decode
# also gets the whole set as one stream, to start from multi-message input. Corpora live in
# proto/fuzz/corpus/, which git ignores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${1:-$here/../../../shared/conformance/of13}"
if ! compgen -G "$src/*.packet" > /dev/null; then
    echo "no *.packet files in $src" >&2
    exit 1
fi
for target in decode parse_message; do
    mkdir -p "$here/corpus/$target"
    cp "$src"/*.packet "$here/corpus/$target/"
done
cat "$src"/*.packet > "$here/corpus/decode/all-conformance-packets.stream"
echo "seeded $(ls "$src"/*.packet | wc -l) packets from $src into $here/corpus/{decode,parse_message}"
