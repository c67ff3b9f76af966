"""Latest state per learner, and when a learner counts as stale.

The collector keeps one entry per learner name: the last valid record (as the raw
JSON bytes received, so snapshots need no re-encoding), when it arrived, and the
learner's log interval (sent by the reporter, else the gap between its records).
"""

import json
import time

STATES = ("pending", "running", "done", "failed", "stale")


def is_stale(
    status: str, last_seen: float, interval: float, stale_intervals: float, now: float
) -> bool:
    """A job that says it is running but has been silent for `stale_intervals` intervals."""
    return status in ("running", "saving") and now - last_seen > stale_intervals * interval


def state_of(
    status: str, last_seen: float, interval: float, stale_intervals: float, now: float
) -> str:
    """pending/running/done/failed/stale from a learner's latest record status."""
    if is_stale(status, last_seen, interval, stale_intervals, now):
        return "stale"
    return {"running": "running", "saving": "running", "done": "done", "failed": "failed"}[status]


class LatestState:
    """Per learner: [record, frame, last_seen, interval or None, number of records]."""

    def __init__(self, default_interval: float, stale_intervals: float):
        self.default_interval = default_interval
        self.stale_intervals = stale_intervals
        self.entries: dict[str, list] = {}

    def update(self, record: dict, frame: bytes, now: float) -> None:
        name = record["name"]
        entry = self.entries.get(name)
        interval = record.get("interval")
        if entry is None:
            self.entries[name] = [record, frame, now, interval, 1]
            return
        if interval is None:
            previous = entry[0]
            if previous["pid"] == record["pid"] and previous["job_id"] == record["job_id"]:
                interval = now - entry[2] or None
            else:
                interval = entry[3]
        entry[0] = record
        entry[1] = frame
        entry[2] = now
        entry[3] = interval
        entry[4] += 1

    def interval_of(self, entry: list) -> float:
        return entry[3] or self.default_interval

    def snapshot(self, collector: dict, now: float | None = None) -> bytes:
        """status.json: collector counters plus every learner's latest record and state."""
        now = time.time() if now is None else now
        parts = []
        for name, (record, frame, last_seen, _, count) in self.entries.items():
            interval = self.interval_of(self.entries[name])
            state = state_of(record["status"], last_seen, interval, self.stale_intervals, now)
            parts.append(
                b'%s:{"state":"%s","last_seen":%.3f,"interval":%.3f,"records":%d,'
                b'"record":%s}'
                % (json.dumps(name).encode(), state.encode(), last_seen, interval, count, frame)
            )
        head = {
            "v": 1,
            "updated": now,
            "stale_intervals": self.stale_intervals,
            "collector": collector,
        }
        return json.dumps(head)[:-1].encode() + b',"learners":{' + b",".join(parts) + b"}}\n"
