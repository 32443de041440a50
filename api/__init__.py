"""FastAPI application: routers per resource, persistence and the error mapping."""
