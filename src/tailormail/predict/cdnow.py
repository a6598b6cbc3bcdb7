"""The CDNOW purchase logs (Fader and Hardie): loading and calibration/holdout summaries.

Two layouts exist: the 1/10 sample (``master_id sample_id yyyymmdd cds dollars``)
and the master file (``customer_id yyyymmdd cds dollars``, with a header line).
All customers made their first purchase in the first quarter of 1997.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from tailormail.errors import ValidationError

CALIBRATION = (date(1997, 1, 1), date(1997, 9, 30))
"""The published calibration period (39 weeks, both days included)."""
HOLDOUT = (date(1997, 10, 1), date(1998, 6, 30))
"""The published holdout period (39 weeks, both days included)."""


@dataclass(frozen=True)
class Purchases:
    """One row per purchase line: who, which day (days since 1970-01-01), CDs, dollars."""

    customer: np.ndarray
    day: np.ndarray
    cds: np.ndarray
    dollars: np.ndarray


@dataclass(frozen=True)
class Summary:
    """Per customer (all with a first purchase in calibration), as of the calibration end.

    Times are in weeks; ``x`` counts repeat purchase days in calibration and
    ``holdout`` counts purchase days in the holdout period.
    """

    customer: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    holdout: np.ndarray


def day_number(value: date) -> int:
    """Days since 1970-01-01."""
    return (value - date(1970, 1, 1)).days


def load(path: Path) -> Purchases:
    """Read either CDNOW layout; a malformed line raises ValidationError naming it."""
    columns: list[list[float]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts or not parts[0].isdigit():
                continue  # the header of the master file, blank lines
            if len(parts) == 5:
                parts = [parts[0], *parts[2:]]  # drop the sample id
            if len(parts) != 4:
                raise ValidationError(
                    f"expected 4 or 5 columns, got {len(parts)}",
                    line=number,
                    source=str(path),
                    hint="columns: customer [sample_id] yyyymmdd number_of_cds dollars",
                )
            columns.append([float(p) for p in parts])
    if not columns:
        raise ValidationError("no purchases found", source=str(path), hint="is this a CDNOW file?")
    table = np.asarray(columns)
    stamps = table[:, 1].astype(int)
    days = np.array([day_number(date(s // 10000, s // 100 % 100, s % 100)) for s in np.unique(stamps)], dtype=np.int64)
    day = days[np.searchsorted(np.unique(stamps), stamps)]
    return Purchases(table[:, 0].astype(np.int64), day, table[:, 2], table[:, 3])


def purchase_days(data: Purchases, start: date, end: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (customer, day) pairs within [start, end], with each day's dollars summed."""
    inside = (data.day >= day_number(start)) & (data.day <= day_number(end))
    keys = np.stack([data.customer[inside], data.day[inside]], axis=1)
    pairs, inverse = np.unique(keys, axis=0, return_inverse=True)
    dollars = np.bincount(inverse.ravel(), weights=data.dollars[inside], minlength=len(pairs))
    return pairs[:, 0], pairs[:, 1], dollars


def summarise(data: Purchases, calibration: tuple[date, date], holdout_end: date | None = None) -> Summary:
    """x, t_x, T (weeks) as of the calibration end, and holdout purchase days after it."""
    customer, day, _ = purchase_days(data, *calibration)
    ids, first_index, counts = np.unique(customer, return_index=True, return_counts=True)
    last_index = first_index + counts - 1  # np.unique sorts by customer, then day
    end = day_number(calibration[1])
    first, last = day[first_index], day[last_index]
    holdout = np.zeros(len(ids))
    if holdout_end is not None:
        h_customer, _, _ = purchase_days(data, date.fromordinal(calibration[1].toordinal() + 1), holdout_end)
        found = np.searchsorted(ids, h_customer)
        known = (found < len(ids)) & (ids[np.minimum(found, len(ids) - 1)] == h_customer)
        holdout = np.bincount(found[known], minlength=len(ids)).astype(float)
    return Summary(ids, (counts - 1).astype(float), (last - first) / 7.0, (end - first) / 7.0, holdout)
