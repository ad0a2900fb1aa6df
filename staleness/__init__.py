"""Staleness: score a model version from live performance, drift and age; emit the verdict.

Pure modules (no I/O, clock passed in as event time): `drift`, `performance`, `age`,
`verdict`, `reference`, `inputs`, `events`. The worker reads join state through a `Reader`,
builds `ModelSignals` with `inputs.staleness_inputs`, judges them with `verdict.judge` and
lets `events.EmissionPolicy` decide whether to publish a `StalenessEvent`.
"""
