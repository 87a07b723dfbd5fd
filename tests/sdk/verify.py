"""Verifies a token with the JWT library Stream's Python SDKs sign with (PyJWT) and prints its claims.

Usage: GATEHOUSE_TEST_SECRET=... python verify.py <token>

Prints the claims as one JSON object and exits 0 when the token is an HS256 JWT signed with the secret
(and, if it has one, its exp has not passed); otherwise prints why to stderr and exits 1.
"""

import json
import os
import sys

import jwt


def main() -> int:
    secret = os.environ.get("GATEHOUSE_TEST_SECRET")
    if not secret:
        print("GATEHOUSE_TEST_SECRET is not set", file=sys.stderr)
        return 2
    if len(sys.argv) != 2:
        print("usage: verify.py <token>", file=sys.stderr)
        return 2
    try:
        claims = jwt.decode(sys.argv[1], secret, algorithms=["HS256"])
    except jwt.PyJWTError as error:
        print(f"PyJWT {jwt.__version__} rejected the token: {error}", file=sys.stderr)
        return 1
    json.dump(claims, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
