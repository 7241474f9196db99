"""How a BLISS 1.x scan ends: its closing snapshot and end reason, or its death (keys evicted or expired)."""

from __future__ import annotations

from typing import Callable, Mapping

import redis

from ..base import Closing
from ..errors import key_reply, raise_store_error
from ..streams import StreamKind, StreamStats, log
from . import unpickler

#: `_info`'s final `state` (pickled) -> end reason, when `_end`'s `__EXCEPTION__` does not tell it.
END_REASONS_BY_STATE = {"DONE": "SUCCESS", "USER_ABORTED": "USER_ABORT", "KILLED": "FAILURE"}

#: Decodes XINFO STREAM replies of data streams into their stats: (keys, {key: kind}, replies) -> {key: stats}.
ParseStats = Callable[[list[str], Mapping[str, StreamKind], list[object]], dict[str, StreamStats | None]]


def read_closing(client: redis.Redis[bytes], scans: dict[str, dict[str, StreamKind]], parse_stats: ParseStats) -> dict[str, Closing]:
    """Final stats, end reason and existence of closed scans, in one round trip.

    The end reason is `_end`'s `__EXCEPTION__` (written atomically with END_SCAN); the `_info`
    `state` (written ~2 ms later) is used when the exception is missing or unreadable, and a
    disagreement is logged.
    """
    if not scans:
        return {}
    pipe = client.pipeline(transaction=False)
    order = []
    for scan, streams in scans.items():
        for key in streams:
            pipe.xinfo_stream(key)
        pipe.xrange(scan + "_end", count=1)  # its one END_SCAN entry
        pipe.hget(scan + "_info", "state")
        pipe.exists(scan)
        order.append((scan, list(streams)))
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        raise_store_error(reply)
    out = {}
    i = 0
    for scan, keys in order:
        stats = parse_stats(keys, scans[scan], replies[i:i + len(keys)])
        i += len(keys)
        end, state, exists = replies[i:i + 3]
        i += 3
        out[scan] = Closing(stats, end_reason(scan, end, state), bool(exists) and not isinstance(exists, Exception))
    return out


def end_reason(scan: str, end: object, state: object) -> str | None:
    """A closed scan's end reason from its `_end` entry (XRANGE reply) and its `_info` state (HGET reply)."""
    from_exception = from_state = None
    if isinstance(end, list) and end:
        raw = end[0][1].get(b"__EXCEPTION__")
        if raw is not None:
            try:
                from_exception = end_reason_of(unpickler.loads(raw))
            except unpickler.PickleRejected as exc:
                log.warning("end_reason_unreadable", key=scan, detail=f"__EXCEPTION__: {exc}")
    if isinstance(state, bytes):
        try:
            from_state = END_REASONS_BY_STATE.get(unpickler.loads(state))
        except (unpickler.PickleRejected, TypeError):
            from_state = None
    if from_exception and from_state and from_exception != from_state:
        log.info("end_reason_disagrees", key=scan, exception=from_exception, state=from_state)
    return from_exception or from_state


def end_reason_of(exception: object) -> str | None:
    """End reason from `_end`'s unpickled `__EXCEPTION__` (a str); None if it is not a str."""
    if not isinstance(exception, str):
        return None
    if exception == "":
        return "SUCCESS"
    if "ScanAbort" in exception:
        return "USER_ABORT"
    return "FAILURE"


def read_alive(client: redis.Redis[bytes], scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
    """{scan key: None if alive, else why not} for {scan key: its state stream keys}.

    Keys can be evicted one by one (`allkeys-lru`): a missing `_end` of a running scan comes
    back with the END_SCAN XADD, so it is not a death. Dead: the node and every state stream
    gone ("vanished"), or a node whose `_info` state is final while its `_end` is gone (the
    END_SCAN entry was lost: "state stream vanished").
    """
    if not scans:
        return {}
    pipe = client.pipeline(transaction=False)
    for scan, state_keys in scans.items():
        pipe.exists(scan)
        pipe.hget(scan + "_info", "state")
        for key in state_keys:
            pipe.exists(key)
    replies = iter([key_reply(reply) for reply in pipe.execute(raise_on_error=False)])  # `_info` of another type: no state
    out: dict[str, str | None] = {}
    for scan, state_keys in scans.items():
        node, state = next(replies), next(replies)
        present = {key: bool(next(replies)) for key in state_keys}
        end_key = scan + "_end"
        if not node and not any(present.values()):
            out[scan] = "vanished"
        elif node and end_key in present and not present[end_key] and _final_state(state):
            out[scan] = "state stream vanished"
        else:
            out[scan] = None
    return out


def _final_state(state: object) -> bool:
    """Whether an `_info` state (HGET reply, pickled) is one a scan ends in."""
    if not isinstance(state, bytes):
        return False
    try:
        return unpickler.loads(state) in END_REASONS_BY_STATE
    except (unpickler.PickleRejected, TypeError):
        return False
