"""PT1-PT5 as partitioned assets: thin wiring between the rules in `leads/` and the resources."""
