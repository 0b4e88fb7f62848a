"""How figures read on the page: effects, intervals, p-values, counts, durations (pure).

Missing figures (NaN, infinities where a bound is open) never print as "nan": a dash, or the
open bound's sign and ∞. Minus signs are typographic (−), as in print.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

DASH = "—"


def finite(x: float) -> bool:
    """True for a real number (not NaN, not ±∞)."""
    return math.isfinite(x)


def _minus(text: str) -> str:
    return text.replace("-", "−")


def signed_percent(x: float, digits: int = 1) -> str:
    """A relative effect: 0.0412 → "+4.1 %"."""
    if math.isnan(x):
        return DASH
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    value = 100 * x
    if value == 0:
        return f"{0:.{digits}f} %"
    return _minus(f"{value:+.{digits}f} %")


def percent(x: float, digits: int = 1) -> str:
    """A share: 0.5 → "50.0 %"."""
    if not finite(x):
        return DASH
    return f"{100 * x:.{digits}f} %"


def number(x: float, signed: bool = False) -> str:
    """A metric value with three significant digits (thousands separated above 1,000)."""
    if math.isnan(x):
        return DASH
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    sign = "+" if signed and x > 0 else ""
    magnitude = abs(x)
    if magnitude >= 1000:
        text = f"{x:,.0f}"
    elif magnitude == 0:
        text = "0"
    else:
        decimals = max(0, 2 - math.floor(math.log10(magnitude)))
        text = f"{x:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return _minus(sign + text)


def interval(lower: float, upper: float, fmt: str = "percent") -> str:
    """An interval on the relative ("percent") or absolute ("number") scale."""
    if math.isnan(lower) or math.isnan(upper):
        return DASH
    if fmt == "percent":
        return f"[{signed_percent(lower)}, {signed_percent(upper)}]"
    return f"[{number(lower, signed=True)}, {number(upper, signed=True)}]"


def p_value(p: float) -> str:
    """A p-value: three decimals, "< 0.001" below."""
    if not finite(p):
        return DASH
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def count(n: int | float) -> str:
    """A count with thousands separated."""
    if isinstance(n, float) and not finite(n):
        return DASH
    return f"{int(n):,}"


def days(d: float) -> str:
    """A duration in days, as a person says it."""
    if not finite(d) or d < 0:
        return DASH
    if d < 1:
        return "less than a day"
    whole = math.ceil(d - 1e-9)
    return f"{whole} day" if whole == 1 else f"{whole} days"


def when(at: datetime | None) -> str:
    """A moment, in UTC, to the minute."""
    if at is None:
        return DASH
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def since(at: datetime | None, now: datetime) -> str:
    """How long ago, roughly ("12 s ago", "5 min ago", "3 h ago", "2 days ago")."""
    if at is None:
        return DASH
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 90:
        return f"{int(seconds)} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def days_between(start: datetime | None, end: datetime) -> float:
    """Days from `start` to `end` (NaN without a start)."""
    if start is None:
        return math.nan
    return max(0.0, (end - start).total_seconds() / 86400)


def enum_label(name: str, prefix: str) -> str:
    """A proto enum value as words: ("METRIC_TYPE_BINOMIAL", "METRIC_TYPE_") → "binomial"."""
    text = name[len(prefix) :] if name.startswith(prefix) else name
    return text.replace("_", " ").lower()


def json_for_html(value: object) -> str:
    """JSON safe inside a `<script type="application/json">` element: no "<", ">" or "&"
    survives, so a metric named "</script>" cannot end the element."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
