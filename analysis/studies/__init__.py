"""Studies at dataset scale: a declarative plan, expanded into one dream per work item, run in-process
or on a Ray cluster, its finished items kept in a resumable results folder, and read with bootstrap
confidence intervals.

    plan.py       the Plan (JSON beside the results) and its expansion into work items with stable ids
    judging.py    the judge classifier and its class groups (shared with analysis.bias)
    worker.py     what one item is: load, dream, judge, encode (the same code in every executor)
    store.py      the results folder: Parquet parts committed atomically, content-addressed PNGs, a lock
    executors.py  in-process (default) and Ray; run() drives either into the store
    stats.py      bootstrap intervals over images and seeds, paired differences, the control, the reading

Nothing here imports ray until a user asks for it.
"""
