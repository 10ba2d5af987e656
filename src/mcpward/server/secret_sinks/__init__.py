"""Where automated rotation hands a new client secret, by ``secret_sink`` spec:

- ``dir:PATH``: a 0600 file per client in a directory a deployment mounts;
- ``command:CMD``: a command that gets the secret on stdin;
- ``aws-sm:NAME-TEMPLATE``: a secret per client in AWS Secrets Manager
  (``aws-sm:mcpward/clients/{client_id}``);
- ``vault:MOUNT/PATH-TEMPLATE``: a path per client in Vault's KV v2 engine
  (``vault:secret/mcpward/clients/{client_id}``).

A template without ``{client_id}`` gets the client id appended as its last segment.
"""

from __future__ import annotations

from mcpward.server.secret_sinks._base import SecretSink, Staged, name_for, safe_name
from mcpward.server.secret_sinks.aws_sm import AwsSecretsManagerSink
from mcpward.server.secret_sinks.command import CommandSink
from mcpward.server.secret_sinks.directory import DirectorySink
from mcpward.server.secret_sinks.vault import VaultSink

__all__ = [
    "AwsSecretsManagerSink",
    "CommandSink",
    "DirectorySink",
    "SecretSink",
    "Staged",
    "VaultSink",
    "name_for",
    "safe_name",
    "sink_from_spec",
]


def sink_from_spec(spec: str) -> SecretSink:
    kind, sep, rest = spec.partition(":")
    if sep and rest:
        if kind == "dir":
            return DirectorySink(rest)
        if kind == "command":
            return CommandSink(rest)
        if kind == "aws-sm":
            return AwsSecretsManagerSink(rest)
        if kind == "vault":
            return VaultSink.from_spec(rest)
    raise ValueError(
        "secret_sink must be dir:PATH, command:COMMAND, aws-sm:NAME-TEMPLATE or "
        "vault:MOUNT/PATH-TEMPLATE"
    )
