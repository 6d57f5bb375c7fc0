"""recsys: two-tower retrieval and ranking for e-commerce.

Stages (one subpackage each, meeting only through files in a run directory):
data -> teacher -> student -> index -> rank -> eval. ``pipelines/`` composes them.
"""

__version__ = "0.1.0"
