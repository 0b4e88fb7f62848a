"""What users do after a response, recorded against the response's id.

    feedback = Feedback(tracker)
    feedback.thumbs_up("user-42", response.id)
    feedback.rating("user-42", response.id, 4)
    feedback.conversion("user-42", value=49.0)

Each event carries `gen_ai.response.id`, so feedback can be read next to the call it is about.
Events go through the tracker in the background (a resent batch never counts twice); nothing
here blocks or raises on the caller's path. Each call records one event: a double click the
application does not filter counts twice.
"""

from __future__ import annotations

from verdict.integrations import genai_events as ge
from verdict.integrations.sink import EventSink
from verdict.tracking import AsyncTracker, Tracker, new_event


class Feedback:
    """Records feedback events (see the module docstring)."""

    def __init__(self, tracker: Tracker | AsyncTracker | EventSink) -> None:
        self._sink = tracker if isinstance(tracker, EventSink) else EventSink(tracker)

    def _send(
        self,
        unit_id: str,
        name: str,
        response_id: str | None,
        measures: dict[str, float] | None = None,
    ) -> str:
        properties = {ge.RESPONSE_ID: ge.truncated(response_id)} if response_id else {}
        event = new_event(unit_id, name, measures, properties)
        self._sink.submit(event)
        return event.event_id

    def thumbs_up(self, unit_id: str, response_id: str) -> str:
        """The user liked the response; returns the event id."""
        return self._send(unit_id, ge.THUMBS_UP, response_id)

    def thumbs_down(self, unit_id: str, response_id: str) -> str:
        """The user disliked the response."""
        return self._send(unit_id, ge.THUMBS_DOWN, response_id)

    def rating(self, unit_id: str, response_id: str, value: float) -> str:
        """The user rated the response (e.g. 1 to 5): measure `rating`."""
        return self._send(unit_id, ge.RATING, response_id, {ge.RATING_MEASURE: float(value)})

    def regenerate(self, unit_id: str, response_id: str) -> str:
        """The user asked for another answer instead of this response."""
        return self._send(unit_id, ge.REGENERATE, response_id)

    def copy(self, unit_id: str, response_id: str) -> str:
        """The user copied the response."""
        return self._send(unit_id, ge.COPY, response_id)

    def conversion(
        self, unit_id: str, response_id: str | None = None, value: float | None = None
    ) -> str:
        """The user converted (bought, signed up ...), optionally after a response and with a
        value (measure `value`)."""
        measures = None if value is None else {ge.VALUE_MEASURE: float(value)}
        return self._send(unit_id, ge.CONVERSION, response_id, measures)
