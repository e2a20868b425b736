"""How cardflow stores the random tokens it hands out (API tokens, login and invitation
links, web sessions): as SHA-256 hashes."""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    # 256 random bits need no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(token.encode()).hexdigest()
