"""The embedded Amazon Toys 2014 5-core sample (see recsys/data/embedded/README.md)."""

from __future__ import annotations

from recsys.data.loaders.beauty import load_embedded_reviews
from recsys.data.schema import Loaded

SOURCE = "amazon_toys_2014_5core (embedded)"


def load_toys() -> Loaded:
    """167,597 reviews of 19,412 users on 11,924 items, in each user's published (S3-Rec) order.

    The source has no time: ``timestamp`` is the 1-based position in the user's sequence.
    """
    return load_embedded_reviews(name="toys", source=SOURCE)
