"""``metrics.csv`` in the run folder: the log every run keeps (plots and ``--resume`` read it).

Always on, whatever ``--log`` selects. Rows are appended, so a resumed run continues the file
of the run it resumes (a fresh run's file is removed before it starts). The class lives in the
public API (``sslbench.CsvLogger``) because a run given no logger list still writes it.
"""

from __future__ import annotations

from sslbench import CsvLogger, hookimpl


@hookimpl
def sslbench_register_loggers(register):
    register("csv", CsvLogger, display="CSV (metrics.csv)")
