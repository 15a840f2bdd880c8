from flask import Flask

from aisoule_ratelimit import Limiter
from aisoule_ratelimit.wsgi import RateLimitMiddleware

app = Flask(__name__)
# The documented limits, per API key (Authorization: Bearer <key>).
app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=Limiter())  # type: ignore[method-assign]


@app.post("/v1/messages")
def send_message() -> dict[str, bool]:
    return {"ok": True}


@app.get("/v1/status")
def status() -> dict[str, str]:
    return {"status": "up"}


# Run it: flask --app examples.flask_app run
