"""Runnable pipelines composed from the recsys stages (users copy and schedule these).

``recsys`` (the library) never imports this package; the ``recsys`` console command lives here
(``pipelines/cli.py``) because it dispatches to these pipelines.
"""
