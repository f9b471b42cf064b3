"""Studies at dataset scale: a declarative plan, expanded into work items, run in-process or on a Ray
cluster, its finished items kept in a resumable results folder, and read with bootstrap confidence
intervals.

    plan.py       the Plan (JSON beside the results, with its workload) and its expansion into work items
    judging.py    the judge classifier and its class groups
    worker.py     what one item is: dream (and judge), or render a channel (the same code in every executor)
    store.py      the results folder: Parquet parts committed atomically, content-addressed PNGs, a lock
    workloads.py  a plan as a workload: its items, its runner, its store (bias, sweep, gallery)
    executors.py  the Workload protocol; in-process (default) and Ray; run_workload() drives either into
                  the workload's store (analysis.atlas.AtlasWorkload is the unit atlas's example pass)
    stats.py      bootstrap intervals over images and seeds, paired differences, the control, the reading
    overview.py   a results folder read for people: intervals and reading, or a sweep's/gallery's sheet

Nothing here imports ray until a user asks for it.
"""
