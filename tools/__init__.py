"""Not the product: the demo, the benchmarks, the traffic generator, the schema docs."""
