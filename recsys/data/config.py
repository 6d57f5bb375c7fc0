"""Config of the data stage: where the logs come from and how they are prepared and split."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recsys.config import ranged

SourceKind = Literal["beauty", "toys", "table", "amazon", "recbole", "uci", "synthetic"]
SplitKind = Literal["leave_one_out", "temporal"]


@dataclasses.dataclass(frozen=True)
class Columns:
    """Column mapping for generic CSV/TSV/JSONL/Parquet logs (source = "table")."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str = "timestamp"
    event: str | None = None  # absent -> every row is "purchase"
    quantity: str | None = None
    price: str | None = None
    timestamp_format: str | None = None  # strptime format for string times; None -> unix seconds or ISO 8601
    # item catalogue columns (items_path)
    catalogue_item: str | None = None  # item id column of the catalogue; None -> same name as `item`
    item_title: str = "title"
    item_brand: str | None = "brand"
    item_categories: str | None = "categories"  # list column, or a string split on `category_sep`
    item_description: str | None = "description"
    item_price: str | None = "price"
    category_sep: str = "|"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Defaults reproduce the standard Beauty protocol: 5-core, leave-one-out, full ranking."""

    source: SourceKind = "beauty"  # "beauty" = the Amazon Beauty 2014 5-core sample shipped in the package;
    # "toys" = the Amazon Toys 2014 5-core sample, the second development dataset
    path: str | None = None  # interactions file(s) or directory (glob allowed) for table/amazon/recbole/uci
    items_path: str | None = None  # item catalogue file for table/amazon
    columns: Columns = Columns()
    # text files (logs and catalogue): a Python codec name. Bytes not valid in it become U+FFFD: an id holding
    # one is quarantined, catalogue text holding one is counted (catalogue_rows_with_replaced_bytes)
    encoding: str = "utf-8"
    delimiter: str | None = None  # CSV/TSV field separator ("tab" for a tab); None = ',' for .csv, tab for
    # .tsv
    require_catalogue: bool = False  # True: interactions with an item absent from the catalogue are
    # quarantined
    drop_cancellations: bool = True  # negative quantities / cancelled invoices -> quarantine
    kcore: int = ranged(5, ge=0)  # iterative k-core on users and items; 0 disables (Beauty is already 5-core:
    # a no-op there)
    split: SplitKind = "leave_one_out"
    # temporal split: the last `test_days` form the test window, the `valid_days` before it the valid window
    valid_days: float = ranged(7.0, gt=0)
    test_days: float = ranged(7.0, gt=0)
    # cold-start protocol: hold out this share of items (with training events) from training entirely; their
    # valid/test targets stay, so the "cold" slice measures text-only item vectors. 0 = standard protocol.
    cold_item_share: float = ranged(0.0, ge=0, lt=1)
    synthetic_users: int = ranged(200, ge=1)  # source = "synthetic" only
    synthetic_items: int = ranged(80, ge=1)
    seed: int = ranged(0, ge=0)
