"""Production modules: typed operations registered as Temporal activities; the artifact store."""
