"""Mints tokens with Stream's official Python SDKs and prints them as one JSON object.

Usage: GATEHOUSE_TEST_SECRET=... python mint.py

Output: {"now": <unix seconds used for exp/iat>, "tokens": {"<name>": "<jwt>", ...}}
stream-python (Activity Feeds) tokens are named feeds_*, stream-chat tokens chat_*.
Run with the interpreter of target/sdk-env/venv (scripts/sdk-env.sh installs it).
"""

import json
import os
import sys
import time

import stream
from stream_chat import StreamChat


def main() -> int:
    secret = os.environ.get("GATEHOUSE_TEST_SECRET")
    if not secret:
        print("GATEHOUSE_TEST_SECRET is not set", file=sys.stderr)
        return 2
    now = int(time.time())
    tokens = {}

    feeds = stream.connect("key", secret)
    tokens["feeds_user"] = feeds.create_user_token("tommaso")
    tokens["feeds_user_exp_plan"] = feeds.create_user_token(
        "tommaso", exp=now + 3600, plan="pro"
    )
    tokens["feeds_scope_feed_read"] = feeds.create_jwt_token(
        "feed", "read", feed_id="userjack"
    )
    tokens["feeds_server"] = feeds.create_jwt_token("*", "*", feed_id="*")
    tokens["feeds_readonly"] = feeds.feed("user", "jack").get_readonly_token()
    timeline = feeds.feed("timeline", "jack")
    if not hasattr(timeline, "token"):
        print("stream-python feeds no longer carry a token attribute", file=sys.stderr)
        return 1
    tokens["feeds_feed_token"] = timeline.token
    tokens["feeds_scope_users_write"] = feeds.create_jwt_token(
        "users", "write", user_id="jack"
    )
    # The tokens the client signs its collections and personalization calls with.
    tokens["feeds_collections"] = feeds.collections.token
    tokens["feeds_personalization"] = feeds.personalization.token

    chat = StreamChat(api_key="key", api_secret=secret)
    tokens["chat_user"] = chat.create_token("jack")
    tokens["chat_user_exp_iat"] = chat.create_token("jack", exp=now + 3600, iat=now - 10)
    tokens["chat_expired"] = chat.create_token("jack", exp=now - 60)
    if not isinstance(chat.auth_token, str):
        print(
            f"stream-chat's auth_token is a {type(chat.auth_token).__name__}, not a str",
            file=sys.stderr,
        )
        return 1
    tokens["chat_server"] = chat.auth_token

    for name, token in tokens.items():
        if not isinstance(token, str) or token.count(".") != 2:
            print(f"{name} is not a compact JWT string: {token!r}", file=sys.stderr)
            return 1
    json.dump({"now": now, "tokens": tokens}, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
