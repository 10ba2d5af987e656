"""AWS Secrets Manager through boto3: one secret per name, its versions told apart by
staging labels (AWSCURRENT, AWSPREVIOUS, AWSPENDING).

Two kinds of conditional write are built from what the API offers:

- *successor writes* (token stores): the new version's ``ClientRequestToken`` is derived
  from the version it replaces, so of two writers that read the same version only the
  first can create its successor; the second gets ``ResourceExistsException``
  (the token is the version id, and a version's value cannot change).
- *label moves* (rotation): ``UpdateSecretVersionStage`` with ``RemoveFromVersionId``
  fails unless the label is still on that version.

Region, credentials and endpoint come from the standard AWS configuration (environment,
``~/.aws``, instance or task role); pass a client to choose otherwise.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mcpward._secret_stores import SecretNotFound, SecretStoreError, StoreConflict, import_extra

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
_SUCCESSOR = uuid.UUID("5f0c9a52-8d5e-4c36-9d0e-6f5b0d7a3e11")  # namespace of derived ids
T = TypeVar("T")
_DENIED = {"AccessDeniedException", "AccessDenied", "403"}


@dataclass(frozen=True)
class Version:
    version_id: str
    value: str = field(repr=False)


def successor_id(name: str, version_id: str | None) -> str:
    """The one version id a conditional write after ``version_id`` may create."""
    return str(uuid.uuid5(_SUCCESSOR, f"{name}\n{version_id or ''}"))


class _NoWireDumps(logging.Filter):
    """botocore logs request and response bodies, so SecretString values, at DEBUG on
    these loggers; drop those records whoever turned DEBUG on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _silence_wire_dumps() -> None:
    for name in ("botocore.endpoint", "botocore.parsers"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoWireDumps) for f in logger.filters):
            logger.addFilter(_NoWireDumps())


class AwsSecrets:
    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self._client = client
        _silence_wire_dumps()

    @property
    def client(self) -> SecretsManagerClient:
        if self._client is None:
            boto3 = import_extra("boto3", "aws")
            try:
                self._client = boto3.client("secretsmanager")
            except Exception as exc:  # NoRegionError and the like: configuration
                raise SecretStoreError(
                    f"cannot build an AWS Secrets Manager client: {type(exc).__name__} "
                    "(configure AWS_DEFAULT_REGION and credentials the usual AWS way)"
                ) from None
        return self._client

    def read(self, name: str, stage: str = CURRENT) -> Version | None:
        """The version holding ``stage``; None when there is no such secret or label."""
        # VersionStage is always sent: it is the API's default, and says what we mean.
        got = _maybe(
            "GetSecretValue",
            name,
            lambda: self.client.get_secret_value(SecretId=name, VersionStage=stage),
        )
        if got is None:
            return None
        if "SecretString" not in got:
            raise SecretStoreError(f"AWS secret {name} holds binary data, not a string")
        return Version(got["VersionId"], got["SecretString"])

    def stages(self, name: str) -> dict[str, list[str]] | None:
        """Version id -> staging labels; None when there is no such secret."""
        described = _maybe(
            "DescribeSecret",
            name,
            lambda: self.client.describe_secret(SecretId=name),
        )
        return None if described is None else dict(described.get("VersionIdsToStages", {}))

    def put(
        self, name: str, value: str, *, version_id: str, stages: list[str] | None = None
    ) -> None:
        """Add version ``version_id`` (labelled AWSCURRENT unless ``stages`` say otherwise),
        creating the secret if it does not exist; a secret's first version is always
        AWSCURRENT. An existing ``version_id`` with another value is a StoreConflict."""
        extra: dict[str, Any] = {"VersionStages": stages} if stages else {}
        put = _maybe(
            "PutSecretValue",
            name,
            lambda: self.client.put_secret_value(
                SecretId=name, SecretString=value, ClientRequestToken=version_id, **extra
            ),
        )
        if put is None:
            _call(
                "CreateSecret",
                name,
                lambda: self.client.create_secret(
                    Name=name,
                    SecretString=value,
                    ClientRequestToken=version_id,
                    Description="written by mcpward",
                ),
            )

    def put_successor(self, name: str, value: str, after: str | None) -> str:
        """Write ``value`` as the version that follows ``after`` (None: the first one), or
        raise StoreConflict when another writer already wrote that version."""
        version_id = successor_id(name, after)
        self.put(name, value, version_id=version_id)
        return version_id

    def move_current(self, name: str, to: str, from_: str | None) -> None:
        """Make ``to`` AWSCURRENT if ``from_`` still is (AWS moves AWSPREVIOUS to it)."""
        extra: dict[str, Any] = {"RemoveFromVersionId": from_} if from_ else {}
        _call(
            "UpdateSecretVersionStage",
            name,
            lambda: self.client.update_secret_version_stage(
                SecretId=name, VersionStage=CURRENT, MoveToVersionId=to, **extra
            ),
        )

    def add_label(self, name: str, stage: str, version_id: str) -> None:
        """Attach a label no other version carries (a version keeps its other labels)."""
        _call(
            "UpdateSecretVersionStage",
            name,
            lambda: self.client.update_secret_version_stage(
                SecretId=name, VersionStage=stage, MoveToVersionId=version_id
            ),
        )

    def remove_label(self, name: str, stage: str, version_id: str) -> None:
        _call(
            "UpdateSecretVersionStage",
            name,
            lambda: self.client.update_secret_version_stage(
                SecretId=name, VersionStage=stage, RemoveFromVersionId=version_id
            ),
        )


def _maybe(operation: str, name: str, call: Callable[[], T]) -> T | None:
    """Like _call, with None for a missing secret (or label)."""
    try:
        return _call(operation, name, call)
    except SecretNotFound:
        return None


def _call(operation: str, name: str, call: Callable[[], T]) -> T:
    """Run one API call; botocore's errors become SecretStoreError naming the operation
    and the secret, never a value."""
    errors = import_extra("botocore.exceptions", "aws")
    try:
        return call()
    except errors.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "ResourceNotFoundException":
            raise SecretNotFound(f"AWS Secrets Manager has no secret {name}") from None
        if code == "ResourceExistsException":
            raise StoreConflict(
                f"AWS Secrets Manager: {name} was changed by another writer ({operation})"
            ) from None
        if code in _DENIED or status == 403:
            raise SecretStoreError(
                f"AWS Secrets Manager denied secretsmanager:{operation} on {name}: "
                "the IAM policy must allow it for this secret's name prefix"
            ) from None
        raise SecretStoreError(
            f"AWS Secrets Manager refused {operation} on {name}: {code}"
        ) from None
    except errors.BotoCoreError as exc:
        # Connection failures, missing credentials or region: the class name says which.
        raise SecretStoreError(
            f"AWS Secrets Manager {operation} on {name} failed: {type(exc).__name__}"
        ) from None
