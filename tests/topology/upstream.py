"""The MCP server behind the topology's gateways: the demo orders server, unprotected
(the gateways guard it), as its own process.

    python -m tests.topology.upstream PORT
"""

from __future__ import annotations

import sys

import uvicorn

from mcpward.demo import create_demo_app


def main(port: int) -> None:
    app, _ = create_demo_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="none")


if __name__ == "__main__":
    main(int(sys.argv[1]))
