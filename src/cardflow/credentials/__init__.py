"""Outbound credentials: how cardflow authenticates to the services its cards call.

One module per auth type (its config model and how it builds its ``httpx.Auth``), the
registry of auth types, the token manager that keeps and refreshes OAuth tokens, the
grants that fetch them, and the pure token/authorize endpoint pieces (Authlib's
parameter builders).
"""
