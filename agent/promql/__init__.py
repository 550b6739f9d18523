"""PromQL over the in-memory store: evaluator, functions, and the test-file runner."""
