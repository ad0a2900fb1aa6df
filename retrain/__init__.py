"""Retraining: the retrain agent, its circuit breaker, retries, dead-letter queue and a stand-in
orchestrator. Pure logic (breaker, backoff, episodes, offsets) imports no I/O library."""
