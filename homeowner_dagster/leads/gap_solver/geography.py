"""Where ZIPs are (offline centroids, haversine miles) and which of them nobody holds this month."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

EARTH_RADIUS_MILES = 3958.8


# Cells of a candidate x territory distance matrix computed at once (bounds memory).
_DISTANCE_BLOCK_CELLS = 2_000_000


@lru_cache(maxsize=1)
def _all_centroids() -> pd.DataFrame:
    """Every ZIP of the offline package with its type and active flag, read once."""
    import zipcodes

    rows = zipcodes.list_all()
    frame = pd.DataFrame(
        {
            "zip": [z["zip_code"] for z in rows],
            "state": [z["state"] for z in rows],
            "lat": pd.to_numeric([z["lat"] for z in rows], errors="coerce"),
            "lon": pd.to_numeric([z["long"] for z in rows], errors="coerce"),
            "standard": [z["zip_code_type"] == "STANDARD" and bool(z["active"]) for z in rows],
        }
    )
    return frame.dropna(subset=["lat", "lon"]).drop_duplicates("zip").reset_index(drop=True)


@lru_cache(maxsize=64)
def _centroids_for(states: tuple[str, ...]) -> pd.DataFrame:
    frame = _all_centroids()
    picked = frame[frame["standard"] & frame["state"].isin(states)]
    return picked[["zip", "state", "lat", "lon"]].sort_values("zip").reset_index(drop=True)


def zip_centroids(states: Iterable[str]) -> pd.DataFrame:
    """Active STANDARD ZIPs of `states` with their centroid: where homeowners can be pulled.

    PO boxes, unique (single-organisation) and military ZIPs hold no homes to pull.
    """
    key = tuple(sorted({str(s).strip().upper() for s in states if str(s).strip()}))
    return _centroids_for(key).copy()


def _locate(zips: Iterable[str]) -> pd.DataFrame:
    """Centroids of any known ZIPs (a client's own ZIPs need not be STANDARD to have a place)."""
    wanted = pd.Index(pd.unique(pd.Series(list(zips), dtype=object)))
    frame = _all_centroids()
    return frame[frame["zip"].isin(wanted)][["zip", "state", "lat", "lon"]].reset_index(drop=True)


def distance_miles(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle (haversine) miles; arguments broadcast like numpy arrays."""
    phi1, phi2 = np.radians(np.asarray(lat1, float)), np.radians(np.asarray(lat2, float))
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2, float)) - np.radians(np.asarray(lon1, float))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _nearest_miles(points: pd.DataFrame, sites: pd.DataFrame) -> np.ndarray:
    """For each point, miles to the nearest site; computed in blocks to bound memory."""
    if points.empty:
        return np.zeros(0)
    if sites.empty:
        return np.full(len(points), np.inf)
    s_lat, s_lon = sites["lat"].to_numpy()[None, :], sites["lon"].to_numpy()[None, :]
    p_lat, p_lon = points["lat"].to_numpy(), points["lon"].to_numpy()
    step = max(1, _DISTANCE_BLOCK_CELLS // len(sites))
    out = np.empty(len(points))
    for start in range(0, len(points), step):
        block = slice(start, start + step)
        out[block] = distance_miles(p_lat[block, None], p_lon[block, None], s_lat, s_lon).min(
            axis=1
        )
    return out


def _norm_states(states: Iterable[str]) -> list[str]:
    return sorted({str(s).strip().upper() for s in states if str(s).strip()})


def _held_zips(assignments: pd.DataFrame) -> set[str]:
    return set(assignments["zip"].dropna().astype(str))


def _free_zips(states: Sequence[str], assignments: pd.DataFrame) -> pd.DataFrame:
    """ZIPs of the licensed states that nobody holds this month."""
    centroids = zip_centroids(states)
    return centroids[~centroids["zip"].isin(_held_zips(assignments))].reset_index(drop=True)
