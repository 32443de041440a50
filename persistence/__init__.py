"""Persistence: the SQLModel engine, tables, repositories and database preparation."""
