"""The unit of analysis: the value an experiment hashed, which several request units may share.

An experiment that hashes on another attribute than the unit id (e.g. ``company_id``) buckets
every user of one company together, so the company, not the user, is the randomised unit: its
users are not independent draws. Each exposure records the attribute and value hashed
(``exposures.hash_attribute``, ``hash_value``; empty: the unit id), and analysis counts each
hashed value as one *analysis unit* (:func:`analysis_unit`):

* a unit's (user's) metric events count for the analysis unit its exposure recorded, from that
  exposure's time on (and in its window, or its CUPED lookback before it): the per-user rule, so
  every per-user sum the rollups keep (:mod:`.rollup`) still holds, and an analysis unit's sum is
  the sum of its users' sums;
* per-unit aggregates (a mean's per-unit value, a proportion's "any event", a ratio's numerator
  and denominator, capping, quantiles' clustering) are over analysis units, and the unit counts
  (SRM included) count analysis units;
* a user's exposure is its first (the first stored wins, :mod:`verdict_ingest.exposures`): a user
  later seen under another hashed value of the same variant (it changed company) keeps counting
  for the first one; seen in another variant, it is excluded like any conflicting unit, and its
  analysis unit keeps its other users (the excluded count is of analysis units left with none);
* an analysis unit whose users were exposed to different variants (sticky assignments across a
  reallocation) counts once in each of those variants, with the events of its users there.

An experiment with no exposure hashed on another attribute (every experiment before this) keeps
its per-user queries unchanged (:func:`hashed`), fast paths included.
"""

from __future__ import annotations

import asyncpg

__all__ = ["UNIT_ID_ATTRIBUTE", "analysis_unit", "hashed"]

UNIT_ID_ATTRIBUTE = "id"
"""The hash attribute naming the unit id itself (ingest requires its value to be the unit id)."""


def analysis_unit(alias: str) -> str:
    """SQL of the analysis unit of exposure row ``alias``: its hashed value, else its unit id.

    Values of different attributes share one namespace with the unit ids (an experiment with a
    fallback attribute could see a company and a device spelled alike: they would be one unit)."""
    return f"coalesce(nullif({alias}.hash_value, ''), {alias}.unit_id)"


async def hashed(conn: asyncpg.Connection, experiment_key: str) -> bool:
    """Whether some exposure of the experiment hashed another attribute than the unit id.

    Two probes of the index on ``(experiment_key, hash_attribute, hash_value)``, around the
    attributes ``''`` and ``"id"`` (both name the unit id): no scan, however many exposures."""
    found = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM exposures WHERE experiment_key = $1::text
                  AND hash_attribute > '' AND hash_attribute < $2::text)
    OR EXISTS (SELECT 1 FROM exposures WHERE experiment_key = $1::text
                  AND hash_attribute > $2::text)""",
        experiment_key,
        UNIT_ID_ATTRIBUTE,
    )
    return bool(found)
