"""``recsys serve``: an HTTP JSON service over a published version (or one run directory).

    recsys serve -o runs/published --api-keys-file keys.txt          # 127.0.0.1:8000, follows `current`

Modules: ``config`` (limits and defaults), ``schemas`` (request/response bodies), ``auth`` (API keys),
``metrics`` (Prometheus), ``reload`` (load + verify a version, swap on publish/rollback), ``app``
(routes and middleware), ``cli`` (the command). Nothing here imports torch: the served student's user
tower runs in numpy (``recsys.student.user_tower``). See the README section "Serving".
"""
