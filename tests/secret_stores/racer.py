"""One of the processes racing in test_token_stores: a fresh `HumanAuth` per round, so
each round refreshes from the shared store, with its own lock directory (as on another
machine, where a file lock could not help). Run with
``python -m tests.secret_stores.racer KIND RESOURCE ROUNDS``: it prints "ready", starts
when a line arrives on stdin, so that both racers refresh together, and prints how many
tokens it got, or exits 1 when a refresh failed."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from mcpward.client import AwsSecretsManagerStore, HumanAuth, TokenStore, VaultStore


async def main(kind: str, resource: str, rounds: int) -> None:
    store: TokenStore = AwsSecretsManagerStore() if kind == "aws-sm" else VaultStore()
    tokens = 0
    with tempfile.TemporaryDirectory() as locks:
        for _ in range(rounds):
            auth = HumanAuth(resource, store=store, interactive=False, lock_dir=Path(locks))
            try:
                tokens += bool(await auth.token())
            finally:
                await auth.aclose()
    print(json.dumps({"tokens": tokens}), flush=True)


if __name__ == "__main__":
    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
