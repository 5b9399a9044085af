"""Twilio's callbacks: delivery receipts and replies.

`rules` holds the decisions (which words mean STOP, which status may follow which, what a
form must carry); `store` the SQL each request runs in one transaction; `app` the HTTP
endpoint (signature, size cap, form parsing) and `serve`, what `booking-cron webhooks` runs.
"""
