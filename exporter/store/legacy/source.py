"""LegacySource: the BLISS 1.x data model as a store.base.Source, made of this package's parts."""

from __future__ import annotations

from typing import Callable, Collection, Iterable, Mapping

from ...model import State
from ..base import Closing, Lifetime, NewScans, References, ScanStreams
from ..batch import Reply
from ..documents import ScanDocument
from ..errors import ScanGone, ScanInvalid, raises_store_errors
from ..redis_source import RedisSource
from ..streams import StreamKind, StreamStats, XInfo, parse_xinfo_stream
from .check import check_store
from .closing import read_alive, read_closing
from .data_streams import read_scan_streams
from .discovery import Discovery, LegacyPosition
from .documents import LegacyScanDocument, read_documents
from .references import read_references
from .states import read_lifetimes, read_states
from .stats import legacy_stats


class LegacySource(RedisSource):
    """Reads a BLISS 1.x data store (database 1 of the data Redis); never writes."""

    model = "legacy"

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False,
                 on_stream_error: Callable[[str], None] | None = None, sessions: Iterable[str] = ()):
        """`sessions`: glob patterns of the sessions to follow (default: every session).

        The others as RedisSource's; BLISS 1.x's Redis 7.0 is read in RESP2.
        """
        super().__init__(url, socket_timeout, single_connection, on_stream_error, protocol=2)
        self.sessions = tuple(sessions or ())
        self._discovery = Discovery(self.redis, self.sessions)

    # -- health -----------------------------------------------------------------------------------
    @raises_store_errors
    def check(self) -> None:
        """Raise unless this is a legacy store we can read with every command we use (one round trip
        for the probes; a denied command names itself: DataStoreUnavailable)."""
        check_store(self.redis, self.sessions)

    # -- discovery --------------------------------------------------------------------------------
    @raises_store_errors
    def anchor(self) -> LegacyPosition:
        """Now: the last id of every container's `_children_list` under the followed sessions."""
        return self._discovery.anchor()

    @raises_store_errors
    def new_scans(self, position: LegacyPosition, block_ms: int | None) -> NewScans[LegacyPosition]:
        """Scans created after `position`: one XREAD over every followed `_children_list`."""
        return self._discovery.new_scans(position, block_ms)

    @raises_store_errors
    def scan_keys(self) -> list[str]:
        """Every scan / scan_group node under the followed sessions now, oldest first."""
        return self._discovery.scan_keys()

    @raises_store_errors
    def created_since(self, started: float) -> tuple[list[str], bool]:
        """Scans listed in the followed containers since `started` (server time), gone ones included;
        True: `_children_list` streams are never trimmed."""
        return self._discovery.created_since(started)

    @raises_store_errors
    def scans_created_after(self, position: LegacyPosition, keys: list[str]) -> list[str]:
        """Those of `keys` listed in their container's `_children_list` after the position, oldest first."""
        return self._discovery.scans_created_after(position, keys)

    def creation_ids(self, keys: list[str]) -> dict[str, str | None]:
        """The NEW_NODE id (server ms: creation time) of each scan in its container's list; None if not found."""
        return self._discovery.creation_ids(keys)

    def proposal_of(self, key: str) -> str:
        """The proposal a scan node is under (the nearest proposal node among its ancestors), "" if none."""
        return self._discovery.proposal_of(key)

    # -- scan documents ---------------------------------------------------------------------------
    @raises_store_errors
    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        """Node hash and `_info` of several scans, one round trip; each a document or why not
        (`deleted_ok`: legacy scans are never "deleted", only expired or evicted: it changes nothing)."""
        out: dict[str, ScanDocument | ScanGone | ScanInvalid] = {}
        for key, doc in read_documents(self.redis, keys).items():
            if isinstance(doc, LegacyScanDocument):
                self._discovery.place(doc)
            out[key] = doc
        return out

    @raises_store_errors
    def lifetimes(self, docs: list[ScanDocument]) -> dict[str, Lifetime]:
        """Creation (the scan's NEW_NODE id in its container's list), PREPARED (`_prepared`'s entry)
        and CLOSED (`_end`'s entry) times, server time; created None for a scan whose node is gone."""
        if not docs:
            return {}
        return read_lifetimes(self.redis, docs, self.creation_ids([doc.key for doc in docs]))

    # -- states -----------------------------------------------------------------------------------
    @raises_store_errors
    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State | None]]]:
        """New entries of `_prepared` (PREPARED) and `_end` (CLOSED) streams; the cursor is the entry
        id (auto id: server ms). An entry whose `__EVENT__` does not match its stream gives None."""
        return read_states(self.redis, cursors, block_ms)

    # -- data streams -----------------------------------------------------------------------------
    @raises_store_errors
    def scan_streams(self, keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
        """The data streams under several scans: their `_children_list` trees, level by level."""
        return read_scan_streams(self.redis, keys)

    def _stats_of(self, reply: XInfo | list[Reply], kind: StreamKind) -> StreamStats:
        return legacy_stats(parse_xinfo_stream(reply) if isinstance(reply, list) else reply, kind)

    @raises_store_errors
    def closing(self, scans: dict[str, dict[str, StreamKind]], reasons_known: Collection[str] = (),
                references: Mapping[str, str] = {}, count: int = 1000) -> dict[str, Closing]:
        """Final stats, end reason and existence of closed scans, in one round trip (the end reason is
        always read, references never: the hints `reasons_known` and `references` save no read here)."""
        return read_closing(self.redis, scans, self._parse_stats)

    @raises_store_errors
    def scans_alive(self, scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
        """{scan key: None if alive, else why not} for {scan key: its state stream keys}."""
        return read_alive(self.redis, scans)

    # -- sequences --------------------------------------------------------------------------------
    @raises_store_errors
    def read_references(self, stream_key: str, since: str, count: int = 1000) -> References:
        """`GroupingMaster:scans` (node_ref_channel) entries after `since`: ([(entry id, child scan
        key or None, problem)], whether `count` were read). `__DATA__` is the pickled db_name."""
        return read_references(self.redis, stream_key, since, count)
