#!/usr/bin/env bash
# The smoke run (scripts/smoke.mjs: start, create, status, delete, stop) on
# other Node releases than the one the suite ran on, e.g.
#
#   bash scripts/node-matrix.sh 22 24
#
# For each major version, npm's `node` package gives the runtime, and a copy
# of the built project gets its own better-sqlite3 for that runtime:
# - Node 22: the lockfile's better-sqlite3 12, rebuilt for its ABI (a
#   prebuilt binary when one can be downloaded, else compiled against the
#   headers the `node` package ships);
# - Node 24 and later: better-sqlite3 13, as docs/service.md installs it
#   there. 12 aborts on Node >= 24.19 ("Assertion failed: (env) != nullptr"
#   in node::RemoveEnvironmentCleanupHook from Statement::~Statement, when a
#   statement is garbage-collected); 13 (Node-API, prebuilt) does not, but
#   needs Node >= 22, so the lockfile keeps 12 for Node 20.
# The project's own node_modules, which the suite uses, is never touched: the
# copy links to every other package. Run after `npm ci` and `npm run build`.
# Fails when any version fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -f dist/server.js ] || { echo "node-matrix: dist/ is missing: run \`npm run build\` first" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: bash scripts/node-matrix.sh MAJOR..." >&2; exit 2; }

for major in "$@"; do
  begin=$SECONDS
  work=$(mktemp -d "${TMPDIR:-/tmp}/ec2-api-node$major-XXXXXX")
  trap 'rm -rf "$work"' EXIT

  npm install --prefix "$work/runtime" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node@$major" >/dev/null
  node="$work/runtime/node_modules/.bin/node"
  headers=$(echo "$work"/runtime/node_modules/node/node_modules/node-*/include/node/node_api.h)
  [ -f "$headers" ] || { echo "node-matrix: node@$major came without its headers" >&2; exit 1; }
  nodedir=$(dirname "$(dirname "$(dirname "$headers")")")
  echo "node-matrix: Node $("$node" --version) ($((SECONDS - begin)) s to install)"

  # The project as built, except node_modules: links to every package but
  # better-sqlite3, which is copied and rebuilt for this runtime.
  app="$work/app"
  mkdir "$app"
  tar -C "$root" -cf - --exclude=./node_modules --exclude=./.git --exclude=./.venv --exclude=./data . | tar -C "$app" -xf -
  [ -e "$root/.venv" ] && ln -s "$root/.venv" "$app/.venv"
  mkdir "$app/node_modules"
  for entry in "$root"/node_modules/* "$root"/node_modules/.bin; do
    [ "$(basename "$entry")" = better-sqlite3 ] || ln -s "$entry" "$app/node_modules/"
  done
  built=$SECONDS
  if [ "$major" -ge 24 ]; then
    npm install --prefix "$work/sqlite" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "better-sqlite3@^13" >/dev/null
    ln -s "$work"/sqlite/node_modules/better-sqlite3 "$work"/sqlite/node_modules/node-addon-api "$app/node_modules/"
  else
    tar -C "$root/node_modules" -cf - --exclude=./better-sqlite3/build better-sqlite3 | tar -C "$app/node_modules" -xf -
    (cd "$app" && PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$nodedir" \
      npm rebuild better-sqlite3 --foreground-scripts --no-audit --no-fund --loglevel=error >"$work/rebuild.log" 2>&1) ||
      { cat "$work/rebuild.log" >&2; echo "node-matrix: better-sqlite3 did not build for Node $major" >&2; exit 1; }
  fi
  version=$(cd "$app" && "$node" -p "require('better-sqlite3/package.json').version")
  echo "node-matrix: better-sqlite3 $version ready for Node $major in $((SECONDS - built)) s"

  "$node" "$app/scripts/smoke.mjs" "$app"
  echo "node-matrix: Node $major passed in $((SECONDS - begin)) s"
  rm -rf "$work"
  trap - EXIT
done
