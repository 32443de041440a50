"""The ground floor: settings, the one error tree, the shared vocabulary, the Temporal connection."""
