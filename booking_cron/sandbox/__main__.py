"""`python -m booking_cron.sandbox`: run the Twilio sandbox in the foreground for demos and load runs."""

from __future__ import annotations

import argparse

from booking_cron.sandbox.server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FAULT_KINDS, serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m booking_cron.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed at start)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    parser.add_argument("--rate", type=float, default=None, help="accepted messages per second (default: unlimited)")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--seed", type=int, default=0, help="seed for reproducible random faults")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability (0..1) a send hits a fault")
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    args = parser.parse_args(argv)
    serve_forever(host=args.host, port=args.port, account_sid=args.account_sid, auth_token=args.auth_token,
                  latency=args.latency, rate_limit=args.rate, seed=args.seed, fault_rate=args.fault_rate,
                  fault_kinds=[k for k in args.fault_kinds.split(",") if k])


if __name__ == "__main__":
    main()
