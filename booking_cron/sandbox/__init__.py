"""Local Twilio-compatible SMS sandbox: `TwilioSandbox` for tests, `python -m booking_cron.sandbox` for demos."""

from booking_cron.sandbox.server import TwilioSandbox, serve_forever

__all__ = ["TwilioSandbox", "serve_forever"]
