// The embedded order orchestration and allocation services and the workload simulator.
