"""Dagster's own floor for a run launched from the CLI: one asset that does nothing.

`dg launch --assets nothing -f benchmarks/dagster_floor.py` pays what every `dg launch` of a run
recorded in the SQLite instance pays around its steps (`dg`'s command tree, importing Dagster,
the instance, creating the run, storing its events) and nothing of this project: no code location
to build, no SSH. bench_node_fanout measures it beside the CLI re-apply, in the same instance, to
show the least any re-apply through `dg launch` can take on the machine it runs on.
"""

import dagster as dg


@dg.asset
def nothing() -> None:
    """Does nothing: the run around it is what is measured."""


# In process, as the project's own jobs run: no process start per step.
defs = dg.Definitions(assets=[nothing], executor=dg.in_process_executor)
