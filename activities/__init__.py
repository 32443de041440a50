"""Production modules: typed operations registered as Temporal activities, and their artifact store."""
