"""The public contracts: message schemas, their codec and dead letters, metric names."""
