"""Published versions of a run directory: ``<root>/versions/<NNNN>/`` + an atomically switched ``current``.

``store`` builds, publishes, rolls back and verifies versions; ``gate`` decides whether a retrained
candidate may replace the published version. Nothing here imports a model stage.
"""
