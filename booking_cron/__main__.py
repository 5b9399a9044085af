from booking_cron.ops.cli import app

app(prog_name="booking-cron")
