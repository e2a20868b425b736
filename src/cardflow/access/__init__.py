"""Access: who may call cardflow (API tokens, web sessions)."""
