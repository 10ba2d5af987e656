"""A multi-replica production topology of real processes on one machine, for the tests
and for people (``scripts/topology.py up``). See :mod:`tests.topology._topology`."""

from tests.topology._topology import (
    Credentials,
    Gateway,
    Kind,
    LokiReceiver,
    Replica,
    Spec,
    Topology,
    read_events,
    topology,
    wait_for,
)

__all__ = [
    "Credentials",
    "Gateway",
    "Kind",
    "LokiReceiver",
    "Replica",
    "Spec",
    "Topology",
    "read_events",
    "topology",
    "wait_for",
]
