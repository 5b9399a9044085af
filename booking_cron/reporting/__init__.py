"""What operators read: the state message and what needs attention (`attention`), the
Prefect artifacts (`artifacts`), the terminal summary and results table (`report`), a
backfill's report (`backfill_report`), and database text shown safely (`operator_text`)."""
