"""FastAPI app for bench/sdk: MODE=bare (no middleware), cache (JWTAuthMiddleware
with the session-validation cache on) or nocache (one /auth/validate round
trip per request). AUTH_URL names the authd to trust."""
import os

from fastapi import FastAPI, Request

from sdk import AuthClient, JWKSCacheManager, JWTAuthMiddleware

app = FastAPI()


@app.get("/orders")
async def orders(request: Request):
    user = getattr(request.state, "user", None)
    return {"ok": True, "sub": user["user_id"] if user else None}


MODE = os.environ.get("MODE", "bare")
if MODE != "bare":
    client = AuthClient(base_url=os.environ["AUTH_URL"])
    app.add_middleware(JWTAuthMiddleware, auth_base_url=os.environ["AUTH_URL"],
                       expected_audience="orders-api", auth_client=client,
                       jwks_cache=JWKSCacheManager(client, min_refresh_interval_seconds=10),
                       session_cache_ttl_seconds=30 if MODE == "cache" else 0)
