"""Run the real program offline under Pulumi mocks: for tests, benchmarks, the plan view and the policy check."""
