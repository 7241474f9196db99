"""Data stores the exporter reads: what the watchers need from one, and one module per data model.

`base.Source` is the protocol the watchers use; `blissdata2.DataStoreSource` implements it on a Redis
Stack written by blissdata 2.x (BLISS 2), `legacy.LegacySource` on a plain Redis written by blissdata
0.x (BLISS 1.x); `detect` tells them apart. URL handling, error classification, the self-test, scan
documents and data-stream decoding are modules of their own, shared by every data model.
"""

from typing import TYPE_CHECKING

from .blissdata2 import ACL_RULES, HISTORY_STREAM, READ_COMMANDS, SUPPORTED_PROTOCOL, DataStoreSource
from .documents import PROTOCOL_KEY, SCAN_PREFIX, STREAM_PREFIX, ScanDocument, parse_scan_document, parse_streams
from .errors import (
    CONNECTION_ERRORS,
    BeaconError,
    DataStoreError,
    DataStoreReadError,
    DataStoreUnavailable,
    KeyReadError,
    ReasonError,
    ScanGone,
    ScanInvalid,
    describe_error,
    error_code,
    is_unavailable,
)
from .streams import SEAL_ID, STREAM_ERROR_REASONS, StreamKind, StreamStats
from .urls import normalize_redis_url, redact_url

if TYPE_CHECKING:  # every data model implements the watchers' protocol: the type checker holds them to it
    from .base import Source
    from .blissdata2 import HistoryPosition
    from .legacy import LegacyPosition, LegacySource

    _DATA_MODELS: tuple[type[Source[HistoryPosition]], type[Source[LegacyPosition]]] = (DataStoreSource, LegacySource)

__all__ = [
    "ACL_RULES", "CONNECTION_ERRORS", "HISTORY_STREAM", "PROTOCOL_KEY", "READ_COMMANDS", "SCAN_PREFIX", "SEAL_ID",
    "STREAM_ERROR_REASONS", "STREAM_PREFIX", "SUPPORTED_PROTOCOL", "BeaconError", "DataStoreError",
    "DataStoreReadError", "DataStoreSource", "DataStoreUnavailable", "KeyReadError", "ReasonError", "ScanDocument",
    "ScanGone", "ScanInvalid", "StreamKind", "StreamStats", "describe_error", "error_code", "is_unavailable", "normalize_redis_url",
    "parse_scan_document", "parse_streams", "redact_url",
]
