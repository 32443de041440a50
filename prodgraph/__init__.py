"""prodgraph: shared plumbing (settings, errors, CLI, embedded Temporal) of the production system."""
