"""The status page (`GET /`): what the exporter watches right now, as plain server-side HTML.

No JavaScript and no external assets (inline CSS only): the page works from a beamline control room
browser without internet access, and refreshes itself every 5 seconds. Every value coming from the
data store (session and scan names, URIs, end reasons, error messages) is HTML-escaped.
"""

from __future__ import annotations

import collections
import html
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import __version__
from ..model import ROLE_SEQUENCE, ScanRecord
from ..view import EndedScan, ExporterView

#: Ended scans kept for the page.
RECENT_LIMIT = 50
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class ActiveRow:
    record: ScanRecord
    done: int  # points of the fullest stream
    ratio: float | None
    idle: float | None
    threshold: float
    depth: int = 0  # 1 for a child shown under its running sequence, 2 for a grandchild...

    @property
    def stalled(self) -> bool:
        return self.idle is not None and self.idle > self.threshold


class StatusPage:
    """Renders the status page from the exporter's read model; Routes calls it with the telemetry path."""

    def __init__(self, view: ExporterView, clock=time.time):
        self.view = view
        self.clock = clock

    def active_rows(self, now: float) -> list[ActiveRow]:
        rows = []
        for record in self.view.active_scans():
            idle = max(0.0, now - record.last_event_at) if record.last_event_at is not None else None
            rows.append(ActiveRow(record, record.done, record.progress, idle, self.view.stall_threshold(record)))
        rows.sort(key=lambda r: (not r.stalled, r.record.session, r.record.number or 0, r.record.label))
        return nest(rows)

    def __call__(self, telemetry_path: str) -> str:
        now = self.clock()
        rows = self.active_rows(now)
        recent = self.view.recent_scans()
        stalled = sum(r.stalled for r in rows)
        sessions = sorted(self.view.sessions() | {r.record.session for r in rows} | {s.session for s in recent})
        title = f"bliss-exporter · {len(rows)} active" + (f", {stalled} stalled" if stalled else "")
        parts = [
            "<!doctype html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{e(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            "<header>",
            f"<h1>bliss-exporter <small>{e(__version__)}</small></h1>",
            f"<nav><a id='metrics-link' href='{e(telemetry_path)}'>Metrics ({e(telemetry_path)})</a>"
            " · <a href='/healthz'>healthz</a> · <a href='/readyz'>readyz</a></nav>",
            "</header>",
            self._summary(now, rows, stalled),
            self._sessions(sessions, rows, recent),
            self._active(rows),
            self._recent(recent, now),
            f"<footer>Rendered {e(utc(now))} · refreshes every {REFRESH_SECONDS} s · times are UTC · "
            "idle = time since the scan's last state change or data</footer>",
            "</body></html>",
        ]
        return "\n".join(parts)

    # -- sections -------------------------------------------------------------------------------
    def _summary(self, now: float, rows: list[ActiveRow], stalled: int) -> str:
        view = self.view
        health = view.health
        if health.ready:
            status = "<span class='badge ok' id='datastore-status'>UP</span>"
        else:
            status = (f"<span class='badge bad' id='datastore-status'>DOWN</span> "
                      f"<span class='reason'>{e(health.reason or 'unknown')}</span>")
        return (
            "<section class='summary'><dl>"
            f"<div><dt>Data store</dt><dd>{status}<br><code>{e(view.datastore)}</code></dd></div>"
            f"<div><dt>Session filter</dt><dd><code>{e(view.session_filter)}</code>"
            f"{' <small>(all sessions)</small>' if view.session_filter == '*' else ''}</dd></div>"
            f"<div><dt>Active scans</dt><dd class='big'>{len(rows)}</dd></div>"
            f"<div><dt>Stalled</dt><dd class='big{' alarm' if stalled else ''}' id='stalled-count'>{stalled}</dd></div>"
            f"<div><dt>Stall threshold</dt><dd>{e(seconds(view.stall_default))}, "
            f"at least {e(f'{view.stall_factor:g}')} × count_time</dd></div>"
            "</dl></section>"
        )

    def _sessions(self, sessions: list[str], rows: list[ActiveRow], recent: list[EndedScan]) -> str:
        head = "<section><h2>Sessions</h2>"
        if not sessions:
            return head + "<p class='empty'>No session seen yet.</p></section>"
        body = []
        for session in sessions:
            mine = [r for r in rows if r.record.session == session]
            ended = [s for s in recent if s.session == session]
            states = collections.Counter(r.record.state.name for r in mine)
            state_text = ", ".join(f"{n} {name}" for name, n in sorted(states.items())) or "—"
            n_stalled = sum(r.stalled for r in mine)
            last = ended[0] if ended else None
            last_text = (f"{e(last.label)} <span class='reason {reason_class(last.end_reason)}'>"
                         f"{e(last.end_reason)}</span>") if last else "—"
            body.append(
                f"<tr{' class=stalled' if n_stalled else ''}><td>{e(session)}</td><td class='num'>{len(mine)}</td>"
                f"<td>{e(state_text)}</td><td class='num'>{n_stalled or ''}</td><td>{last_text}</td></tr>"
            )
        return (head + "<table id='sessions'><thead><tr><th>Session</th><th>Active</th><th>States</th>"
                "<th>Stalled</th><th>Last ended</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></section>")

    @staticmethod
    def _progress(row: ActiveRow) -> str:
        r = row.record
        if r.role == ROLE_SEQUENCE:
            total = f" / {r.scan_count}" if r.scan_count else ""
            bar = (f"<div class='bar'><span style='width:{100.0 * (row.ratio or 0.0):.1f}%'></span></div>"
                   if row.ratio is not None else "")
            return f"{bar}<span class='progress'>{row.done}{total}</span> <small>subscans</small>"
        if r.npoints:
            pct = 100.0 * (row.ratio or 0.0)
            return (f"<div class='bar'><span style='width:{pct:.1f}%'></span></div>"
                    f"<span class='progress'>{row.done} / {r.npoints}</span> <small>{pct:.0f}%</small>")
        return f"<span class='progress'>{row.done}</span> <small>points</small>"

    def _active(self, rows: list[ActiveRow]) -> str:
        head = "<section><h2>Active scans</h2>"
        if not rows:
            return head + "<p class='empty'>No active scan.</p></section>"
        body = []
        for row in rows:
            r = row.record
            progress = self._progress(row)
            idle = seconds(row.idle) if row.idle is not None else "—"
            marker = " <span class='badge bad stall'>STALLED</span>" if row.stalled else ""
            classes = "scan" + (" stalled" if row.stalled else "") + (f" {r.role}" if r.role != "scan" else "")
            parent = f" data-parent='{e(r.sequence)}'" if r.sequence is not None else ""
            indent = f" style='padding-left:{10 + 22 * row.depth}px'" if row.depth else ""
            body.append(
                f"<tr class='{classes}' data-scan='{e(r.label)}' data-session='{e(r.session)}' "
                f"data-role='{e(r.role)}'{parent}>"
                f"<td>{e(r.session)}</td>"
                f"<td class='label'{indent}>{'↳ ' if row.depth else ''}{e(r.label)}{role_badge(r.role, r.sequence)}"
                f"<br><small>{e(r.title)}</small></td>"
                f"<td><span class='state'>{e(r.state.name)}</span></td>"
                f"<td class='progress'>{progress}</td>"
                f"<td class='idle'>{e(idle)} <small>/ {e(seconds(row.threshold))}</small>{marker}</td>"
                f"<td>{uri_list(r.uris)}</td></tr>"
            )
        return (head + "<table id='active'><thead><tr><th>Session</th><th>Scan</th><th>State</th>"
                "<th>Progress</th><th>Idle / threshold</th><th>URIs</th></tr></thead><tbody>"
                + "".join(body) + "</tbody></table></section>")

    def _recent(self, recent: list[EndedScan], now: float) -> str:
        head = f"<section><h2>Recently ended scans <small>(last {self.view.recent_limit})</small></h2>"
        if not recent:
            return head + "<p class='empty'>No scan ended since the exporter started.</p></section>"
        body = []
        for s in recent:
            duration = seconds(s.duration) if s.duration is not None else "—"
            parent = f" data-parent='{e(s.sequence)}'" if s.sequence is not None else ""
            body.append(
                f"<tr class='ended' data-scan='{e(s.label)}' data-session='{e(s.session)}' data-role='{e(s.role)}'"
                f"{parent}>"
                f"<td>{e(utc(s.ended_at))}<br><small>{e(seconds(max(0.0, now - s.ended_at)))} ago</small></td>"
                f"<td>{e(s.session)}</td><td class='label'>{e(s.label)}{role_badge(s.role, s.sequence)}</td>"
                f"<td><span class='reason {reason_class(s.end_reason)}'>{e(s.end_reason)}</span></td>"
                f"<td class='num duration'>{e(duration)}</td><td class='num'>{s.points}</td>"
                f"<td>{uri_list(s.uris)}</td></tr>"
            )
        return (head + "<table id='recent'><thead><tr><th>Ended</th><th>Session</th><th>Scan</th>"
                "<th>End reason</th><th>Duration</th><th>Points</th><th>URIs</th></tr></thead><tbody>"
                + "".join(body) + "</tbody></table></section>")


