"""Connections: stored, encrypted credentials and what cardflow does with them.

``service`` creates, changes and lists them; ``status`` owns their status;
``token_store`` keeps their OAuth tokens; ``authorization`` runs the authorization-code
dance; ``runtime`` turns a connection into its ready-to-use auth, cached per process.
"""
