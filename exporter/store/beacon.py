"""Beacon: ask it for the data Redis URL (blissdata's own client, bounded by a timeout)."""

from __future__ import annotations

import gevent

from .errors import BeaconError, describe_error


def resolve_beacon(beacon_host: str, timeout: float = 5.0) -> str:
    """Ask Beacon for the data Redis URL; raise OSError/RuntimeError with a readable message."""
    from blissdata.beacon.data import BeaconData

    host, _, port = beacon_host.rpartition(":")
    with gevent.Timeout(timeout, OSError(f"Beacon {beacon_host} did not answer within {timeout:.0f} s")):
        client = BeaconData(host=host, port=int(port), timeout=timeout)
        try:
            return client.get_redis_data_db()
        finally:
            client.close()


def data_store_url(beacon_host: str) -> str:
    """The data Redis URL Beacon gives; BeaconError with a readable reason if it cannot."""
    try:
        return resolve_beacon(beacon_host)
    except Exception as exc:
        raise BeaconError(f"Beacon {beacon_host}: {describe_error(exc)}") from exc
