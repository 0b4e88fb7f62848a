"""Version strings made comparable as plain strings, GrowthBook's `paddedVersionString`.

"v1.2.3-rc.1+build" becomes parts 1, 2, 3, rc, 1 (leading "v" and build metadata dropped, "-" and
"." both separate parts); a bare three-part version gets a "~" part so that it sorts after its
pre-releases ("~" is the largest printable ASCII character); numeric parts are left-padded with
spaces to five characters so that " 9" < "10". The `$v*` operators compare the results as strings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from verdict.evaluation.jsvalues import is_number, to_string


@lru_cache(maxsize=4096)
def pad_version(version: str) -> str:
    """`padded_version_string` of a non-empty string (cached: app versions repeat a lot)."""
    if version.startswith("v"):
        version = version[1:]
    version = version.partition("+")[0]
    parts = version.replace("-", ".").split(".")
    if len(parts) == 3:
        parts.append("~")
    return "-".join(part.rjust(5) if part.isascii() and part.isdigit() else part for part in parts)


def padded_version_string(value: Any) -> str:
    """The comparable form of a version; numbers are read as strings, anything else as "0"."""
    if is_number(value):
        value = to_string(value)
    if not isinstance(value, str) or not value:
        value = "0"
    return pad_version(value)
