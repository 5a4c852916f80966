"""A coarse, hand-drawn outline of Pakistan (lon, lat) for the offline DC map: about 60 points, accurate to a few
tens of kilometres — enough to place the five DCs, no tiles or downloads needed. Approximate, not a legal border."""

from __future__ import annotations

PAKISTAN_OUTLINE: tuple[tuple[float, float], ...] = (
    (61.6, 25.2), (62.4, 25.1), (63.5, 25.2), (64.6, 25.2), (65.6, 25.4), (66.6, 25.4), (67.2, 24.8),
    (67.5, 24.0), (68.2, 23.7), (68.8, 24.3), (70.0, 24.2), (71.0, 24.4), (70.6, 25.7), (70.1, 26.6),
    (69.5, 27.0), (70.0, 27.8), (70.8, 28.0), (71.9, 28.0), (72.9, 29.0), (73.4, 29.95), (74.5, 30.9),
    (74.6, 31.1), (74.5, 31.7), (75.0, 32.5), (74.7, 32.8), (74.2, 33.3), (74.0, 34.0), (73.9, 34.7),
    (74.3, 35.0), (75.5, 35.6), (77.0, 35.5), (75.9, 36.7), (74.9, 37.0), (74.5, 37.1), (73.0, 36.9),
    (71.5, 36.7), (71.2, 36.0), (71.6, 35.2), (71.1, 34.4), (70.0, 34.0), (69.9, 33.1), (69.3, 32.5),
    (69.2, 31.6), (68.0, 31.6), (67.7, 31.5), (66.7, 31.2), (66.4, 30.0), (64.6, 29.5), (62.5, 29.4),
    (60.9, 29.8), (61.8, 28.5), (62.8, 28.2), (62.8, 27.2), (63.3, 26.7), (61.8, 26.3), (61.6, 25.2),
)


def outline_geojson() -> dict:
    # d3/Vega want a small polygon's exterior ring clockwise (the opposite of RFC 7946); the points above run
    # counter-clockwise (east along the coast first), so reverse them.
    ring = [list(point) for point in reversed(PAKISTAN_OUTLINE)]
    return {"type": "Feature", "properties": {"name": "Pakistan (approximate)"},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}
