#!/usr/bin/env bash
# Fetches axe-core (the accessibility rules engine the browser tests inject into each page)
# from the npm registry into .cache/axe-core/ and prints the path of its axe.min.js.
# The version is pinned and the tarball checked against the registry's published digest;
# axe itself is never committed (.cache/ is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.14.1
INTEGRITY="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
dir=.cache/axe-core/$VERSION
if [ ! -s "$dir/axe.min.js" ]; then
  command -v npm >/dev/null 2>&1 || { echo "npm is not installed (scripts/test-services.sh installs it)" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "axe-core@$VERSION" >/dev/null)
  tarball="$work/axe-core-$VERSION.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$INTEGRITY" ]; then
    echo "axe-core $VERSION: the tarball's digest $actual is not the published $INTEGRITY" >&2
    exit 1
  fi
  mkdir -p "$dir"
  tar -xzf "$tarball" -C "$work" package/axe.min.js package/LICENSE
  mv "$work/package/LICENSE" "$dir/LICENSE"
  mv "$work/package/axe.min.js" "$dir/axe.min.js"
fi
echo "$PWD/$dir/axe.min.js"
