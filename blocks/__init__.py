"""Prefect blocks for booking-cron's connections: the bookings database and Twilio credentials."""

from blocks.connections import (
    DATABASE_BLOCK,
    TWILIO_BLOCK,
    TwilioCredentials,
    load_blocks_into_environment,
    register_blocks_from_environment,
)

__all__ = ["DATABASE_BLOCK", "TWILIO_BLOCK", "TwilioCredentials", "load_blocks_into_environment",
           "register_blocks_from_environment"]
