"""Reference data of the chain (SPEC §5): regions, distribution centres, SKUs, suppliers and business rules.

Ids, names and relative factors are the original design's. Capacities and coverage are recalibrated so the
simulation is coherent at any rate (see docs/calibration.md); the values here are the design's own and
``domain.calibration`` derives the rate-dependent sizing from them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class Region:
    region_id: str
    region_name: str
    demand_factor: float
    demand_volatility: float


@dataclasses.dataclass(frozen=True)
class DistributionCenter:
    dc_id: str
    dc_name: str
    region_id: str
    city: str
    latitude: float
    longitude: float
    capacity_m3: float
    throughput_per_day: int


@dataclasses.dataclass(frozen=True)
class Sku:
    sku_id: str
    product_name: str
    category: str
    unit_cost: float  # PKR
    storage_m3: float  # per unit
    demand_weight: float
    lead_time_days: float
    coverage_days: float


@dataclasses.dataclass(frozen=True)
class Supplier:
    supplier_id: str
    supplier_name: str
    reliability_score: float
    avg_lead_time_days: float
    lead_time_stddev_days: float
    supplier_type: str


REGIONS: tuple[Region, ...] = (
    Region("PK-SINDH", "Sindh Province", 2.0, 0.35),
    Region("PK-PUNJAB-NORTH", "Punjab North", 1.6, 0.28),
    Region("PK-PUNJAB-SOUTH", "Punjab South", 1.2, 0.25),
    Region("PK-CAPITAL", "Capital Region", 1.4, 0.22),
)

DCS: tuple[DistributionCenter, ...] = (
    DistributionCenter("DC-KHI", "Karachi Central Warehouse", "PK-SINDH", "Karachi", 24.86, 67.01, 75000, 25000),
    DistributionCenter("DC-LHE", "Lahore Distribution Hub", "PK-PUNJAB-NORTH", "Lahore", 31.55, 74.34, 60000, 20000),
    DistributionCenter("DC-ISB", "Islamabad Regional Center", "PK-CAPITAL", "Islamabad", 33.68, 73.05, 45000, 15000),
    DistributionCenter("DC-FSD", "Faisalabad Warehouse", "PK-PUNJAB-NORTH", "Faisalabad", 31.42, 73.08, 40000, 12000),
    DistributionCenter("DC-MUL", "Multan Distribution Point", "PK-PUNJAB-SOUTH", "Multan", 30.16, 71.52, 35000, 10000),
)

SKUS: tuple[Sku, ...] = (
    Sku("SKU-STAPLE-001", "Atta (Wheat Flour) - 10kg", "Staples", 850, 0.015, 80, 3, 45),
    Sku("SKU-STAPLE-002", "Basmati Rice - 5kg", "Staples", 950, 0.010, 70, 4, 40),
    Sku("SKU-STAPLE-003", "Cooking Oil - 5L", "Staples", 1450, 0.008, 65, 5, 35),
    Sku("SKU-STAPLE-004", "Sugar - 5kg", "Staples", 550, 0.012, 60, 3, 40),
    Sku("SKU-DAIRY-001", "Fresh Milk - 1L", "Dairy", 220, 0.002, 120, 1, 3),
    Sku("SKU-DAIRY-002", "Yogurt - 400g", "Dairy", 150, 0.001, 90, 1, 4),
    Sku("SKU-SNACK-001", "Chips Family Pack", "Snacks", 180, 0.004, 50, 3, 20),
    Sku("SKU-BEV-001", "Soft Drink - 1.5L", "Beverages", 150, 0.003, 75, 2, 15),
    Sku("SKU-CLEAN-001", "Detergent - 3kg", "Cleaning", 650, 0.006, 35, 5, 30),
    Sku("SKU-CLEAN-002", "Dishwashing Liquid - 1L", "Cleaning", 280, 0.002, 40, 4, 25),
)

SUPPLIERS: tuple[Supplier, ...] = (
    Supplier("SUP-LOCAL-001", "National Foods (Pvt) Ltd", 0.96, 2, 0.5, "local_fmcg"),
    Supplier("SUP-LOCAL-002", "Nestle Pakistan", 0.94, 2, 0.6, "local_fmcg"),
    Supplier("SUP-REGIONAL-001", "Punjab Oil Mills", 0.88, 4, 1.2, "regional"),
    Supplier("SUP-IMPORT-001", "Global Trading Corp", 0.82, 7, 2.5, "import"),
)


@dataclasses.dataclass(frozen=True)
class BusinessRules:
    stockout_critical_days: float = 2.0
    stockout_warning_days: float = 7.0
    utilization_target: float = 0.75
    utilization_high: float = 0.85  # "high" above this
    utilization_critical: float = 0.90  # "critical" at or above this
    weekend_demand_multiplier: float = 1.3
    ramadan_demand_multiplier: float = 1.8
    overstock_days: float = 90.0
    currency: str = "PKR"
    business_timezone: str = "Asia/Karachi"  # UTC+5, no DST


RULES = BusinessRules()

# Default Ramadan ranges (approximate, Pakistan); SCBDA_RAMADAN overrides with one range.
RAMADAN_RANGES: tuple[tuple[dt.date, dt.date], ...] = (
    (dt.date(2025, 3, 2), dt.date(2025, 3, 30)),
    (dt.date(2026, 2, 19), dt.date(2026, 3, 19)),
    (dt.date(2027, 2, 8), dt.date(2027, 3, 9)),
    (dt.date(2028, 1, 28), dt.date(2028, 2, 26)),
)

# Dimension collections: name -> (business key, rows). The reference assets upsert these by key.
DIMENSIONS = {
    "regions_dim": ("region_id", REGIONS),
    "dcs_dim": ("dc_id", DCS),
    "skus_dim": ("sku_id", SKUS),
    "suppliers_dim": ("supplier_id", SUPPLIERS),
}


def dimension_documents(collection: str) -> list[dict]:
    """The documents of one dimension collection, as stored in MongoDB."""
    _, rows = DIMENSIONS[collection]
    return [dataclasses.asdict(row) for row in rows]
