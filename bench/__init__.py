"""The booking-cron bench (`make bench`, `python -m bench`): speed and scale figures, each beside
its baseline, measured in one run on one machine. Timings never go into tests."""
