"""The status page (`GET /`): what the exporter watches right now, as plain server-side HTML.

No JavaScript and no external assets (inline CSS only): the page works from a beamline control room
browser without internet access, and refreshes itself every 5 seconds. Every value coming from the
data store (session and scan names, URIs, end reasons, error messages) is HTML-escaped by default:
the page is built from markupsafe templates, so only markup written here is trusted.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from markupsafe import Markup, escape

from .. import __version__
from ..model import ROLE_SEQUENCE, ScanRecord
from ..view import EndedScan, ExporterView

REFRESH_SECONDS = 5
M = Markup


@dataclass(frozen=True)
class ActiveRow:
    record: ScanRecord
    done: int  # points of the fullest stream
    ratio: float | None
    idle: float | None
    threshold: float
    depth: int = 0  # 1 for a child shown under its running sequence, 2 for a grandchild...
    eta: float | None = None  # seconds to npoints at the recent point rate

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
            rows.append(ActiveRow(record, record.done, record.progress, idle, self.view.stall_threshold(record),
                                  eta=record.eta(now)))
        rows.sort(key=lambda r: (not r.stalled, r.record.session, r.record.number or 0, r.record.label))
        return nest(rows)

    def __call__(self, telemetry_path: str) -> str:
        now = self.clock()
        rows = self.active_rows(now)
        recent = self.view.recent_scans()
        stalled = sum(r.stalled for r in rows)
        sessions = sorted(self.view.sessions() | {r.record.session for r in rows} | {s.session for s in recent})
        title = f"bliss-exporter · {len(rows)} active" + (f", {stalled} stalled" if stalled else "")
        page = M("\n").join([
            M("<!doctype html>"),
            M("<html lang='en'><head><meta charset='utf-8'>"),
            M("<meta http-equiv='refresh' content='{}'>").format(REFRESH_SECONDS),
            M("<meta name='viewport' content='width=device-width, initial-scale=1'>"),
            M("<title>{}</title>").format(title),
            M("<style>{}</style></head><body>").format(M(CSS)),
            M("<header>"),
            M("<h1>bliss-exporter <small>{}</small></h1>").format(__version__),
            M("<nav><a id='metrics-link' href='{0}'>Metrics ({0})</a>"
              " · <a href='/healthz'>healthz</a> · <a href='/readyz'>readyz</a></nav>").format(telemetry_path),
            M("</header>"),
            self._summary(rows, stalled),
            self._sessions(sessions, rows, recent),
            self._active(rows),
            self._recent(recent, now),
            M("<footer>Rendered {} · refreshes every {} s · times are UTC · "
              "idle = time since the scan's last state change or data</footer>").format(utc(now), REFRESH_SECONDS),
            M("</body></html>"),
        ])
        return str(page)

    # -- sections (every value is escaped by markupsafe unless it is Markup itself) -------------
    def _summary(self, rows: list[ActiveRow], stalled: int) -> Markup:
        view = self.view
        health = view.health
        if health.ready:
            status = M("<span class='badge ok' id='datastore-status'>UP</span>")
        else:
            status = M("<span class='badge bad' id='datastore-status'>DOWN</span> "
                       "<span class='reason'>{}</span>").format(health.reason or "unknown")
        all_sessions = M(" <small>(all sessions)</small>") if view.session_filter == "*" else ""
        return M(
            "<section class='summary'><dl>"
            "<div><dt>Data store</dt><dd>{status}<br><code>{datastore}</code></dd></div>"
            "<div><dt>Session filter</dt><dd><code>{filter}</code>{all_sessions}</dd></div>"
            "<div><dt>Active scans</dt><dd class='big'>{active}</dd></div>"
            "<div><dt>Stalled</dt><dd class='big{alarm}' id='stalled-count'>{stalled}</dd></div>"
            "<div><dt>Stall threshold</dt><dd>{threshold}, at least {factor} × count_time</dd></div>"
            "</dl></section>"
        ).format(status=status, datastore=view.datastore, filter=view.session_filter, all_sessions=all_sessions,
                 active=len(rows), alarm=" alarm" if stalled else "", stalled=stalled,
                 threshold=seconds(view.stall_default), factor=f"{view.stall_factor:g}")

    def _sessions(self, sessions: list[str], rows: list[ActiveRow], recent: list[EndedScan]) -> Markup:
        head = M("<section><h2>Sessions</h2>")
        if not sessions:
            return head + M("<p class='empty'>No session seen yet.</p></section>")
        body = []
        for session in sessions:
            mine = [r for r in rows if r.record.session == session]
            ended = [s for s in recent if s.session == session]
            states = collections.Counter(r.record.state.name for r in mine)
            state_text = ", ".join(f"{n} {name}" for name, n in sorted(states.items())) or "—"
            n_stalled = sum(r.stalled for r in mine)
            last = ended[0] if ended else None
            last_text = (M("{} <span class='reason {}'>{}</span>").format(
                last.label, reason_class(last.end_reason), last.end_reason) if last else "—")
            body.append(M(
                "<tr{cls}><td>{session}</td><td class='num'>{active}</td><td>{states}</td>"
                "<td class='num'>{stalled}</td><td>{last}</td></tr>"
            ).format(cls=M(" class=stalled") if n_stalled else "", session=session, active=len(mine),
                     states=state_text, stalled=n_stalled or "", last=last_text))
        return (head + M("<table id='sessions'><thead><tr><th>Session</th><th>Active</th><th>States</th>"
                         "<th>Stalled</th><th>Last ended</th></tr></thead><tbody>")
                + M("").join(body) + M("</tbody></table></section>"))

    @staticmethod
    def _progress(row: ActiveRow) -> Markup:
        r = row.record
        if r.role == ROLE_SEQUENCE:
            total = f" / {r.scan_count}" if r.scan_count else ""
            bar = (M("<div class='bar'><span style='width:{:.1f}%'></span></div>").format(100.0 * (row.ratio or 0.0))
                   if row.ratio is not None else "")
            return M("{}<span class='progress'>{}{}</span> <small>subscans</small>").format(bar, row.done, total)
        detectors = StatusPage._detectors(r)
        if r.npoints:
            pct = 100.0 * (row.ratio or 0.0)
            eta = M(" <small class='eta'>ETA {}</small>").format(seconds(row.eta)) if row.eta is not None else ""
            return M("<div class='bar'><span style='width:{:.1f}%'></span></div>"
                     "<span class='progress'>{} / {}</span> <small>{:.0f}%</small>{}{}").format(
                         pct, row.done, r.npoints, pct, eta, detectors)
        return M("<span class='progress'>{}</span> <small>points</small>{}").format(row.done, detectors)

    @staticmethod
    def _detectors(record: ScanRecord) -> Markup:
        """Frames acquired / saved of each saving detector; the saved figure marked while it lags."""
        out = M("")
        for name, (acquired, saved) in sorted(record.detectors().items()):
            lag = " lag" if saved < acquired else ""
            out += M("<br><small class='detector' data-detector='{}'>{}: {} acquired, "
                     "<span class='saved{}'>{} saved</span></small>").format(name, name, acquired, lag, saved)
        return out

    def _active(self, rows: list[ActiveRow]) -> Markup:
        head = M("<section><h2>Active scans</h2>")
        if not rows:
            return head + M("<p class='empty'>No active scan.</p></section>")
        body = []
        for row in rows:
            r = row.record
            body.append(M(
                "<tr class='{classes}' data-scan='{label}' data-session='{session}' data-role='{role}'{parent}>"
                "<td>{session}</td>"
                "<td class='label'{indent}>{arrow}{label}{badge}<br><small>{title}</small></td>"
                "<td><span class='state'>{state}</span></td>"
                "<td class='progress'>{progress}</td>"
                "<td class='idle'>{idle} <small>/ {threshold}</small>{marker}</td>"
                "<td>{uris}</td></tr>"
            ).format(
                classes="scan" + (" stalled" if row.stalled else "") + (f" {r.role}" if r.role != "scan" else ""),
                label=r.label, session=r.session, role=r.role,
                parent=M(" data-parent='{}'").format(r.sequence) if r.sequence is not None else "",
                indent=M(" style='padding-left:{}px'").format(10 + 22 * row.depth) if row.depth else "",
                arrow="↳ " if row.depth else "", badge=role_badge(r.role, r.sequence), title=r.title,
                state=r.state.name, progress=self._progress(row),
                idle=seconds(row.idle) if row.idle is not None else "—", threshold=seconds(row.threshold),
                marker=M(" <span class='badge bad stall'>STALLED</span>") if row.stalled else "",
                uris=uri_list(r.uris),
            ))
        return (head + M("<table id='active'><thead><tr><th>Session</th><th>Scan</th><th>State</th>"
                         "<th>Progress</th><th>Idle / threshold</th><th>URIs</th></tr></thead><tbody>")
                + M("").join(body) + M("</tbody></table></section>"))

    def _recent(self, recent: list[EndedScan], now: float) -> Markup:
        head = M("<section><h2>Recently ended scans <small>(last {})</small></h2>").format(self.view.recent_limit)
        if not recent:
            return head + M("<p class='empty'>No scan ended since the exporter started.</p></section>")
        body = []
        for s in recent:
            body.append(M(
                "<tr class='ended' data-scan='{label}' data-session='{session}' data-role='{role}'{parent}>"
                "<td>{ended}<br><small>{ago} ago</small></td>"
                "<td>{session}</td><td class='label'>{label}{badge}</td>"
                "<td><span class='reason {reason_class}'>{reason}</span></td>"
                "<td class='num duration'>{duration}</td><td class='num'>{points}</td>"
                "<td>{uris}</td></tr>"
            ).format(
                label=s.label, session=s.session, role=s.role,
                parent=M(" data-parent='{}'").format(s.sequence) if s.sequence is not None else "",
                ended=utc(s.ended_at), ago=seconds(max(0.0, now - s.ended_at)), badge=role_badge(s.role, s.sequence),
                reason_class=reason_class(s.end_reason), reason=s.end_reason,
                duration=seconds(s.duration) if s.duration is not None else "—", points=s.points,
                uris=uri_list(s.uris),
            ))
        return (head + M("<table id='recent'><thead><tr><th>Ended</th><th>Session</th><th>Scan</th>"
                         "<th>End reason</th><th>Duration</th><th>Points</th><th>URIs</th></tr></thead><tbody>")
                + M("").join(body) + M("</tbody></table></section>"))


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
        out.append(ActiveRow(row.record, row.done, row.ratio, row.idle, row.threshold, depth, row.eta))
        mine = sorted(children.get(id(row.record), []),
                      key=lambda r: (r.record.index_in_sequence is None, r.record.index_in_sequence or 0,
                                     r.record.number or 0, r.record.label))
        for child in mine:
            add(child, depth + 1)

    for row in top:
        add(row, 0)
    return out


def role_badge(role: str, sequence: str | None) -> Markup | str:
    """`sequence` for a sequence, `in 5_sequence` for a child of one; nothing for a plain scan."""
    if role == ROLE_SEQUENCE:
        return M(" <span class='role'>sequence</span>")
    if sequence is not None:
        return M(" <small class='role'>in {}</small>").format(sequence)
    return ""


def uri_list(uris) -> Markup:
    """One line per URI; a line may break after each / of a long path."""
    if not uris:
        return M("<small>—</small>")
    return M("").join(M("<code class='uri'>{}</code>").format(escape(u).replace("/", M("/<wbr>"))) for u in uris)


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
td.progress,td.idle{white-space:nowrap}span.saved.lag{color:#b3261e;font-weight:600}
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
