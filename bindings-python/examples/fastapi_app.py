from fastapi import FastAPI

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.asgi import RateLimitMiddleware

app = FastAPI()
# The documented limits: 120/min by default, /v1/messages 300/min and 5/s, /v1/media 30/min,
# per API key (Authorization: Bearer <key>).
app.add_middleware(RateLimitMiddleware, limiter=Limiter())


@app.post("/v1/messages")
async def send_message() -> dict[str, bool]:
    return {"ok": True}


@app.get("/v1/status")
async def status() -> dict[str, str]:
    return {"status": "up"}


# Run it: uvicorn examples.fastapi_app:app