def nest(rows: list[ActiveRow]) -> list[ActiveRow]:
    """Rows in display order, each running child right under its running sequence (depth + 1)."""
    children: dict[int, list[ActiveRow]] = {}
    shown = {id(r.record) for r in rows}
    top = []
    for row in rows:
        parent = row.record.parent
        if parent is not None and id(parent) in shown:
            children.setdefault(id(parent), []).append(row)
        else:
            top.append(row)
    out: list[ActiveRow] = []

    def add(row: ActiveRow, depth: int) -> None:
        out.append(ActiveRow(row.record, row.done, row.ratio, row.idle, row.threshold, depth))
        mine = sorted(children.get(id(row.record), []),
                      key=lambda r: (r.record.index_in_sequence is None, r.record.index_in_sequence or 0,
                                     r.record.number or 0, r.record.label))
        for child in mine:
            add(child, depth + 1)

    for row in top:
        add(row, 0)
    return out


def role_badge(role: str, sequence: str | None) -> str:
    """`sequence` for a sequence, `in 5_sequence` for a child of one; nothing for a plain scan."""
    if role == ROLE_SEQUENCE:
        return " <span class='role'>sequence</span>"
    if sequence is not None:
        return f" <small class='role'>in {e(sequence)}</small>"
    return ""


def e(value) -> str:
    return html.escape(str(value), quote=True)


