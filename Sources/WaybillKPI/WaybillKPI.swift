// KPI computation.
