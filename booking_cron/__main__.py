from booking_cron.cli import app

app(prog_name="booking-cron")
