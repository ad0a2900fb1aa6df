"""Staleness: score a model version from live performance, drift and age; emit the verdict.

Pure modules (no I/O, clock passed in as event time): `drift`, `performance`, `age`,
`verdict`, `reference`, `inputs`, `events`. `scorer` holds the worker's entry points: it reads
join state through a `Reader`, builds `ModelSignals` (`inputs.staleness_inputs`) and judges them
(`verdict.judge`); `events.EmissionPolicy` decides whether to publish a `StalenessEvent`.
"""