def uri_list(uris) -> str:
    if not uris:
        return "<small>—</small>"
    # a line may break after each / of a long path
    return "".join(f"<code class='uri'>{e(u).replace('/', '/<wbr>')}</code>" for u in uris)


def reason_class(reason: str) -> str:
    if reason == "SUCCESS":
        return "ok"
    if reason in ("USER_ABORT", "DELETION"):
        return "warn"
    return "bad"


def utc(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float) -> str:
    """A readable duration: 0.41 s, 3.2 s, 12 s, 4 min 05 s, 2 h 03 min, 3 d 04 h."""
    if value < 60:
        text = f"{value:.2f}" if value < 1 else f"{value:.1f}" if value < 10 else f"{value:.0f}"
        return (text[:-3] if text.endswith(".00") else text[:-2] if text.endswith(".0") else text) + " s"
    value = int(value)
    if value < 3600:
        return f"{value // 60} min {value % 60:02d} s"
    if value < 86400:
        return f"{value // 3600} h {value % 3600 // 60:02d} min"
    return f"{value // 86400} d {value % 86400 // 3600:02d} h"


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:0 24px 24px;
color:#1d232a;background:#f4f6f8}
header{display:flex;align-items:baseline;justify-content:space-between;border-bottom:1px solid #d5dbe1;
margin-bottom:16px}
h1{font-size:22px;margin:16px 0 10px}h1 small{color:#6b7785;font-weight:normal;font-size:14px}
h2{font-size:16px;margin:22px 0 8px}h2 small{color:#6b7785;font-weight:normal}
a{color:#0b62c4}
.summary dl{display:flex;flex-wrap:wrap;gap:12px;margin:0}
.summary dl>div{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:8px 14px;min-width:140px}
dt{color:#6b7785;font-size:12px;text-transform:uppercase;letter-spacing:.04em}dd{margin:4px 0 0}
dd.big{font-size:24px;font-weight:600}dd.alarm{color:#b3261e}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d5dbe1}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e5e9ed;vertical-align:top}
th{background:#eef1f4;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#4a5561}
td.num{text-align:right;font-variant-numeric:tabular-nums}td small,.empty{color:#6b7785}
td.label{font-weight:600;white-space:nowrap}td.label small{font-weight:normal}
td.progress,td.idle{white-space:nowrap}
tr.stalled td{background:#fde7e6}tr.stalled td.idle{color:#b3261e;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.badge.ok{background:#1e7d32}.badge.bad{background:#b3261e}
.state{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#e8eef5;padding:1px 6px;
border-radius:4px}
.reason{font-weight:600}.reason.ok{color:#1e7d32}.reason.warn{color:#a15c00}.reason.bad{color:#b3261e}
.bar{display:inline-block;width:90px;height:8px;background:#e5e9ed;border-radius:4px;margin-right:8px;
overflow:hidden;vertical-align:middle}.bar span{display:block;height:100%;background:#2f7dd1}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
code.uri{display:block;overflow-wrap:anywhere}
.role{font-weight:normal;font-size:11px;color:#4a5561;background:#eef1f4;border-radius:4px;padding:0 5px}
small.role{background:none;padding:0}
footer{margin-top:20px;color:#6b7785;font-size:12px}
"""
